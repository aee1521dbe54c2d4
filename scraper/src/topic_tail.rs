//! Reading the end of a topic at start-up: where a source's last run stopped is in the records it left there.
//! A restarted source reads the newest records of each partition of its topic (the Bluesky source: the
//! cursor its last records carry) or every record since a moment (the X source: the newest `scraped_at` of
//! its own records, among the other X streams' in the same topic), and resumes from there.
//!
//! It reads with a consumer of no group, assigned partitions and offsets: nothing is committed, no group is
//! joined, and the inserter's consumer group is not disturbed.

use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::bindings::rd_kafka_resp_err_t as RDKafkaRespErr;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Where each partition is read from.
#[derive(Clone, Copy, Debug)]
pub enum Start {
    /// Its last `n` records.
    Last(i64),
    /// Its first record at or after this time (milliseconds since the epoch), by the records' timestamps.
    Since(i64),
}

/// One record of the tail: its headers and payload.
pub struct Tail<'a> {
    message: &'a BorrowedMessage<'a>,
}

impl Tail<'_> {
    /// The value of header `name`, if present and UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        let headers = self.message.headers()?;
        headers.iter().find(|h| h.key == name).and_then(|h| std::str::from_utf8(h.value?).ok())
    }

    pub fn payload(&self) -> Option<&[u8]> {
        self.message.payload()
    }

    pub fn partition(&self) -> i32 {
        self.message.partition()
    }
}

/// Calls `each` with every record of `topic` from `start` to the end each partition had when the read began,
/// and returns how many partitions held any record at all (before `start` too). A topic that does not exist
/// yet has no tail. Blocking: run it on a blocking thread. Fails when the broker
/// cannot say within `timeout` what the topic holds, or the records cannot be read within it.
pub fn read(
    config: &ClientConfig,
    topic: &str,
    start: Start,
    timeout: Duration,
    mut each: impl FnMut(Tail<'_>),
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + timeout;
    let left = || deadline.saturating_duration_since(Instant::now());
    let mut config = config.clone();
    // librdkafka needs a group id to assign partitions; nothing is committed, and no group is joined.
    config
        .set("group.id", "scraper-topic-tail")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = config.create().context("create a consumer to read the end of the topic")?;
    let metadata = consumer.fetch_metadata(Some(topic), left()).context("read the topic's metadata")?;
    let Some(described) = metadata.topics().iter().find(|t| t.name() == topic) else { return Ok(0) };
    match described.error() {
        // Nothing was ever written.
        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => return Ok(0),
        // Not authorized, no leader yet, ...: the topic may well hold records; the caller asks again.
        Some(error) => anyhow::bail!("the broker cannot describe {topic}: {}", RDKafkaErrorCode::from(error)),
        None if described.partitions().is_empty() => return Ok(0),
        None => {}
    }
    let mut ends = Vec::new();
    let mut assignment = TopicPartitionList::new();
    let mut since = TopicPartitionList::new();
    for partition in described.partitions().iter().map(|p| p.id()) {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, left())
            .with_context(|| format!("read the offsets of {topic} [{partition}]"))?;
        if high <= low {
            continue;
        }
        match start {
            Start::Last(n) => {
                assignment.add_partition_offset(topic, partition, Offset::Offset((high - n.max(1)).max(low)))?;
            }
            Start::Since(millis) => {
                since.add_partition_offset(topic, partition, Offset::Offset(millis))?;
            }
        }
        ends.push((partition, high));
    }
    let written = ends.len();
    if let Start::Since(_) = start
        && since.count() > 0
    {
        let found = consumer.offsets_for_times(since, left()).context("find the offsets of a time")?;
        for element in found.elements() {
            let end = ends.iter().find(|(p, _)| *p == element.partition()).map(|(_, high)| *high);
            match (element.offset(), end) {
                // A partition with nothing at or after the time has nothing to read.
                (Offset::Offset(offset), Some(end)) if offset < end => {
                    assignment.add_partition_offset(topic, element.partition(), Offset::Offset(offset))?;
                }
                _ => ends.retain(|(p, _)| *p != element.partition()),
            }
        }
    }
    if ends.is_empty() {
        return Ok(written);
    }
    consumer.assign(&assignment).context("assign the topic's partitions")?;
    while !ends.is_empty() {
        if left().is_zero() {
            anyhow::bail!("the end of {topic} could not be read within {timeout:?}");
        }
        match consumer.poll(left().min(Duration::from_millis(500))) {
            Some(Ok(message)) => {
                let partition = message.partition();
                let offset = message.offset();
                if let Some(at) = ends.iter().position(|(p, _)| *p == partition) {
                    each(Tail { message: &message });
                    if offset + 1 >= ends[at].1 {
                        ends.swap_remove(at);
                    }
                }
            }
            Some(Err(e)) => return Err(e).context("read the end of the topic"),
            None => {
                // A partition whose last offsets hold no record (a transaction's marker, compaction) is done
                // once its position reached the end.
                let positions = consumer.position().context("read the consumer's positions")?;
                ends.retain(|(partition, end)| match positions.find_partition(topic, *partition).map(|e| e.offset()) {
                    Some(Offset::Offset(position)) => position < *end,
                    _ => true,
                });
            }
        }
    }
    Ok(written)
}
