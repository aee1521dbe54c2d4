//! What every source is: a task that reads payloads from somewhere and hands them to an [`Emitter`] until it
//! runs out, fails for good, or is told to stop. Waiting (backoff, rate limits) goes through a [`Waiter`], so
//! that tests can see which delay a source chose without sleeping through it. The waiter also carries the
//! clock that a source's rate limiter reads: in tests a fake one, which moves exactly by the delays waited, so
//! a test can check a quota over hours of simulated time in milliseconds.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use governor::clock::{Clock, FakeRelativeClock};
use tokio_util::sync::CancellationToken;

use crate::metrics::Reconnect;
use crate::queue::{Closed, Emitter};

pub trait Source: Send + 'static {
    /// The name of its task, in its log span and its metrics' `source` label, e.g. `x.sample`,
    /// `x.sample10.p3`, `sse.mastodon`, `replay`.
    fn name(&self) -> String;

    /// The `source` header of its records, which the inserter maps by: the task's name, unless several tasks
    /// write as one source (each partition of `x.sample10`).
    fn record_source(&self) -> String {
        self.name()
    }

    /// The topics its records go to (besides the rejects topic).
    fn topics(&self) -> Vec<String>;

    /// Reads until the source is exhausted (`Ok`), `shutdown` is cancelled (`Ok`), or it cannot go on
    /// (`Err`, with a message that tells the operator what to fix).
    fn run(self: Box<Self>, out: Emitter, shutdown: CancellationToken) -> BoxFuture<'static, anyhow::Result<()>>;
}

/// How one connection of a streaming source (SSE, Bluesky) ended.
pub(crate) enum Ended {
    /// Try again after at least `floor` (the server's `Retry-After`, if any).
    Reconnect(Reconnect, Duration),
    Shutdown,
    /// Retrying cannot help (a bad token, a wrong URL): the message says what to fix.
    Fatal(String),
}

impl From<Closed> for Ended {
    fn from(_: Closed) -> Self {
        Self::Fatal("the queue to Kafka closed".into())
    }
}

/// One delay a source chose, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wait {
    pub reason: String,
    pub delay: Duration,
}

/// Where sources wait. Returns `false` when `shutdown` interrupted the wait.
#[derive(Clone)]
pub struct Waiter {
    /// `Some` in tests: delays are recorded and not slept.
    recorded: Option<Arc<Mutex<Vec<Wait>>>>,
    clock: WaitClock,
}

impl Default for Waiter {
    fn default() -> Self {
        Self { recorded: None, clock: WaitClock::Real(Instant::now()) }
    }
}

/// The time a source's rate limiter sees: since the waiter was made, real or simulated.
#[derive(Clone, Debug)]
pub enum WaitClock {
    Real(Instant),
    /// Moves only when the waiter waits, by exactly the delay.
    Fake(FakeRelativeClock),
}

impl Clock for WaitClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        match self {
            Self::Real(start) => start.elapsed(),
            Self::Fake(clock) => clock.now().into(),
        }
    }
}

impl Waiter {
    /// A waiter that really sleeps.
    pub fn sleeping() -> Self {
        Self::default()
    }

    /// A waiter that records each delay and returns at once, moving its fake clock by the delay; the list is
    /// shared with the caller.
    pub fn recording() -> (Self, Arc<Mutex<Vec<Wait>>>) {
        let waits = Arc::new(Mutex::new(Vec::new()));
        (Self { recorded: Some(waits.clone()), clock: WaitClock::Fake(FakeRelativeClock::default()) }, waits)
    }

    /// The clock for rate limiters: the real one, or the fake one that moves as this waiter waits.
    pub fn clock(&self) -> WaitClock {
        self.clock.clone()
    }

    pub async fn wait(&self, delay: Duration, reason: &str, shutdown: &CancellationToken) -> bool {
        if let Some(waits) = &self.recorded {
            waits.lock().unwrap_or_else(|e| e.into_inner()).push(Wait { reason: reason.to_owned(), delay });
            if let WaitClock::Fake(clock) = &self.clock {
                clock.advance(delay);
            }
            tokio::task::yield_now().await;
            return !shutdown.is_cancelled();
        }
        if delay.is_zero() {
            return !shutdown.is_cancelled();
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = shutdown.cancelled() => false,
        }
    }
}
