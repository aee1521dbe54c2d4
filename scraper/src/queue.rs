//! The bounded queue between the sources and Kafka. Sources never wait on the broker directly: they hand
//! records to an [`Emitter`], which only waits when the queue's byte budget is spent (a broker that is slow
//! or away), and says so in the logs and the `scraper_queue_full_total` metric. A record's share of the
//! budget is returned only when the broker acknowledged it, so the budget bounds everything the scraper holds:
//! queued, in librdkafka, and in flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, mpsc};

use crate::metrics::Metrics;
use crate::record::Record;

/// A record in the queue, holding its share of the byte budget until the broker acknowledged it.
pub struct Queued {
    pub record: Record,
    _permit: OwnedSemaphorePermit,
    /// Dropped when the record is settled (acknowledged, or given up): how a source learns what the broker
    /// holds (the Bluesky source's resume cursor).
    _settled: Option<Settled>,
}

/// What a source hands in with a record, to be dropped once the record is settled.
pub type Settled = Box<dyn Send + Sync>;

/// The queue is closed: the forwarder stopped, so nothing more can be delivered.
#[derive(Debug, thiserror::Error)]
#[error("the queue to Kafka is closed")]
pub struct Closed;

/// What sources write to. Cheap to clone; each clone can name its own source (the `source` header).
use contract::reject::Reject;
#[derive(Clone)]
pub struct Emitter {
    tx: mpsc::UnboundedSender<Queued>,
    budget: Arc<Semaphore>,
    budget_bytes: u32,
    rejects_topic: Arc<str>,
    source: Arc<str>,
    metrics: Metrics,
    /// This source's counters, looked up once: a label lookup per line would cost more than the line.
    lines: Counter,
    heartbeats: Counter,
    /// When the last "queue full" warning was logged: once every 10 s is enough to tell the story.
    last_warning: Arc<Mutex<Option<Instant>>>,
    /// When the last reject was logged, and how many were not logged since.
    reject_warnings: Arc<Mutex<(Option<Instant>, u64)>>,
}

/// Creates the queue: an emitter for the sources and the receiving end for the forwarder.
pub fn bounded(budget_bytes: u32, rejects_topic: &str, metrics: Metrics) -> (Emitter, mpsc::UnboundedReceiver<Queued>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let emitter = Emitter {
        tx,
        budget: Arc::new(Semaphore::new(budget_bytes as usize)),
        budget_bytes,
        rejects_topic: rejects_topic.into(),
        source: contract::source::UNKNOWN.into(),
        lines: Counter::default(),
        heartbeats: Counter::default(),
        metrics,
        last_warning: Arc::default(),
        reject_warnings: Arc::default(),
    }
    .for_source(contract::source::UNKNOWN);
    (emitter, rx)
}

impl Emitter {
    /// The same queue, with records labelled as coming from `source` (e.g. `x.sample`).
    pub fn for_source(&self, source: &str) -> Self {
        self.for_task(source, source)
    }

    /// The same queue, with records labelled as coming from `source` and counted under `task`: tasks that
    /// write as one source (the partitions of a stream) keep counters of their own.
    pub fn for_task(&self, source: &str, task: &str) -> Self {
        let labels = vec![("source", task.to_owned())];
        // One statement each: a label lookup holds its family's lock until the end of its statement.
        let lines = self.metrics.lines_read.get_or_create(&labels).clone();
        let heartbeats = self.metrics.heartbeats.get_or_create(&labels).clone();
        Self { source: source.into(), lines, heartbeats, ..self.clone() }
    }

    /// Counts a line (or event) read from this source.
    pub fn line_read(&self) {
        self.lines.inc();
    }

