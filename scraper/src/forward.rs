//! Drains the queue into Kafka, in queue order, and settles each record when its delivery report arrives:
//! acknowledged (counted, its budget returned), refused for good (logged with its key, counted), or failed
//! with a retriable error (queued again). A record counts as produced only once the broker acknowledged it.
//! After a fatal producer error nothing is sent or retried any more: what the broker did not acknowledge by
//! then is reported as unacknowledged.

use std::collections::VecDeque;
use std::ffi::{CStr, CString, NulError};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::kafka_sink::{KafkaSink, Report};
use crate::metrics::Metrics;
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
    outcomes: Outcomes,
    done: Forwarded,
    in_flight: InFlight,
    topics: TopicNames,
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
        // One statement each: a label lookup holds the family's lock until the end of its statement, and the
        // second lookup may need that lock to add its label set.
        let accepted = metrics.produced.get_or_create(&vec![("outcome", "accepted".to_owned())]).clone();
        let rejected = metrics.produced.get_or_create(&vec![("outcome", "rejected".to_owned())]).clone();
        Self {
            sink,
            metrics,
            outcomes: Outcomes { accepted, rejected },
            done: Forwarded::default(),
            in_flight: InFlight::default(),
            topics: TopicNames::default(),
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
            let topic = match self.topics.c_name(&queued.record.topic) {
                Ok(topic) => topic,
                Err(e) => {
                    self.failed(queued, e.into());
                    continue;
                }
            };
            let tag = self.in_flight.insert(queued);
            // SAFETY: the record stays in its slot, untouched, until its report arrives (`settle`) or the
            // forwarder stops, which hands what is still in flight to `keep_until_dropped`.
            let sent = unsafe { self.sink.enqueue_in_place(topic, &self.in_flight.get(tag).record, tag) };
            let Err(error) = sent else { continue };
            let queued = self.in_flight.remove(tag).expect("the record just inserted");
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
        let Some(queued) = self.in_flight.remove(report.tag) else { return };
        match report.result {
            Ok(_) => self.acknowledged(queued),
            Err(error) => self.failed(queued, error),
        }
    }

    fn acknowledged(&mut self, queued: Queued) {
        if queued.record.is_reject() {
            self.done.rejected += 1;
            self.outcomes.rejected.inc();
        } else {
            self.done.accepted += 1;
            self.outcomes.accepted.inc();
        }
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

/// The `scraper_records_produced_total` counters, looked up once rather than once a record.
struct Outcomes {
    accepted: Counter,
    rejected: Counter,
}

/// The records the producer holds, by the tag their delivery report comes back with: slots reused, so that
/// a record in flight costs no allocation of its own.
#[derive(Default)]
struct InFlight {
    slots: Vec<Option<Queued>>,
    free: Vec<usize>,
    len: usize,
}

impl InFlight {
    fn insert(&mut self, queued: Queued) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(tag) => {
                self.slots[tag] = Some(queued);
                tag
            }
            None => {
                self.slots.push(Some(queued));
                self.slots.len() - 1
            }
        }
    }

    fn get(&self, tag: usize) -> &Queued {
        self.slots[tag].as_ref().expect("a record in flight")
    }

    fn remove(&mut self, tag: usize) -> Option<Queued> {
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
        std::mem::take(&mut self.slots).into_iter().flatten()
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Topic names as librdkafka takes them: made once a topic, not once a record.
#[derive(Default)]
struct TopicNames(Vec<CString>);

impl TopicNames {
    fn c_name(&mut self, topic: &str) -> Result<&CStr, NulError> {
        let known = self.0.iter().position(|name| name.as_bytes() == topic.as_bytes());
        let at = match known {
            Some(at) => at,
            None => {
                self.0.push(CString::new(topic)?);
                self.0.len() - 1
            }
        };
        Ok(&self.0[at])
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
