//! The batching policy: the records read but not yet handed to a write, and when they make a batch (by count,
//! by bytes or by time, whichever comes first). It holds no clock of its own: the loop says what time it is,
//! so tests drive it without a broker, a database or a sleep.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use crate::consumer::Partition;
use crate::record::ConsumedRecord;

/// When a batch closes.
#[derive(Clone, Copy, Debug)]
pub struct BatchLimits {
    pub records: usize,
    /// Bytes of records as [`ConsumedRecord::size`] counts them; a batch holds at least one record.
    pub bytes: usize,
    /// How long after the first record in it a batch closes.
    pub timeout: Duration,
}

/// Records read, oldest first, and where each partition was read up to.
#[derive(Debug)]
pub struct Pending {
    limits: BatchLimits,
    records: Vec<ConsumedRecord>,
    bytes: usize,
    /// When the oldest record arrived: the batch timer.
    since: Option<Instant>,
    /// The offset after the last record read from each partition. librdkafka drops what it had fetched but not
    /// delivered when a partition is paused, so a resume seeks back here; a record below it is one already held.
    positions: HashMap<Partition, i64>,
}

impl Pending {
    pub fn new(limits: BatchLimits) -> Self {
        Self { limits, records: Vec::new(), bytes: 0, since: None, positions: HashMap::new() }
    }

