//! Drains the queue into Kafka, in queue order, and settles each record when its delivery report arrives:
//! acknowledged (counted, its budget returned), refused for good (logged with its key, counted), or failed
//! with a retriable error (queued again). A record counts as produced only once the broker acknowledged it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use prometheus_client::metrics::counter::Counter;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::future_producer::Delivery;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::kafka_sink::{KafkaSink, SendError, await_delivery};
use crate::metrics::Metrics;
use crate::queue::Queued;
use crate::record::header;

/// How a retriable delivery failure waits before the record is queued again.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// What the forwarder did by the time it stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Forwarded {
    pub accepted: u64,
    pub rejected: u64,
    /// Records Kafka refused for good.
    pub failed: u64,
    /// Records still unacknowledged when `give_up` fired: read from a source, never confirmed by the broker.
    pub unacknowledged: u64,
}

type InFlight = Pin<Box<dyn Future<Output = (Queued, Result<Delivery, SendError>)> + Send>>;

/// Forwards until every emitter is dropped and every record settled, or until `give_up` (the end of the
/// shutdown grace period).
pub async fn forward(
    mut queue: mpsc::UnboundedReceiver<Queued>,
    sink: Arc<KafkaSink>,
    metrics: Metrics,
    give_up: CancellationToken,
) -> Forwarded {
    let mut done = Forwarded::default();
    // One statement each: a label lookup holds the family's lock until the end of its statement, and the
    // second lookup may need that lock to add its label set.
    let accepted = metrics.produced.get_or_create(&vec![("outcome", "accepted".to_owned())]).clone();
    let rejected = metrics.produced.get_or_create(&vec![("outcome", "rejected".to_owned())]).clone();
    let outcomes = Outcomes { accepted, rejected };
    let mut in_flight: FuturesUnordered<InFlight> = FuturesUnordered::new();
    let mut open = true;
    while open || !in_flight.is_empty() {
        tokio::select! {
            biased;
            _ = give_up.cancelled() => break,
            Some((queued, result)) = in_flight.next(), if !in_flight.is_empty() => {
                match result {
                    Ok(_) => done.settle(&queued, &outcomes, &metrics),
                    Err(e) if is_permanent(&e) => done.fail(&queued, &e, &metrics),
                    Err(e) => in_flight.push(retry(&sink, queued, &e, &metrics)),
                }
            }
            next = queue.recv(), if open => match next {
                Some(queued) => match sink.enqueue(&queued.record).await {
                    Ok(delivery) => in_flight.push(Box::pin(async move { (queued, await_delivery(delivery).await) })),
                    Err(e) => match SendError::Kafka(e) {
                        e if is_permanent(&e) => done.fail(&queued, &e, &metrics),
                        e => in_flight.push(retry(&sink, queued, &e, &metrics)),
                    },
                },
                None => open = false,
            },
        }
    }
    done.unacknowledged = (in_flight.len() + queue.len()) as u64;
    done
}

/// The `scraper_records_produced_total` counters, looked up once rather than once a record.
struct Outcomes {
    accepted: Counter,
    rejected: Counter,
}

impl Forwarded {
    fn settle(&mut self, queued: &Queued, outcomes: &Outcomes, metrics: &Metrics) {
        if queued.record.headers.iter().any(|(name, _)| *name == header::ERROR) {
            self.rejected += 1;
            outcomes.rejected.inc();
        } else {
            self.accepted += 1;
            outcomes.accepted.inc();
        }
        metrics.queued_bytes.dec_by(queued.cost());
    }

    /// Kafka refused the record for good (e.g. larger than the broker accepts): said with its key, counted.
    fn fail(&mut self, queued: &Queued, error: &SendError, metrics: &Metrics) {
        self.failed += 1;
        metrics.delivery_failures.inc();
        metrics.queued_bytes.dec_by(queued.cost());
        tracing::error!(
            topic = %queued.record.topic,
            key = queued.record.key.as_deref().unwrap_or(""),
            bytes = queued.record.payload.len(),
            %error,
            "Kafka refused a record for good"
        );
    }
}

/// Counts and logs a retriable failure, and returns the record's next attempt.
fn retry(sink: &Arc<KafkaSink>, queued: Queued, error: &SendError, metrics: &Metrics) -> InFlight {
    metrics.delivery_retries.inc();
    tracing::warn!(topic = %queued.record.topic, %error, "delivery failed; retrying");
    Box::pin(deliver_later(sink.clone(), queued))
}

async fn deliver_later(sink: Arc<KafkaSink>, queued: Queued) -> (Queued, Result<Delivery, SendError>) {
    tokio::time::sleep(RETRY_DELAY).await;
    let result = match sink.enqueue(&queued.record).await {
        Ok(delivery) => await_delivery(delivery).await,
        Err(e) => Err(SendError::Kafka(e)),
    };
    (queued, result)
}

/// Errors that no retry can fix: the record itself, or our permission to write it.
fn is_permanent(error: &SendError) -> bool {
    let SendError::Kafka(error) = error else { return false };
    let code = match error {
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
