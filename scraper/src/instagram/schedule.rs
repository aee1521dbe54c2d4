//! When a polling source visits its list again: a round every interval (measured from the start of one round
//! to the start of the next, so a slow round does not drift the schedule), for a number of rounds or forever.

use std::time::Duration;

use governor::clock::Clock;
use tokio_util::sync::CancellationToken;

use crate::source::Waiter;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub interval: Duration,
    /// `None`: poll until stopped. `Some(1)`: one pass, then the source ends (for a cron job, or a test).
    pub rounds: Option<u64>,
}

impl Schedule {
    /// Waits for the next round after `round` (counted from 1) that started at `started` on the waiter's
    /// clock. `false` when there is none: the rounds are done, or `shutdown` interrupted the wait.
    pub async fn next_round(
        &self,
        round: u64,
        started: Duration,
        waiter: &Waiter,
        shutdown: &CancellationToken,
    ) -> bool {
        if self.rounds.is_some_and(|rounds| round >= rounds) || shutdown.is_cancelled() {
            return false;
        }
        let elapsed = waiter.clock().now().saturating_sub(started);
        let delay = self.interval.saturating_sub(elapsed);
        tracing::info!(round, next_in = ?delay, "round done");
        waiter.wait(delay, "poll_interval", shutdown).await
    }
}
