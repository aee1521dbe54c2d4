//! The shutdown signal: SIGTERM (what `docker stop` and Kubernetes send) or SIGINT (Ctrl-C) cancels one token
//! that every loop watches. A second signal exits at once, so that an operator can still stop a process whose
//! shutdown hangs (tokio's handler stays installed, so the signal's default action never comes back by itself).

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGTERM or SIGINT; the second exits the process with 128 + the signal's
/// number, as its default action would.
pub fn on_signal() -> anyhow::Result<CancellationToken> {
    on_signal_then(|code| std::process::exit(code))
}

/// [`on_signal`], with what the second signal does.
fn on_signal_then(exit: impl FnOnce(i32) + Send + 'static) -> anyhow::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut next = async || {
            tokio::select! {
                _ = terminate.recv() => ("SIGTERM", 128 + libc::SIGTERM),
                _ = interrupt.recv() => ("SIGINT", 128 + libc::SIGINT),
            }
        };
        let (name, _) = next().await;
        tracing::info!(signal = name, "shutdown requested: finishing the work in hand (a second signal exits at once)");
        cancel.cancel();
        let (name, code) = next().await;
        tracing::warn!(signal = name, "second signal: exiting now, without finishing the work in hand");
        exit(code);
    });
    Ok(token)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::on_signal_then;

    fn raise(signal: i32) {
        // SAFETY: the signal is handled by the handler tokio installed for this (test's own) process.
        unsafe { libc::raise(signal) };
    }

    #[tokio::test]
    async fn the_first_signal_cancels_and_the_second_exits() {
        let (exited, mut exit_code) = tokio::sync::oneshot::channel();
        let token = on_signal_then(move |code| {
            let _ = exited.send(code);
        })
        .unwrap();
        raise(libc::SIGTERM);
        tokio::time::timeout(Duration::from_secs(5), token.cancelled()).await.expect("the first signal cancels");
        assert!(exit_code.try_recv().is_err(), "the first signal does not exit");
        raise(libc::SIGINT);
        let code = tokio::time::timeout(Duration::from_secs(5), exit_code).await.expect("the second exits").unwrap();
        assert_eq!(code, 130);
    }
}
