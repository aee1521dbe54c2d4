//! The consume → batch → write → commit loop. Polling never stops while a batch is written (a slow or failing
//! database does not get this member thrown out of the group): the next batch fills meanwhile, and once it is
//! full the partitions are paused until the write completes. Kafka offsets are committed only after the
//! database transaction that stored the rows and the same offsets.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus_client::metrics::counter::Counter;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use sea_orm::DatabaseConnection;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use common::ops::Health;

use crate::assignment::{self, Assignment};
use crate::batch::Routes;
use crate::consumer::{self, IngestConsumer, Partition, RebalanceEvent};
use crate::flush::{Decoding, Flush, Flushed};
use crate::metrics::Metrics;
use crate::offsets;
use crate::pending::{BatchLimits, Pending};

/// How the pipeline batches and when it stops by itself.
#[derive(Clone, Debug)]
pub struct Options {
    pub group: String,
    pub routes: Routes,
    pub batch_size: usize,
    /// A batch also closes at this many bytes of records (at least one record).
    pub batch_bytes: usize,
    pub batch_timeout: Duration,
    pub exit_when_idle: Option<Duration>,
    pub progress_interval: Duration,
}

/// Why the pipeline returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    Shutdown,
    Idle,
}

pub struct Pipeline {
    consumer: Arc<IngestConsumer>,
    db: DatabaseConnection,
    options: Options,
    metrics: Metrics,
    health: Health,
    flush: Flush,
}

/// What the loop tracks between two polls.
struct State {
    /// Records read but not yet handed to a write, and when they make a batch.
    pending: Pending,
    /// The one write under way; the next one starts when it is durable, so batches commit in order.
    in_flight: Option<JoinHandle<anyhow::Result<Flushed>>>,
    /// The next batch, decoded and encoded while the one in flight is written.
    decoding: Option<Decoding>,
    /// The partitions this member holds, and whether they are paused.
    assignment: Assignment,
    /// The `inserter_records_consumed_total` counter of each topic, looked up once rather than once a record.
    consumed: HashMap<String, Counter>,
    last_record_at: Instant,
    stopping: bool,
    progress: Progress,
}

/// Counters since the last progress line.
struct Progress {
    since: Instant,
    records: u64,
    batches: u64,
}

impl Pipeline {
    pub fn new(
        consumer: Arc<IngestConsumer>,
        db: DatabaseConnection,
        options: Options,
        metrics: Metrics,
        health: Health,
    ) -> Self {
        let flush = Flush {
            db: db.clone(),
            group: options.group.clone(),
            routes: options.routes.clone(),
            metrics: metrics.clone(),
            health: health.clone(),
        };
        Self { consumer, db, options, metrics, health, flush }
    }

