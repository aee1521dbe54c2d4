//! When to reconnect to an X stream, as X documents it: at once after a dropped connection; network errors
//! back off linearly by 250 ms up to 16 s; HTTP errors exponentially from 5 s up to 320 s; 429 exponentially
//! from 60 s. Each class counts its own attempts, and any data received resets them all. A little jitter
//! (up to +10 %) keeps many scrapers from reconnecting in lockstep.

use std::time::Duration;

use crate::metrics::Reconnect;

const NETWORK_STEP: Duration = Duration::from_millis(250);
const NETWORK_MAX: Duration = Duration::from_secs(16);
const HTTP_FIRST: Duration = Duration::from_secs(5);
const HTTP_MAX: Duration = Duration::from_secs(320);
const RATE_LIMIT_FIRST: Duration = Duration::from_secs(60);
/// X gives no cap for 429; past this, a longer wait only loses more data.
const RATE_LIMIT_MAX: Duration = Duration::from_secs(960);

#[derive(Clone, Debug, Default)]
pub struct Backoff {
    network: u32,
    http: u32,
    rate_limited: u32,
    /// State of the jitter generator (xorshift), seeded from the clock.
    seed: u64,
}

impl Backoff {
    pub fn new() -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos());
        Self { seed: (nanos as u64) | 1, ..Self::default() }
    }

    /// The delay before reconnecting after `why`, before jitter.
    pub fn base_delay(&mut self, why: Reconnect) -> Duration {
        match why {
            Reconnect::Disconnected => Duration::ZERO,
            Reconnect::Network | Reconnect::Stalled => {
                self.network += 1;
                (NETWORK_STEP * self.network).min(NETWORK_MAX)
            }
            Reconnect::HttpError => {
                self.http += 1;
                exponential(HTTP_FIRST, self.http, HTTP_MAX)
            }
            Reconnect::RateLimited => {
                self.rate_limited += 1;
                exponential(RATE_LIMIT_FIRST, self.rate_limited, RATE_LIMIT_MAX)
            }
        }
    }

    /// The delay before reconnecting after `why`, with jitter.
    pub fn next_delay(&mut self, why: Reconnect) -> Duration {
        let base = self.base_delay(why);
        base + base.mul_f64(self.jitter_fraction() * 0.1)
    }

    /// Data arrived: the connection is healthy again.
    pub fn reset(&mut self) {
        *self = Self { seed: self.seed, ..Self::default() };
    }

    /// A fraction in [0, 1).
    fn jitter_fraction(&mut self) -> f64 {
        let mut x = self.seed.max(1);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.seed = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn exponential(first: Duration, attempt: u32, max: Duration) -> Duration {
    first.saturating_mul(1 << (attempt - 1).min(16)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(delays: &[Duration]) -> Vec<f64> {
        delays.iter().map(Duration::as_secs_f64).collect()
    }

    #[test]
    fn network_errors_back_off_linearly_up_to_16_s() {
        let mut backoff = Backoff::new();
        let delays: Vec<Duration> = (0..70).map(|_| backoff.base_delay(Reconnect::Network)).collect();
        assert_eq!(secs(&delays[..4]), [0.25, 0.5, 0.75, 1.0]);
        assert_eq!(delays[63], Duration::from_secs(16));
        assert_eq!(delays[69], Duration::from_secs(16));
    }

    #[test]
    fn http_errors_back_off_exponentially_from_5_s_up_to_320_s() {
        let mut backoff = Backoff::new();
        let delays: Vec<Duration> = (0..9).map(|_| backoff.base_delay(Reconnect::HttpError)).collect();
        assert_eq!(secs(&delays), [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 320.0, 320.0]);
    }

    #[test]
    fn rate_limits_back_off_exponentially_from_60_s() {
        let mut backoff = Backoff::new();
        let delays: Vec<Duration> = (0..6).map(|_| backoff.base_delay(Reconnect::RateLimited)).collect();
        assert_eq!(secs(&delays), [60.0, 120.0, 240.0, 480.0, 960.0, 960.0]);
    }

    #[test]
    fn a_dropped_connection_reconnects_at_once_and_data_resets_every_class() {
        let mut backoff = Backoff::new();
        assert_eq!(backoff.base_delay(Reconnect::Disconnected), Duration::ZERO);
        backoff.base_delay(Reconnect::HttpError);
        backoff.base_delay(Reconnect::Network);
        backoff.reset();
        assert_eq!(backoff.base_delay(Reconnect::HttpError), HTTP_FIRST);
        assert_eq!(backoff.base_delay(Reconnect::Network), NETWORK_STEP);
    }

    #[test]
    fn jitter_adds_at_most_a_tenth() {
        let mut backoff = Backoff::new();
        for _ in 0..50 {
            let delay = backoff.next_delay(Reconnect::HttpError);
            backoff.reset();
            assert!(delay >= HTTP_FIRST && delay <= HTTP_FIRST.mul_f64(1.1), "{delay:?}");
        }
    }
}
