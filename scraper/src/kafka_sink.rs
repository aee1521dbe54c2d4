//! The Kafka sink every source writes to: an idempotent producer (`acks=all`) whose records count as sent
//! only once the broker acknowledged them, and the topic set-up that brokers without auto-creation need.
//!
//! Delivery reports come back as [`Report`]s on one channel, tagged with the number the sender gave the
//! record: a record costs neither a future nor a channel of its own, which at stream rate cost more than the
//! record itself. A fatal producer error (e.g. the idempotent producer losing its sequence) is kept, because
//! no record can be delivered after it.

mod no_copy;

use std::ffi::CStr;
use std::sync::OnceLock;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Message};
use tokio::sync::{Mutex, MutexGuard, mpsc};
use tokio_util::sync::CancellationToken;

use crate::queue::Queued;
use crate::record::Record;

/// Why a record was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The broker refused the record or the producer gave up on it (e.g. `message.timeout.ms` passed).
    #[error("kafka did not acknowledge the record: {0}")]
    Kafka(#[from] KafkaError),
    /// The producer was dropped before the delivery report arrived.
    #[error("the producer shut down before the record was acknowledged")]
    Canceled,
}

/// Where the broker put an acknowledged record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

/// The delivery report of the record sent with number `tag`.
#[derive(Debug)]
pub struct Report {
    pub tag: usize,
    pub result: Result<Delivered, KafkaError>,
}

pub type Reports = mpsc::UnboundedReceiver<Report>;

pub struct KafkaSink {
    producer: ThreadedProducer<SinkContext>,
    /// Records handed over in place whose reports a stopped forwarder no longer waits for: librdkafka may
    /// still read them, so they are freed only after the producer (a field before this one, dropped first).
    orphans: std::sync::Mutex<Vec<Record>>,
    /// One reader at a time (the forwarder, or [`KafkaSink::send`]): tags are only unique to their sender.
    reports: Mutex<Reports>,
    /// For the admin client that creates topics: the same connection settings as the producer.
    config: ClientConfig,
}

struct SinkContext {
    reports: mpsc::UnboundedSender<Report>,
    /// Cancelled when librdkafka raised a fatal error.
    fatal: CancellationToken,
    /// What librdkafka said when it raised it.
    fatal_event: OnceLock<String>,
}

impl ClientContext for SinkContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            tracing::error!(target: "librdkafka", reason, "fatal producer error: no record can be delivered any more");
            let _ = self.fatal_event.set(reason.to_owned());
            self.fatal.cancel();
        } else {
            tracing::error!(target: "librdkafka", %error, reason, "librdkafka error");
        }
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, tag: usize) {
        let result = match result {
            Ok(message) => Ok(Delivered { partition: message.partition(), offset: message.offset() }),
            Err((error, _)) => Err(error.clone()),
        };
        // Nobody reads reports once the sink is being dropped: nothing is left to settle them for.
        let _ = self.reports.send(Report { tag, result });
    }
}

impl KafkaSink {
    /// A producer on `config` (bootstrap servers and any security settings), with the delivery guarantees of
    /// the Kafka contract set on top.
    pub fn new(mut config: ClientConfig) -> Result<Self, KafkaError> {
        let base = config.clone();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "lz4")
            .set("linger.ms", "20");
        // A broker that is away makes records wait, not fail: retries go on until it is back (infinite
        // delivery timeout), while the scraper's byte budget keeps memory bounded. KAFKA_MESSAGE_TIMEOUT_MS
        // overrides it.
        if config.get("message.timeout.ms").is_none() {
            config.set("message.timeout.ms", "0");
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let context = SinkContext { reports: tx, fatal: CancellationToken::new(), fatal_event: OnceLock::new() };
        let producer = ThreadedProducer::from_config_and_context(&config, context)?;
        Ok(Self { producer, orphans: Default::default(), reports: Mutex::new(rx), config: base })
    }

