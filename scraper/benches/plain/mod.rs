//! The limit both scraper benches measure against: a bare rdkafka producer with the scraper's producer
//! settings (`KafkaSink::new`), connected before it is timed.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use testkit::Broker;

/// A producer with the scraper's settings, connected as the scraper's is when its stream connects: a record
/// to `warm_up` gets its producer id and connections, and `topic`'s metadata is fetched.
pub async fn producer(broker: &Broker, warm_up: &str, topic: &str) -> FutureProducer {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "20")
        .set("message.timeout.ms", "0")
        .create()
        .unwrap();
    let warm_up = producer.send(FutureRecord::<str, [u8]>::to(warm_up).payload(b"{}"), Duration::from_secs(30)).await;
    warm_up.map_err(|(e, _)| e).expect("a warm-up record");
    producer.client().fetch_metadata(Some(topic), Duration::from_secs(30)).unwrap();
    producer
}
