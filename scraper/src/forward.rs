//! Drains the queue into Kafka, in queue order, and settles each record when its delivery report arrives:
//! acknowledged (counted, its budget returned), refused for good (logged with its key, counted), or failed
//! with a retriable error (queued again). A record counts as produced only once the broker acknowledged it.
//! After a fatal producer error nothing is sent or retried any more: what the broker did not acknowledge by
//! then is reported as unacknowledged.

use std::collections::VecDeque;
use std::ffi::{CString, NulError};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::kafka_sink::{KafkaSink, Report};
use crate::metrics::{ACCEPTED, Metrics, REJECTED};
use crate::queue::Queued;

/// How a retriable delivery failure waits before the record is queued again.
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// How long to wait before offering a record again to a producer whose queue was full.
const FULL_DELAY: Duration = Duration::from_millis(10);
/// Records or reports taken from a channel at once: one wake-up for many.
const BATCH: usize = 512;

/// What the forwarder did by the time it stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Forwarded {
    pub accepted: u64,
    pub rejected: u64,
    /// Records Kafka refused for good.
    pub failed: u64,
    /// Records still unacknowledged when `give_up` fired or the producer failed for good: read from a source,
    /// never confirmed by the broker.
    pub unacknowledged: u64,
}

/// Forwards until every emitter is dropped and every record settled, until `give_up` (the end of the
/// shutdown grace period), or until the producer failed for good and the reports of what it held are in.
pub async fn forward(
    mut queue: mpsc::UnboundedReceiver<Queued>,
    sink: Arc<KafkaSink>,
    metrics: Metrics,
    give_up: CancellationToken,
) -> Forwarded {
    let mut reports = sink.reports().await;
    let mut forwarder = Forwarder::new(&sink, metrics);
    let mut records = Vec::with_capacity(BATCH);
    let mut settled = Vec::with_capacity(BATCH);
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut timer_set_for = None;
    let mut open = true;
    loop {
        let fatal = forwarder.fatal;
        if forwarder.in_flight.is_empty() && (fatal || (!open && forwarder.is_idle())) {
            break;
        }
        let wake = if fatal { None } else { forwarder.next_wake() };
        if wake != timer_set_for {
            if let Some(at) = wake {
                timer.as_mut().reset(at);
            }
            timer_set_for = wake;
        }
        tokio::select! {
            biased;
            _ = give_up.cancelled() => break,
            // The run stops the sources; what they still queue meanwhile counts as unacknowledged.
            _ = sink.failed(), if !fatal => forwarder.fatal = true,
            _ = reports.recv_many(&mut settled, BATCH), if !forwarder.in_flight.is_empty() => {
                for report in settled.drain(..) {
                    forwarder.settle(report);
                }
                forwarder.released = None;
            }
            () = &mut timer, if wake.is_some() => {
                timer_set_for = None;
                forwarder.due();
            }
            received = queue.recv_many(&mut records, BATCH), if open && !fatal && forwarder.backlog.is_empty() => {
                if received == 0 {
                    open = false;
                }
                forwarder.backlog.extend(records.drain(..));
                forwarder.send_backlog();
            }
        }
    }
    let mut done = forwarder.done;
    done.unacknowledged +=
        (forwarder.in_flight.len() + forwarder.retries.len() + forwarder.backlog.len() + queue.len()) as u64;
    sink.keep_until_dropped(forwarder.in_flight.drain());
    done
}

struct Forwarder<'a> {
    sink: &'a KafkaSink,
    metrics: Metrics,
    done: Forwarded,
    in_flight: InFlight,
    topics: Topics,
    /// Received, not yet handed to the producer, in queue order; the first waits when the producer is full.
    backlog: VecDeque<Queued>,
    /// When the producer's queue was found full, if it was on the last attempt.
    full_since: Option<Instant>,
    /// Records waiting out [`RETRY_DELAY`] after a retriable failure, with when they are due (in order, as
    /// every one waits as long).
    retries: VecDeque<(Instant, Queued)>,
    /// The producer failed for good.
    fatal: bool,
    /// The budget of the records acknowledged in one batch of reports, returned at once at its end.
    released: Option<OwnedSemaphorePermit>,
}