    /// Creates the topics that do not exist yet, with `partitions` partitions each.
    pub async fn ensure_topics(&self, topics: &[&str], partitions: i32) -> Result<(), KafkaError> {
        let admin: AdminClient<DefaultClientContext> = self.config.create()?;
        let new_topics: Vec<NewTopic<'_>> =
            topics.iter().map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1))).collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        for result in admin.create_topics(&new_topics, &options).await? {
            match result {
                Ok(topic) => tracing::info!(%topic, partitions, "created topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    tracing::error!(%topic, error = %code, "could not create topic");
                    return Err(KafkaError::AdminOp(code));
                }
            }
        }
        Ok(())
    }

    /// Connects the producer to the cluster (a metadata request for `topic`), so that its broker connections,
    /// and with them the idempotent producer's id, are in place before the sources start reading: otherwise
    /// the first second of a stream piles up in the queue. Blocking; call it from `spawn_blocking`.
    pub fn connect(&self, topic: &str, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.client().fetch_metadata(Some(topic), timeout).map(|_| ())
    }

    /// The delivery reports, for the one caller that sends at a time.
    pub async fn reports(&self) -> MutexGuard<'_, Reports> {
        self.reports.lock().await
    }

    /// Hands `record` to the producer without copying its key and payload; its [`Report`] arrives tagged
    /// `tag`. Never waits: a full producer queue is `QueueFull`, for the caller to try again later.
    ///
    /// # Safety
    /// The bytes of `record.key` and `record.payload` stay in place, unchanged, until the report tagged `tag`
    /// arrived, or are handed to [`KafkaSink::keep_until_dropped`].
    pub unsafe fn enqueue_in_place(&self, topic: &CStr, record: &Record, tag: usize) -> Result<(), KafkaError> {
        // SAFETY: the producer is alive while `self` is, its context takes `usize` tags, and the caller keeps
        // the bytes in place.
        unsafe { no_copy::produce(self.producer.client().native_ptr(), topic, record, tag) }
    }

    /// Keeps records handed over with [`KafkaSink::enqueue_in_place`] whose reports will not be awaited, until
    /// the producer is gone. Their budget is returned: nothing waits for them any more.
    pub fn keep_until_dropped(&self, records: impl IntoIterator<Item = Queued>) {
        let mut orphans = self.orphans.lock().unwrap_or_else(|e| e.into_inner());
        orphans.extend(records.into_iter().map(Queued::into_record));
    }

    /// Hands a copy of `record` to the producer; its [`Report`] arrives tagged `tag`.
    fn enqueue(&self, record: &Record, tag: usize) -> Result<(), KafkaError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.header_count());
        for (key, value) in record.headers() {
            headers = headers.insert(Header { key, value: Some(value.as_bytes()) });
        }
        let mut base = BaseRecord::<str, [u8], usize>::with_opaque_to(&record.topic, tag)
            .payload(&record.payload)
            .headers(headers);
        if let Some(key) = &record.key {
            base = base.key(key.as_str());
        }
        self.producer.send(base).map_err(|(error, _)| error)
    }

    /// Queues `record` and waits for the broker's acknowledgement. For one-off records: it holds the reports
    /// while it waits, so it must not run beside a forwarder on the same sink.
    pub async fn send(&self, record: &Record) -> Result<Delivered, SendError> {
        let mut reports = self.reports().await;
        loop {
            match self.enqueue(record, 0) {
                Ok(()) => break,
                Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(error) => return Err(error.into()),
            }
        }
        let report = reports.recv().await.ok_or(SendError::Canceled)?;
        Ok(report.result?)
    }

    /// Resolves once the producer raised a fatal error.
    pub async fn failed(&self) {
        self.producer.context().fatal.cancelled().await
    }

    /// The fatal error the producer raised, if it did: after it, no record can be delivered.
    pub fn fatal_error(&self) -> Option<String> {
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            return Some(format!("{code} ({code:?}): {reason}"));
        }
        self.producer.context().fatal_event.get().cloned()
    }

    /// Waits until every queued record was acknowledged or failed, at most `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }

    /// Raises a genuine fatal error in the live producer (`rd_kafka_test_fatal_error`), as librdkafka does on
    /// e.g. an out-of-order sequence: for tests of what follows one.
    #[doc(hidden)]
    pub fn raise_fatal_error_for_test(&self, reason: &str) {
        let reason = std::ffi::CString::new(reason).expect("a reason without NUL");
        // SAFETY: the producer is alive for the call, and the reason a valid C string that librdkafka copies.
        unsafe {
            rdkafka::bindings::rd_kafka_test_fatal_error(
                self.producer.client().native_ptr(),
                rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                reason.as_ptr(),
            );
        }
    }
}