    /// Runs until `shutdown` (after finishing and committing the records in hand) or, with `exit_when_idle`,
    /// until no record has arrived for that long. An error means a batch could not be made durable; its records
    /// were not committed anywhere and will be consumed again.
    pub async fn run(&self, shutdown: CancellationToken) -> anyhow::Result<Stopped> {
        let now = Instant::now();
        let limits = BatchLimits {
            records: self.options.batch_size,
            bytes: self.options.batch_bytes,
            timeout: self.options.batch_timeout,
        };
        let mut state = State {
            pending: Pending::new(limits),
            in_flight: None,
            decoding: None,
            assignment: Assignment::new(now),
            consumed: HashMap::new(),
            last_record_at: now,
            stopping: false,
            progress: Progress { since: now, records: 0, batches: 0 },
        };
        let mut progress_tick =
            tokio::time::interval_at(now + self.options.progress_interval, self.options.progress_interval);
        loop {
            for event in self.consumer.context().take_events() {
                state.apply(event);
            }
            if state.assignment.due(Instant::now(), state.idle_writer()) {
                self.assign_at_stored_offsets(&mut state).await;
            }
            if state.in_flight.is_none() {
                let next = match state.decoding.take() {
                    Some(decoding) => Some(decoding),
                    None => state.batch_due().then(|| self.start_decode(&mut state)),
                };
                if let Some(decoding) = next {
                    self.start_write(&mut state, decoding, &shutdown);
                }
            }
            if state.in_flight.is_some() && state.decoding.is_none() && state.batch_due() {
                state.decoding = Some(self.start_decode(&mut state));
            }
            if state.assignment.should_pause(state.in_flight.is_some(), state.pending.full()) {
                self.pause_or_resume(&mut state, true);
            }
            let settled = state.pending.is_empty() && state.idle_writer() && !state.assignment.waiting();
            if settled && state.stopping {
                return Ok(Stopped::Shutdown);
            }
            let idle_deadline = self
                .options
                .exit_when_idle
                .filter(|_| state.assignment.ever_assigned())
                .map(|idle| state.last_record_at + idle);
            if settled && idle_deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                // A broker slow to answer is not an empty topic: a backfill that exited here would end short.
                if let Some(remaining) = self.records_remaining(&state) {
                    tracing::info!(remaining, "no new record, but the broker holds more: waiting for them");
                    state.last_record_at = Instant::now();
                    continue;
                }
                tracing::info!(idle = ?self.options.exit_when_idle.unwrap_or_default(), "no new record: exiting");
                return Ok(Stopped::Idle);
            }

            // Only the deadlines this loop can act on when they pass: while a write is in flight with the next
            // batch decoded, or partitions wait for an idle writer, the write's end wakes the loop, and a
            // deadline already past would turn the select into a busy loop that takes a core from Postgres.
            let can_start_batch = state.in_flight.is_none() || state.decoding.is_none();
            let wake_at = [
                state.pending.deadline().filter(|_| can_start_batch),
                state.assignment.wake_at(state.idle_writer()),
                idle_deadline.filter(|_| settled),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                _ = shutdown.cancelled(), if !state.stopping => {
                    state.stopping = true;
                }
                joined = async { state.in_flight.as_mut().expect("guarded").await }, if state.in_flight.is_some() => {
                    state.in_flight = None;
                    let flushed = joined.context("the batch writer panicked")??;
                    self.finish_write(&mut state, flushed);
                }
                message = self.consumer.recv(), if !state.stopping => self.accept(&mut state, message),
                _ = self.consumer.context().event_pushed() => {}
                _ = progress_tick.tick() => self.log_progress(&mut state),
                _ = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }

    /// The records the broker holds beyond what this member has read, over its assigned partitions; `None`
    /// when there are none, or when the broker cannot say within 5 s (idle then means idle, as it did). The
    /// requests queue behind a fetch the broker holds (up to `fetch.wait.max.ms`), hence the long wait; they
    /// are made only when the member is idle and settled, so they hold up no batch.
    fn records_remaining(&self, state: &State) -> Option<i64> {
        const ASK: Duration = Duration::from_secs(5);
        let assignment = self.consumer.assignment().ok()?;
        let committed = self.consumer.committed_offsets(assignment.clone(), ASK).ok();
        let committed_at = |topic: &str, partition: i32| {
            committed.as_ref()?.find_partition(topic, partition)?.offset().to_raw().filter(|offset| *offset >= 0)
        };
        let mut remaining = 0;
        for element in assignment.elements() {
            let (topic, partition) = (element.topic(), element.partition());
            let Ok((low, high)) = self.consumer.fetch_watermarks(topic, partition, ASK) else { continue };
            let read =
                state.pending.position(&(topic.to_owned(), partition)).or_else(|| committed_at(topic, partition));
            remaining += (high - read.unwrap_or(low).max(low)).max(0);
        }
        (remaining > 0).then_some(remaining)
    }

    fn accept(&self, state: &mut State, message: Result<BorrowedMessage<'_>, KafkaError>) {
        match message {
            Ok(message) => {
                let now = Instant::now();
                let Some(record) = state.pending.push(consumer::detach(&message), now) else { return };
                state.last_record_at = now;
                if let Some(consumed) = state.consumed.get(&record.topic) {
                    consumed.inc();
                } else {
                    let consumed = self.metrics.consumed_on(&record.topic);
                    consumed.inc();
                    state.consumed.insert(record.topic.clone(), consumed);
                }
                state.progress.records += 1;
            }
            Err(e) => tracing::warn!(error = %e, "Kafka consumer error"),
        }
    }

    /// Reads the offsets stored with the rows and assigns the waiting partitions there; a partition with no
    /// stored offset starts at Kafka's committed offset, else at the earliest.
    async fn assign_at_stored_offsets(&self, state: &mut State) {
        let stored = match offsets::stored(&self.db, &self.options.group).await {
            Ok(stored) => stored,
            Err(e) => {
                let delay = state.assignment.failed(Instant::now());
                self.health.set_problem(format!("database unreachable: {e}"));
                tracing::warn!(error = %e, retry_in = ?delay, "cannot read stored offsets; partitions stay unassigned");
                return;
            }
        };
        let starts = state.assignment.starts(|partition| stored.get(partition).copied());
        let mut assignment = TopicPartitionList::new();
        let mut described = Vec::new();
        for ((topic, partition), offset) in &starts.offsets {
            let start = if let Offset::Offset(next) = offset { next.to_string() } else { "kafka-committed".into() };
            described.push(format!("{topic}/{partition}@{start}"));
            if let Err(e) = assignment.add_partition_offset(topic, *partition, *offset) {
                tracing::warn!(error = %e, topic, partition, "invalid offset; Kafka's committed offset applies");
            }
        }
        // librdkafka keeps a partition's pause across an unassign: a partition paused for backpressure before a
        // rebalance would stay silent when it comes back.
        let assigned = consumer::assign(&self.consumer, &assignment)
            .and_then(|()| self.consumer.resume(&assignment).context("resume the assigned partitions"));
        match assigned {
            Ok(()) => {
                tracing::info!(starts = ?described, "consuming from the offsets stored with the rows");
                self.commit_to_kafka(&starts.stored, CommitMode::Async);
                let paused = state.assignment.assigned();
                // Idle means no record while consuming: the wait for an assignment does not count.
                state.last_record_at = Instant::now();
                self.health.clear();
                if paused {
                    self.pause_or_resume(state, false);
                }
            }
            Err(e) => {
                state.assignment.failed(Instant::now());
                tracing::warn!(error = %format!("{e:#}"), "assigning partitions failed; retrying");
            }
        }
    }

    /// Takes a batch of the pending records and decodes it on a blocking thread: beside the write in flight, if
    /// there is one.
    fn start_decode(&self, state: &mut State) -> Decoding {
        self.flush.decode(state.pending.take(Instant::now()))
    }

    /// Writes the batch `decoding` gives in the background, retried while the database is unavailable
    /// until it is durable.
    fn start_write(&self, state: &mut State, decoding: Decoding, shutdown: &CancellationToken) {
        state.in_flight = Some(tokio::spawn(self.flush.clone().write(decoding, shutdown.clone())));
    }

    fn finish_write(&self, state: &mut State, flushed: Flushed) {
        self.flush.report(&flushed);
        state.progress.batches += 1;
        // At shutdown the commit must be done before the consumer closes; otherwise it need not be waited for.
        let mode = if state.stopping { CommitMode::Sync } else { CommitMode::Async };
        self.commit_to_kafka(&flushed.next_offsets, mode);
        if state.assignment.paused() {
            self.pause_or_resume(state, false);
        }
    }

    /// Kafka's own commit, after the database's: only for lag tools, so a failure is harmless. Only the
    /// partitions this member still owns: a revoked one's new owner commits its own progress.
    fn commit_to_kafka(&self, next_offsets: &BTreeMap<Partition, i64>, mode: CommitMode) {
        let owned = match self.consumer.assignment() {
            Ok(assignment) => assignment,
            Err(e) => return tracing::debug!(error = %e, "cannot read the assignment; no Kafka commit"),
        };
        let mut offsets = TopicPartitionList::new();
        let owns = |(topic, partition): &Partition| owned.find_partition(topic, *partition).is_some();
        for ((topic, partition), next) in assignment::to_commit(next_offsets, owns) {
            let _ = offsets.add_partition_offset(&topic, partition, Offset::Offset(next));
        }
        if offsets.count() == 0 {
            return;
        }
        if let Err(e) = self.consumer.commit(&offsets, mode) {
            tracing::debug!(error = %e, "Kafka offset commit failed (the database holds the offsets)");
        }
    }

    fn pause_or_resume(&self, state: &mut State, pause: bool) {
        let assignment = match self.consumer.assignment() {
            Ok(assignment) => assignment,
            Err(e) => return tracing::warn!(error = %e, "cannot read the assignment"),
        };
        let result = if pause {
            self.consumer.pause(&assignment)
        } else {
            let held: Vec<Partition> =
                assignment.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
            let mut positions = TopicPartitionList::new();
            for ((topic, partition), next) in assignment::resume_positions(&held, |p| state.pending.position(p)) {
                let _ = positions.add_partition_offset(&topic, partition, Offset::Offset(next));
            }
            // Timeout zero: the seek is queued, not waited for.
            self.consumer.resume(&assignment).and_then(|()| {
                let sought = self.consumer.seek_partitions(positions, Duration::ZERO)?;
                for element in sought.elements() {
                    // A seek that is not waited for reports itself "in progress": that is its success.
                    if let Err(e) = element.error()
                        && e.rdkafka_error_code() != Some(RDKafkaErrorCode::InProgress)
                    {
                        tracing::warn!(error = %e, topic = element.topic(), partition = element.partition(), "seek failed");
                    }
                }
                Ok(())
            })
        };
        match result {
            Ok(()) => state.assignment.set_paused(pause),
            Err(e) => tracing::warn!(error = %e, pause, "pausing or resuming partitions failed"),
        }
    }

    fn log_progress(&self, state: &mut State) {
        let elapsed = state.progress.since.elapsed().as_secs_f64().max(f64::EPSILON);
        tracing::info!(
            records_per_second = (state.progress.records as f64 / elapsed).round(),
            batches = state.progress.batches,
            lag = self.metrics.lag_total(),
            pending = state.pending.len(),
            dead_lettered_total = self.metrics.dead_letters.total(),
            "progress"
        );
        state.progress = Progress { since: Instant::now(), records: 0, batches: 0 };
    }
}

impl State {
    /// A batch of the pending records should be taken now (at shutdown, whatever is pending).
    fn batch_due(&self) -> bool {
        self.pending.due(Instant::now(), self.stopping)
    }

    /// No batch is being decoded or written.
    fn idle_writer(&self) -> bool {
        self.in_flight.is_none() && self.decoding.is_none()
    }

    fn apply(&mut self, event: RebalanceEvent) {
        let now = Instant::now();
        // A rebalance is activity: the idle clock starts again.
        self.last_record_at = now;
        let revoked = self.assignment.apply(event, now).revoked;
        // Their new owner starts from the stored offsets: what we hold but did not write is theirs.
        if !revoked.is_empty() {
            let dropped = self.pending.revoke(&revoked);
            if dropped > 0 {
                tracing::info!(dropped, "left unwritten records of revoked partitions to their new owner");
            }
        }
    }
}