impl<'a> Forwarder<'a> {
    fn new(sink: &'a KafkaSink, metrics: Metrics) -> Self {
        Self {
            sink,
            metrics,
            done: Forwarded::default(),
            in_flight: InFlight::default(),
            topics: Topics::default(),
            backlog: VecDeque::new(),
            full_since: None,
            retries: VecDeque::new(),
            fatal: false,
            released: None,
        }
    }

    fn is_idle(&self) -> bool {
        self.backlog.is_empty() && self.retries.is_empty()
    }

    /// When a waiting record is due: the producer had no room, or a retry's delay is up.
    fn next_wake(&self) -> Option<Instant> {
        match self.full_since {
            Some(since) => Some(since + FULL_DELAY),
            None => self.retries.front().map(|(at, _)| *at),
        }
    }

    fn due(&mut self) {
        if self.full_since.take().is_none() {
            let now = Instant::now();
            // Retries go first, before records read after them.
            while self.retries.front().is_some_and(|(at, _)| *at <= now) {
                let (_, queued) = self.retries.pop_front().expect("a due retry");
                self.backlog.push_front(queued);
            }
        }
        self.send_backlog();
    }

    /// Hands the backlog to the producer in order, up to the first record it has no room for.
    fn send_backlog(&mut self) {
        while let Some(queued) = self.backlog.pop_front() {
            let topic = match self.topics.index_of(&queued.record.topic) {
                Ok(topic) => topic,
                Err(e) => {
                    self.failed(queued, e.into());
                    continue;
                }
            };
            let tag = self.in_flight.insert(queued, topic);
            // SAFETY: the record stays in its slot, untouched, until its report arrives (`settle`) or the
            // forwarder stops, which hands what is still in flight to `keep_until_dropped`.
            let sent = unsafe {
                self.sink.enqueue_in_place(&self.topics.0[topic].c_name, &self.in_flight.get(tag).record, tag)
            };
            let Err(error) = sent else { continue };
            let (queued, _) = self.in_flight.remove(tag).expect("the record just inserted");
            match error {
                KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => {
                    self.backlog.push_front(queued);
                    self.full_since = Some(Instant::now());
                    return;
                }
                error => self.failed(queued, error),
            }
        }
    }

    fn settle(&mut self, report: Report) {
        // A report of a record a previous sender sent has nothing to settle here.
        let Some((queued, topic)) = self.in_flight.remove(report.tag) else { return };
        match report.result {
            Ok(_) => self.acknowledged(queued, topic),
            Err(error) => self.failed(queued, error),
        }
    }

    /// `topic` is the record's index in [`Topics`].
    fn acknowledged(&mut self, queued: Queued, topic: usize) {
        let topic = &mut self.topics.0[topic];
        let (outcome, counter) = if queued.record.is_reject() {
            self.done.rejected += 1;
            (REJECTED, &mut topic.rejected)
        } else {
            self.done.accepted += 1;
            (ACCEPTED, &mut topic.accepted)
        };
        counter.get_or_insert_with(|| self.metrics.produced_counter(outcome, &queued.record.topic)).inc();
        self.metrics.queued_bytes.dec_by(queued.cost());
        let (_record, share) = queued.into_parts();
        match &mut self.released {
            Some(released) => released.merge(share),
            None => self.released = Some(share),
        }
    }

