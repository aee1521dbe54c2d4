//! The shutdown signal: SIGTERM (what `docker stop` and Kubernetes send) or SIGINT (Ctrl-C) cancels one token
//! that every loop watches.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGTERM or SIGINT. A second signal is left to its default action, so that
/// an operator can still kill a process whose shutdown hangs.
pub fn on_signal() -> anyhow::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let cancel = token.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutdown requested: finishing the work in hand");
        cancel.cancel();
        drop((terminate, interrupt));
    });
    Ok(token)
}
