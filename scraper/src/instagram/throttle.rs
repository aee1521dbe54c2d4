//! How long to stay away after the API said "too many requests": minutes, doubling while it keeps saying so,
//! back to the start after a request went through. Instagram answers a client that retries a throttled call
//! quickly with longer blocks (and, for the web endpoint, with login walls), so this starts high.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Throttle {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Throttle {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self { first, max, next: first }
    }

    /// The delay for this throttled answer; the next one waits twice as long, up to the maximum.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// A request went through: the next throttling starts from the first delay again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Throttle;

    #[test]
    fn doubles_up_to_the_maximum_and_starts_over_after_a_success() {
        let mut throttle = Throttle::new(Duration::from_secs(300), Duration::from_secs(1800));
        let delays: Vec<u64> = (0..5).map(|_| throttle.next_delay().as_secs()).collect();
        assert_eq!(delays, [300, 600, 1200, 1800, 1800]);
        throttle.reset();
        assert_eq!(throttle.next_delay().as_secs(), 300);
    }
}