    fn failed(&mut self, queued: Queued, error: KafkaError) {
        if self.fatal || self.sink.fatal_error().is_some() {
            // Nothing retried can go out any more (`_FATAL`, or purged from the producer's queue): left for the
            // summary of unacknowledged records. Its budget goes back when it is dropped here.
            self.fatal = true;
            self.done.unacknowledged += 1;
            self.metrics.queued_bytes.dec_by(queued.cost());
        } else if is_permanent(&error) {
            self.refused(&queued, &error);
        } else {
            self.metrics.delivery_retries.inc();
            tracing::warn!(topic = %queued.record.topic, %error, "delivery failed; retrying");
            self.retries.push_back((Instant::now() + RETRY_DELAY, queued));
        }
    }

    /// Kafka refused the record for good (e.g. larger than the broker accepts): said with its key, counted.
    fn refused(&mut self, queued: &Queued, error: &KafkaError) {
        self.done.failed += 1;
        self.metrics.delivery_failures.inc();
        self.metrics.queued_bytes.dec_by(queued.cost());
        tracing::error!(
            topic = %queued.record.topic,
            key = queued.record.key.as_deref().unwrap_or(""),
            bytes = queued.record.payload.len(),
            %error,
            "Kafka refused a record for good"
        );
    }
}

/// The records the producer holds, by the tag their delivery report comes back with: slots reused, so that
/// a record in flight costs no allocation of its own.
#[derive(Default)]
struct InFlight {
    /// Each record with its topic's index in [`Topics`], so that its report finds the topic's counter.
    slots: Vec<Option<(Queued, usize)>>,
    free: Vec<usize>,
    len: usize,
}

impl InFlight {
    fn insert(&mut self, queued: Queued, topic: usize) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(tag) => {
                self.slots[tag] = Some((queued, topic));
                tag
            }
            None => {
                self.slots.push(Some((queued, topic)));
                self.slots.len() - 1
            }
        }
    }

    fn get(&self, tag: usize) -> &Queued {
        &self.slots[tag].as_ref().expect("a record in flight").0
    }

    fn remove(&mut self, tag: usize) -> Option<(Queued, usize)> {
        let queued = self.slots.get_mut(tag)?.take()?;
        self.len -= 1;
        self.free.push(tag);
        Some(queued)
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Takes every record out, for [`KafkaSink::keep_until_dropped`].
    fn drain(&mut self) -> impl Iterator<Item = Queued> + use<> {
        self.len = 0;
        self.free.clear();
        std::mem::take(&mut self.slots).into_iter().flatten().map(|(queued, _)| queued)
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What the forwarder needs of each topic, made once a topic rather than once a record.
#[derive(Default)]
struct Topics(Vec<Topic>);

struct Topic {
    /// The name as librdkafka takes it.
    c_name: CString,
    /// Its `scraper_records_produced_total` counters, each got at the first record of its outcome: a data
    /// topic has no rejected series, nor the rejects topic an accepted one.
    accepted: Option<Counter>,
    rejected: Option<Counter>,
}

impl Topics {
    /// The index of `topic`, added if new.
    fn index_of(&mut self, topic: &str) -> Result<usize, NulError> {
        if let Some(at) = self.0.iter().position(|known| known.c_name.as_bytes() == topic.as_bytes()) {
            return Ok(at);
        }
        self.0.push(Topic { c_name: CString::new(topic)?, accepted: None, rejected: None });
        Ok(self.0.len() - 1)
    }
}

impl Drop for InFlight {
    /// Only a forwarder that panicked drops records still in flight: librdkafka may still read their bytes, so
    /// those are leaked rather than freed. Their budget is returned.
    fn drop(&mut self) {
        for queued in self.drain() {
            std::mem::forget(queued.into_parts().0);
        }
    }
}

/// Errors that no retry can fix: the record itself, or our permission to write it.
fn is_permanent(error: &KafkaError) -> bool {
    let code = match error {
        // A topic name with a NUL byte in it.
        KafkaError::Nul(_) => return true,
        KafkaError::MessageProduction(code) => *code,
        other => match other.rdkafka_error_code() {
            Some(code) => code,
            None => return false,
        },
    };
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::InvalidRecord
    )
}
