//! Drains the queue into Kafka, in queue order, and settles each record when its delivery report arrives:
//! acknowledged (counted, its budget returned), refused for good (logged with its key, counted), or failed
//! with a retriable error (queued again). A record counts as produced only once the broker acknowledged it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
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
    let mut in_flight: FuturesUnordered<InFlight> = FuturesUnordered::new();
    let mut open = true;
    while open || !in_flight.is_empty() {
        tokio::select! {
            biased;
            _ = give_up.cancelled() => break,
            Some((queued, result)) = in_flight.next(), if !in_flight.is_empty() => {
                match result {
                    Ok(_) => done.settle(&queued, &metrics),
                    Err(e) if is_permanent(&e) => {
                        done.failed += 1;
                        metrics.delivery_failures.inc();
                        metrics.queued_bytes.dec_by(queued.cost());
                        tracing::error!(
                            topic = %queued.record.topic,
                            key = queued.record.key.as_deref().unwrap_or(""),
                            bytes = queued.record.payload.len(),
                            error = %e,
                            "Kafka refused a record for good"
                        );
                    }
                    Err(e) => {
                        metrics.delivery_retries.inc();
                        tracing::warn!(topic = %queued.record.topic, error = %e, "delivery failed; retrying");
                        in_flight.push(Box::pin(deliver_later(sink.clone(), queued)));
                    }
                }
            }
            next = queue.recv(), if open => match next {
                Some(queued) => match sink.enqueue(&queued.record).await {
                    Ok(delivery) => in_flight.push(Box::pin(async move { (queued, await_delivery(delivery).await) })),
                    Err(e) => {
                        let e = SendError::Kafka(e);
                        metrics.delivery_retries.inc();
                        tracing::warn!(topic = %queued.record.topic, error = %e, "could not queue a record; retrying");
                        in_flight.push(Box::pin(deliver_later(sink.clone(), queued)));
                    }
                },
                None => open = false,
            },
        }
    }
    done.unacknowledged = (in_flight.len() + queue.len()) as u64;
    done
}

impl Forwarded {
    fn settle(&mut self, queued: &Queued, metrics: &Metrics) {
        let rejected = queued.record.headers.iter().any(|(name, _)| *name == header::ERROR);
        let outcome = if rejected { "rejected" } else { "accepted" };
        if rejected {
            self.rejected += 1;
        } else {
            self.accepted += 1;
        }
        metrics.produced.get_or_create(&vec![("outcome", outcome.to_owned())]).inc();
        metrics.queued_bytes.dec_by(queued.cost());
    }
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