    /// Counts a keep-alive heartbeat from this source.
    pub fn heartbeat(&self) {
        self.heartbeats.inc();
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Queues a valid payload for `topic`, keyed by the source's natural id.
    pub async fn accept(&self, topic: &str, key: String, payload: Vec<u8>) -> Result<(), Closed> {
        self.send(Record::accepted(topic, key, payload, self.source.clone(), Utc::now())).await
    }

    /// Queues a valid payload with headers beyond the contract's, for context the payload itself lacks (e.g.
    /// the account a page of media belongs to).
    pub async fn accept_with(
        &self,
        topic: &str,
        key: String,
        payload: Vec<u8>,
        extra_headers: &[(&'static str, String)],
    ) -> Result<(), Closed> {
        let mut record = Record::accepted(topic, key, payload, self.source.clone(), Utc::now());
        record.extra_headers.extend_from_slice(extra_headers);
        self.send(record).await
    }

    /// Queues a payload that failed validation for the rejects topic, with `reason` in its `error` header.
    pub async fn reject(&self, payload: Vec<u8>, reason: &Reject) -> Result<(), Closed> {
        let error = reason.to_string();
        self.warn_rejected(&error, payload.len()).await;
        self.send(Record::rejected(&self.rejects_topic, payload, self.source.clone(), Utc::now(), &error)).await
    }

    /// Queues `record`, waiting while the byte budget is spent.
    pub async fn send(&self, record: Record) -> Result<(), Closed> {
        self.send_settled(record, None).await
    }

    /// Queues `record` as [`Emitter::send`] does, and drops `settled` once the broker acknowledged it (or it
    /// was given up: refused for good, or still unacknowledged when the producer failed or the grace ran out).
    pub async fn send_settled(&self, record: Record, settled: Option<Settled>) -> Result<(), Closed> {
        let cost = cost(&record, self.budget_bytes);
        let permit = match self.budget.clone().try_acquire_many_owned(cost) {
            Ok(permit) => permit,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(Closed),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                self.metrics.queue_full.inc();
                self.warn_full().await;
                self.budget.clone().acquire_many_owned(cost).await.map_err(|_| Closed)?
            }
        };
        self.metrics.queued_bytes.inc_by(i64::from(cost));
        self.tx.send(Queued { record, _permit: permit, _settled: settled }).map_err(|_| Closed)
    }

    /// One warning a second at most: a stream of garbage must not turn into a flood of log lines (every
    /// reject is counted in the metrics and kept in the rejects topic anyway).
    async fn warn_rejected(&self, error: &str, bytes: usize) {
        let mut state = self.reject_warnings.lock().await;
        let (last, suppressed) = &mut *state;
        if last.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            *suppressed += 1;
            return;
        }
        *last = Some(Instant::now());
        let not_logged = std::mem::take(suppressed);
        tracing::warn!(source = %self.source, error, bytes, not_logged, "rejected a payload (to the rejects topic)");
    }

    async fn warn_full(&self) {
        let mut last = self.last_warning.lock().await;
        if last.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
            *last = Some(Instant::now());
            tracing::warn!(
                source = %self.source,
                budget_bytes = self.budget_bytes,
                "the queue to Kafka is full (the broker is slower than the sources, or away): reading waits for room"
            );
        }
    }
}

/// What a record costs the budget: its bytes twice (ours, which librdkafka reads in place and a retry sends
/// again, and the copy in librdkafka's batch until the broker answers it) and a fixed overhead for the
/// record's bookkeeping on both sides, so that the budget tracks the memory really held. A record larger than the whole budget takes all of it rather than waiting forever.
fn cost(record: &Record, budget_bytes: u32) -> u32 {
    let bytes = record.payload.len() + record.key.as_ref().map_or(0, String::len);
    (2 * bytes + RECORD_OVERHEAD).min(budget_bytes as usize) as u32
}

/// Bytes of bookkeeping per record: headers, the record itself, and librdkafka's message.
const RECORD_OVERHEAD: usize = 512;

impl Queued {
    /// The budget this record holds, for the `queued_bytes` gauge when it is released.
    pub fn cost(&self) -> i64 {
        i64::from(self._permit.num_permits() as u32)
    }

    /// The record, its budget returned.
    pub fn into_record(self) -> Record {
        self.record
    }

    /// The record and its share of the budget, for releasing the shares of many records at once: a release
    /// takes the budget's lock.
    pub fn into_parts(self) -> (Record, OwnedSemaphorePermit) {
        (self.record, self._permit)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::bounded;
    use crate::metrics::Metrics;

    #[tokio::test]
    async fn a_source_waits_when_the_budget_is_spent_and_that_is_counted() {
        let metrics = Metrics::default();
        let (emitter, mut queue) = bounded(1000, "rejects", metrics.clone());
        emitter.accept("t", "1".into(), vec![b'x'; 60]).await.unwrap();
        assert_eq!(metrics.queued_bytes.get(), 2 * 61 + 512, "both copies of the bytes, and the bookkeeping");

        let blocked = tokio::spawn({
            let emitter = emitter.clone();
            async move { emitter.accept("t", "2".into(), vec![b'y'; 60]).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!blocked.is_finished(), "no room: the second record waits");
        assert_eq!(metrics.queue_full.get(), 1);

        // The broker acknowledged the first record: its share of the budget comes back.
        drop(queue.recv().await.unwrap());
        blocked.await.unwrap().unwrap();
        assert_eq!(queue.recv().await.unwrap().record.key.as_deref(), Some("2"));
    }

    #[tokio::test]
    async fn a_record_larger_than_the_whole_budget_takes_all_of_it_instead_of_waiting_forever() {
        let (emitter, mut queue) = bounded(100, "rejects", Metrics::default());
        emitter.accept("t", "1".into(), vec![b'x'; 1000]).await.unwrap();
        assert_eq!(queue.recv().await.unwrap().cost(), 100);
    }
}
