//! The Kafka sink every source writes to: an idempotent producer (`acks=all`) whose records count as sent
//! only once the broker acknowledged them, and the topic set-up that brokers without auto-creation need.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::future_producer::Delivery;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

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

pub struct KafkaSink {
    producer: FutureProducer,
    /// For the admin client that creates topics: the same connection settings as the producer.
    config: ClientConfig,
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
        Ok(Self { producer: config.create()?, config: base })
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

    /// Queues `record` and returns the future of its delivery report. Waits (without blocking the runtime)
    /// while the producer's queue is full, so memory stays bounded when the broker is slow or away.
    pub async fn enqueue(&self, record: &Record) -> Result<DeliveryFuture, KafkaError> {
        let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header { key, value: Some(value.as_bytes()) });
        }
        let mut future_record = FutureRecord::<str, [u8]>::to(&record.topic).payload(&record.payload).headers(headers);
        if let Some(key) = &record.key {
            future_record = future_record.key(key.as_str());
        }
        loop {
            match self.producer.send_result(future_record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    future_record = returned;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((error, _)) => return Err(error),
            }
        }
    }

    /// Queues `record` and waits for the broker's acknowledgement.
    pub async fn send(&self, record: &Record) -> Result<Delivery, SendError> {
        let delivery = self.enqueue(record).await?;
        await_delivery(delivery).await
    }

    /// Waits until every queued record was acknowledged or failed, at most `timeout`.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}

/// Turns a delivery report into the record's place in the log, or the reason it has none.
pub async fn await_delivery(delivery: DeliveryFuture) -> Result<Delivery, SendError> {
    match delivery.await {
        Ok(Ok(delivered)) => Ok(delivered),
        Ok(Err((error, _message))) => Err(SendError::Kafka(error)),
        Err(_canceled) => Err(SendError::Canceled),
    }
}
