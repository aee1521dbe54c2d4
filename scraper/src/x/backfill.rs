//! X's backfill: on a reconnect, X resends up to five minutes of what it sent while the scraper was away (on
//! plans that allow it). The gap runs from the last byte of the previous connection and is rounded up to whole
//! minutes, so that nothing sent in it is missed; X does not deduplicate, so the posts from just before the
//! drop come again, keyed by their ids like any other, and the inserter's upsert makes them a no-op.

use std::time::Duration;

use governor::clock::Clock;
use prometheus_client::metrics::counter::Counter;

use crate::source::WaitClock;

/// What X accepts for `backfill_minutes`.
pub const MAX_MINUTES: u8 = 5;

/// Minutes of backfill that cover `gap`: rounded up, at least 1, at most `max`; `None` when `max` is 0 (a
/// plan without backfill, where X would refuse the parameter).
pub fn minutes_for(gap: Duration, max: u8) -> Option<u8> {
    if max == 0 {
        return None;
    }
    let minutes = gap.as_millis().div_ceil(60_000).clamp(1, u128::from(max.min(MAX_MINUTES)));
    Some(minutes as u8)
}

/// What a connection asks X to resend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ask {
    pub minutes: u8,
    /// Since the last byte of the previous connection.
    pub disconnected: Duration,
}

/// The state backfill needs across connections: when the last byte arrived, and until when the lines of a
/// connection that asked for backfill are counted as backfilled.
pub struct Backfill {
    max_minutes: u8,
    /// The source's waiter's clock, so that tests see gaps made of the delays the source chose.
    clock: WaitClock,
    last_byte: Option<Duration>,
    /// After a restart, before any byte: how long before the clock's `.1` the last run's newest record was
    /// scraped.
    restarted: Option<(Duration, Duration)>,
    counting_until: Option<Duration>,
    lines: Counter,
}

impl Backfill {
    /// `lines` is the source's `scraper_backfill_lines_total`.
    pub fn new(max_minutes: u8, clock: WaitClock, lines: Counter) -> Self {
        Self { max_minutes, clock, last_byte: None, restarted: None, counting_until: None, lines }
    }

    /// The last run's newest record was scraped `gap` before `at` (this backfill's clock when the gap was
    /// measured, `restart::gap`): the first connection asks for it, and for the time since.
    pub fn restarted(&mut self, gap: Duration, at: Duration) {
        self.restarted = Some((gap, at));
    }

    /// What the next connection asks for: nothing before any byte arrived (a first connection has missed
    /// nothing it could name, unless a restart said what the last run missed), nor without backfill.
    pub fn ask(&self) -> Option<Ask> {
        let now = self.clock.now();
        let disconnected = match (self.last_byte, self.restarted) {
            (Some(last_byte), _) => now.saturating_sub(last_byte),
            (None, Some((gap, at))) => gap + now.saturating_sub(at),
            (None, None) => return None,
        };
        let minutes = minutes_for(disconnected, self.max_minutes)?;
        Some(Ask { minutes, disconnected })
    }

    /// The connection is up, having asked for `ask`: its lines count as backfilled for that many minutes.
    pub fn connected(&mut self, ask: Option<Ask>) {
        self.counting_until = ask.map(|ask| self.clock.now() + Duration::from_secs(60 * u64::from(ask.minutes)));
    }

    /// Bytes (data or a heartbeat) arrived.
    pub fn received(&mut self) {
        self.last_byte = Some(self.clock.now());
    }

    /// A line (not a heartbeat) arrived.
    pub fn line(&mut self) {
        let Some(until) = self.counting_until else { return };
        if self.clock.now() < until {
            self.lines.inc();
        } else {
            self.counting_until = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_gap_is_rounded_up_to_whole_minutes_between_one_and_the_setting() {
        assert_eq!(minutes_for(Duration::ZERO, 5), Some(1));
        assert_eq!(minutes_for(secs(59), 5), Some(1));
        assert_eq!(minutes_for(secs(60), 5), Some(1));
        assert_eq!(minutes_for(secs(60) + Duration::from_millis(1), 5), Some(2));
        assert_eq!(minutes_for(secs(150), 5), Some(3));
        assert_eq!(minutes_for(secs(150), 2), Some(2), "capped at the setting");
        assert_eq!(minutes_for(secs(3600), 5), Some(5));
        assert_eq!(minutes_for(secs(3600), 9), Some(5), "never more than X accepts");
        assert_eq!(minutes_for(secs(30), 0), None, "0: the plan has no backfill");
    }

    #[test]
    fn only_a_reconnect_asks_and_only_its_first_minutes_are_counted() {
        let fake = FakeRelativeClock::default();
        let lines = Counter::default();
        let mut backfill = Backfill::new(3, WaitClock::Fake(fake.clone()), lines.clone());
        assert_eq!(backfill.ask(), None, "the first connection missed nothing");

        backfill.connected(None);
        backfill.received();
        backfill.line();
        assert_eq!(lines.get(), 0, "a connection that did not ask counts nothing");

        fake.advance(secs(70));
        let ask = backfill.ask().unwrap();
        assert_eq!((ask.minutes, ask.disconnected), (2, secs(70)));
        backfill.connected(Some(ask));
        for _ in 0..3 {
            backfill.received();
            backfill.line();
        }
        fake.advance(secs(119));
        backfill.line();
        assert_eq!(lines.get(), 4);
        fake.advance(secs(1));
        backfill.line();
        assert_eq!(lines.get(), 4, "past its two minutes, a line is live again");

        fake.advance(secs(600));
        assert_eq!(backfill.ask().unwrap().minutes, 3, "capped at the setting");

        let mut restarted = Backfill::new(5, WaitClock::Fake(fake.clone()), Counter::default());
        restarted.restarted(secs(130), fake.now().into());
        fake.advance(secs(20));
        assert_eq!(
            restarted.ask().unwrap().minutes,
            3,
            "the gap since the last run's newest record, and the wait since"
        );
        restarted.received();
        assert_eq!(restarted.ask().unwrap().minutes, 1, "once connected, the gap is since the last byte");

        let mut without = Backfill::new(0, WaitClock::Fake(fake.clone()), Counter::default());
        without.received();
        fake.advance(secs(30));
        assert_eq!(without.ask(), None, "0: the plan has no backfill");
    }
}
