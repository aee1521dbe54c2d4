//! A request quota of at most `max` requests in any window of `window` (Instagram's web limits are sliding
//! windows: instaloader counts about 200 requests per 11 minutes). It is a governor limiter whose burst and
//! period are chosen so that no window, wherever it starts, holds more than `max`: a burst of a tenth of the
//! quota, then one request per `window / (max - burst)`. So requests are spread over the window instead of
//! spent at its start, which is also what keeps Instagram from flagging the client.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use crate::source::{WaitClock, Waiter};

pub struct WindowQuota {
    limiter: RateLimiter<NotKeyed, InMemoryState, WaitClock, NoOpMiddleware<Duration>>,
    clock: WaitClock,
}

impl WindowQuota {
    /// At most `max` requests in any `window`, on the waiter's clock.
    pub fn new(max: NonZeroU32, window: Duration, waiter: &Waiter) -> Self {
        let burst = (max.get() / 10).max(1);
        let spread = (max.get() - burst).max(1);
        let quota = Quota::with_period(window / spread)
            .expect("a positive window")
            .allow_burst(NonZeroU32::new(burst).expect("at least 1"));
        let clock = waiter.clock();
        Self { limiter: RateLimiter::direct_with_clock(quota, clock.clone()), clock }
    }

    /// Waits until a request is allowed and takes it. `false` when `shutdown` interrupted the wait.
    pub async fn acquire(&self, waiter: &Waiter, shutdown: &CancellationToken) -> bool {
        loop {
            match self.limiter.check() {
                Ok(()) => return true,
                Err(not_until) => {
                    let delay = not_until.wait_time_from(self.clock.now());
                    tracing::debug!(?delay, "request quota spent: waiting");
                    if !waiter.wait(delay, "quota", shutdown).await {
                        return false;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use governor::clock::Clock;
    use tokio_util::sync::CancellationToken;

    use super::WindowQuota;
    use crate::source::Waiter;

    /// Takes `requests` requests under the quota on a fake clock and returns when each was allowed.
    async fn times(max: u32, window: Duration, requests: usize) -> Vec<Duration> {
        let (waiter, _) = Waiter::recording();
        let quota = WindowQuota::new(NonZeroU32::new(max).unwrap(), window, &waiter);
        let shutdown = CancellationToken::new();
        let mut times = Vec::new();
        for _ in 0..requests {
            assert!(quota.acquire(&waiter, &shutdown).await);
            times.push(waiter.clock().now());
        }
        times
    }

    fn most_in_any_window(times: &[Duration], window: Duration) -> usize {
        times
            .iter()
            .enumerate()
            .map(|(i, start)| times[i..].iter().take_while(|t| **t < *start + window).count())
            .max()
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn no_window_holds_more_than_the_quota() {
        let window = Duration::from_secs(11 * 60);
        for max in [1, 2, 10, 200] {
            let requests = 3 * max + 5;
            let times = times(max, window, requests as usize).await;
            assert!(most_in_any_window(&times, window) <= max as usize, "max {max}: {times:?}");
            // And the quota is used, not starved: once the burst is spent, `max` less the burst a window.
            let steady = (max - (max / 10).max(1)).max(1);
            assert!(*times.last().unwrap() <= window * requests.div_ceil(steady), "max {max}: {:?}", times.last());
        }
    }
}
