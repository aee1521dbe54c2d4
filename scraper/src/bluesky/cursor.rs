//! Where the Bluesky source resumes. Jetstream replays from a `cursor` (microseconds since the epoch) within its
//! retention, so nothing is lost across a disconnect or a restart if the source asks for a cursor no later
//! than the oldest event the broker has not acknowledged:
//!
//! - On a reconnect, every event read is still held by the scraper until the broker has it (the queue never
//!   drops a record while the process runs), so the source resumes from the last event it read, less a
//!   rewind of a few seconds (Jetstream instances' clocks, and events of one microsecond).
//! - Across a restart, what the last run read but the broker never acknowledged is gone from the scraper. So
//!   each record carries, in its `bluesky_cursor` header, the oldest time of the events in flight when it was
//!   produced: every event before it had been acknowledged. A restarted source reads the newest records of
//!   each partition of its topic and resumes from the latest such cursor, less the rewind. The replayed
//!   overlap is absorbed by the inserter's upserts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientConfig;

use crate::queue::Settled;
use crate::topic_tail::{self, Start};

/// The times of the events read and not yet acknowledged by the broker.
#[derive(Clone, Default)]
pub struct InFlight(Arc<Mutex<BTreeMap<i64, usize>>>);

impl InFlight {
    /// Marks an event of `time_us` in flight until the returned guard is dropped (when its record is
    /// settled), and returns the cursor its record carries: the oldest time in flight, its own included.
    pub fn hold(&self, time_us: i64) -> (Settled, i64) {
        let mut times = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *times.entry(time_us).or_default() += 1;
        let oldest = times.keys().next().copied().unwrap_or(time_us);
        (Box::new(Held { times: self.0.clone(), time_us }), oldest)
    }
}

struct Held {
    times: Arc<Mutex<BTreeMap<i64, usize>>>,
    time_us: i64,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut times = self.times.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = times.get_mut(&self.time_us) {
            *count -= 1;
            if *count == 0 {
                times.remove(&self.time_us);
            }
        }
    }
}

/// The cursor a restarted source resumes from, as its last run left it in `topic`: the latest
/// `bluesky_cursor` among the newest records of each partition (`None` when the topic holds none). Records of
/// other producers, without the header or with a value that is not a time, are passed over.
pub async fn from_topic(config: ClientConfig, topic: String, timeout: Duration) -> anyhow::Result<Option<i64>> {
    tokio::task::spawn_blocking(move || {
        let mut newest: Option<i64> = None;
        // The last few records of each partition: the very last may be another producer's.
        topic_tail::read(&config, &topic, Start::Last(16), timeout, |record| {
            let cursor = record.header(contract::header::BLUESKY_CURSOR).and_then(|v| v.parse::<i64>().ok());
            if let Some(cursor) = cursor.filter(|c| *c > 0) {
                newest = Some(newest.map_or(cursor, |n| n.max(cursor)));
            }
        })?;
        Ok(newest)
    })
    .await?
}

/// `cursor` moved back by `rewind`.
pub fn rewound(cursor: i64, rewind: Duration) -> i64 {
    cursor.saturating_sub(i64::try_from(rewind.as_micros()).unwrap_or(i64::MAX)).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_carries_the_oldest_time_still_in_flight() {
        let in_flight = InFlight::default();
        let (first, cursor) = in_flight.hold(100);
        assert_eq!(cursor, 100);
        let (second, cursor) = in_flight.hold(200);
        assert_eq!(cursor, 100, "the event of 100 is not acknowledged yet");
        drop(first);
        let (third, cursor) = in_flight.hold(300);
        assert_eq!(cursor, 200);
        drop((second, third));
        assert!(in_flight.0.lock().unwrap().is_empty(), "every event settled");
        let (_fourth, cursor) = in_flight.hold(400);
        assert_eq!(cursor, 400);
    }

    #[test]
    fn events_of_one_microsecond_are_held_each() {
        let in_flight = InFlight::default();
        let (a, _) = in_flight.hold(7);
        let (b, _) = in_flight.hold(7);
        drop(a);
        assert_eq!(in_flight.hold(9).1, 7);
        drop(b);
        assert_eq!(in_flight.hold(9).1, 9);
    }

    #[test]
    fn a_cursor_is_rewound_and_never_below_zero() {
        assert_eq!(rewound(10_000_000, Duration::from_secs(5)), 5_000_000);
        assert_eq!(rewound(1, Duration::from_secs(5)), 0);
    }
}