    /// Adds `record`, read at `now`, and lends it back. A record below its partition's position (fetched again
    /// after a seek back) is one already held: it is left out, and `None` returned.
    pub fn push(&mut self, record: ConsumedRecord, now: Instant) -> Option<&ConsumedRecord> {
        let position = self.positions.entry((record.topic.clone(), record.partition)).or_insert(0);
        if record.offset < *position {
            return None;
        }
        *position = record.offset + 1;
        self.since.get_or_insert(now);
        self.bytes += record.size();
        self.records.push(record);
        self.records.last()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records fill a batch, by count or by bytes.
    pub fn full(&self) -> bool {
        self.records.len() >= self.limits.records || self.bytes >= self.limits.bytes
    }

    /// When the batch timer closes a batch of what is held, if anything is.
    pub fn deadline(&self) -> Option<Instant> {
        self.since.map(|since| since + self.limits.timeout)
    }

    /// A batch should be taken at `now`: it is full or its time has come, or (`draining`, at shutdown) anything
    /// held is.
    pub fn due(&self, now: Instant, draining: bool) -> bool {
        !self.is_empty() && (draining || self.full() || self.deadline().is_some_and(|deadline| now >= deadline))
    }

    /// Takes the oldest records, up to the limits (at least one record, however large); what stays starts its
    /// timer at `now`.
    pub fn take(&mut self, now: Instant) -> Vec<ConsumedRecord> {
        let (mut take, mut bytes) = (0, 0);
        for record in self.records.iter().take(self.limits.records) {
            if take > 0 && bytes + record.size() > self.limits.bytes {
                break;
            }
            bytes += record.size();
            take += 1;
        }
        self.bytes -= bytes;
        let taken = self.records.drain(..take).collect();
        self.since = (!self.records.is_empty()).then_some(now);
        taken
    }

    /// Forgets the records and positions of `revoked` partitions (their new owner starts from the stored
    /// offsets: what was read but not written is theirs); returns how many records were dropped.
    pub fn revoke(&mut self, revoked: &BTreeSet<Partition>) -> usize {
        self.positions.retain(|p, _| !revoked.contains(p));
        let before = self.records.len();
        self.records.retain(|r| !revoked.contains(&(r.topic.clone(), r.partition)));
        self.bytes = self.records.iter().map(ConsumedRecord::size).sum();
        if self.records.is_empty() {
            self.since = None;
        }
        before - self.records.len()
    }

    /// The offset after the last record read from `partition`, if any was.
    pub fn position(&self, partition: &Partition) -> Option<i64> {
        self.positions.get(partition).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BatchLimits = BatchLimits { records: 3, bytes: 10_000, timeout: Duration::from_millis(500) };

    fn record(partition: i32, offset: i64, payload_bytes: usize) -> ConsumedRecord {
        ConsumedRecord {
            topic: "t".into(),
            partition,
            offset,
            key: None,
            payload: Some(vec![b'x'; payload_bytes]),
            headers: Vec::new(),
            timestamp: None,
        }
    }

    fn offsets(records: &[ConsumedRecord]) -> Vec<(i32, i64)> {
        records.iter().map(|r| (r.partition, r.offset)).collect()
    }

    #[test]
    fn a_batch_closes_at_the_count_and_the_rest_waits_for_its_own_timer() {
        let start = Instant::now();
        let mut pending = Pending::new(LIMITS);
        for offset in 0..4 {
            assert!(pending.push(record(0, offset, 10), start).is_some());
        }
        assert!(pending.full());
        assert!(pending.due(start, false));
        let later = start + Duration::from_millis(100);
        assert_eq!(offsets(&pending.take(later)), [(0, 0), (0, 1), (0, 2)]);
        assert_eq!(pending.len(), 1);
        assert!(!pending.due(later + Duration::from_millis(499), false));
        assert_eq!(pending.deadline(), Some(later + LIMITS.timeout));
        assert!(pending.due(later + LIMITS.timeout, false));
    }

    #[test]
    fn a_batch_closes_at_the_bytes_and_holds_at_least_one_record_however_large() {
        let start = Instant::now();
        let mut pending = Pending::new(LIMITS);
        pending.push(record(0, 0, 20_000), start);
        pending.push(record(0, 1, 10), start);
        assert!(pending.full(), "one record over the byte limit fills a batch");
        assert_eq!(offsets(&pending.take(start)), [(0, 0)]);
        assert!(!pending.full());
        pending.push(record(0, 2, 6_000), start);
        pending.push(record(0, 3, 6_000), start);
        assert!(pending.full());
        let taken = pending.take(start);
        assert_eq!(offsets(&taken), [(0, 1), (0, 2)], "the next record would pass the byte limit");
        assert_eq!(pending.len(), 1);
    }

    #[test]
    fn a_batch_closes_at_the_timeout_after_its_first_record_or_at_once_when_draining() {
        let start = Instant::now();
        let mut pending = Pending::new(LIMITS);
        assert!(!pending.due(start, true), "nothing held is never due");
        assert_eq!(pending.deadline(), None);
        pending.push(record(0, 0, 10), start);
        pending.push(record(0, 1, 10), start + Duration::from_millis(400));
        assert!(!pending.due(start + Duration::from_millis(499), false));
        assert!(pending.due(start + Duration::from_millis(499), true));
        assert!(pending.due(start + Duration::from_millis(500), false), "the timer runs from the first record");
        assert_eq!(pending.take(start).len(), 2);
        assert_eq!(pending.deadline(), None);
    }

    #[test]
    fn a_record_fetched_again_after_a_seek_back_is_left_out() {
        let start = Instant::now();
        let mut pending = Pending::new(LIMITS);
        assert!(pending.push(record(0, 5, 10), start).is_some());
        assert!(pending.push(record(1, 0, 10), start).is_some());
        assert_eq!(pending.position(&("t".into(), 0)), Some(6));
        assert!(pending.push(record(0, 5, 10), start).is_none(), "offset 5 is held");
        assert!(pending.push(record(0, 6, 10), start).is_some());
        assert_eq!(pending.len(), 3);
        assert_eq!(pending.position(&("t".into(), 2)), None);
    }

    #[test]
    fn a_revoked_partition_leaves_its_records_and_position_to_the_new_owner() {
        let start = Instant::now();
        let mut pending = Pending::new(BatchLimits { records: 100, bytes: 1_000, ..LIMITS });
        pending.push(record(0, 0, 400), start);
        pending.push(record(1, 0, 400), start);
        pending.push(record(0, 1, 400), start);
        assert!(pending.full());
        let revoked: BTreeSet<Partition> = [("t".to_owned(), 0)].into();
        assert_eq!(pending.revoke(&revoked), 2);
        assert_eq!(pending.len(), 1);
        assert!(!pending.full(), "the bytes count only what stays");
        assert_eq!(pending.position(&("t".into(), 0)), None, "a reassigned partition starts where it is stored");
        assert!(pending.push(record(0, 0, 10), start).is_some());
        assert_eq!(pending.revoke(&[("t".to_owned(), 0), ("t".to_owned(), 1)].into()), 2);
        assert_eq!(pending.deadline(), None, "nothing held: no timer");
        assert_eq!(pending.revoke(&BTreeSet::new()), 0, "an empty revoke changes nothing");
    }
}
