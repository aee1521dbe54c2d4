//! The Kafka sink against a real broker: a keyed record with the contract's headers comes back byte for
//! byte, topics are created once, nothing counts as sent that the broker did not acknowledge, and a fatal
//! producer error ends the run, unhealthy, with its reason.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::ops::Health;
use futures::future::BoxFuture;
use scraper::kafka_sink::{KafkaSink, SendError};
use scraper::metrics::Metrics;
use scraper::queue::Emitter;
use scraper::record::{Record, header};
use scraper::run::{self, Options};
use scraper::source::Source;
use testkit::{Broker, unique_name};
use tokio_util::sync::CancellationToken;

use crate::support;

#[tokio::test]
async fn a_keyed_record_with_headers_round_trips_through_the_broker() {
    let broker = Broker::shared().await.unwrap();
    let topic = unique_name("tweets");
    let sink = KafkaSink::new(common::kafka::client_config(&broker.bootstrap_servers(), [])).unwrap();
    sink.ensure_topics(&[&topic], 3).await.unwrap();
    sink.ensure_topics(&[&topic], 3).await.expect("an existing topic is not an error");

    let payload = br#"{"data":{"id":"1460323737035677698","text":"Introducing \ud83d\udce3"}}"#.to_vec();
    let record = Record::accepted(&topic, "1460323737035677698".into(), payload.clone(), "x.sample".into(), Utc::now());
    let first = sink.send(&record).await.unwrap();
    let second = sink.send(&record).await.unwrap();
    assert_eq!(first.partition, second.partition, "one key, one partition");
    assert_eq!(second.offset, first.offset + 1);

    let messages = support::consume(&broker, &topic, 2, Duration::from_secs(30)).await;
    let message = &messages[0];
    assert_eq!(message.key.as_deref(), Some("1460323737035677698"));
    assert_eq!(message.payload, payload);
    assert_eq!((message.partition, message.offset), (first.partition, first.offset));
    let headers = message.headers.clone();
    let expected: Vec<(String, String)> = record.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    assert_eq!(headers, expected);
    let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, [header::SOURCE, header::SCRAPED_AT, header::CONTENT_TYPE, header::SCRAPER_VERSION]);
}

#[tokio::test]
async fn a_record_the_broker_never_acknowledged_is_an_error_not_a_success() {
    let mut broker = Broker::start().await.unwrap();
    let topic = unique_name("tweets");
    let mut config = common::kafka::client_config(&broker.bootstrap_servers(), []);
    config.set("message.timeout.ms", "3000");
    let sink = KafkaSink::new(config).unwrap();
    sink.ensure_topics(&[&topic], 1).await.unwrap();
    broker.stop();

    let record = Record::accepted(&topic, "1".into(), b"{}".to_vec(), "replay".into(), Utc::now());
    let result = sink.send(&record).await;
    assert!(matches!(result, Err(SendError::Kafka(_))), "got {result:?}");
}

/// Writes `count` numbered records, one every 2 ms, or fewer when told to stop.
struct Numbered {
    topic: String,
    count: u64,
}

impl Source for Numbered {
    fn name(&self) -> String {
        "numbered".into()
    }

    fn topics(&self) -> Vec<String> {
        vec![self.topic.clone()]
    }

    fn run(self: Box<Self>, out: Emitter, shutdown: CancellationToken) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async move {
            for n in 1..=self.count {
                if shutdown.is_cancelled() {
                    break;
                }
                out.accept(&self.topic, n.to_string(), format!(r#"{{"n":{n}}}"#).into_bytes()).await?;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Ok(())
        })
    }
}

fn numbered(topic: &str, count: u64) -> Vec<Box<dyn Source>> {
    vec![Box::new(Numbered { topic: topic.to_owned(), count })]
}

#[tokio::test]
async fn a_fatal_producer_error_ends_the_run_unhealthy_with_its_reason_instead_of_retrying_forever() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;
    let (metrics, health, shutdown) = (Metrics::default(), Health::default(), CancellationToken::new());
    let running = tokio::spawn({
        let (sink, metrics, health, shutdown) = (sink.clone(), metrics.clone(), health.clone(), shutdown.clone());
        let sources = numbered(&topic, u64::MAX);
        async move { run::run(sources, sink, metrics, &support::options(&rejects), health, shutdown).await }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metrics.produced_count("accepted") < 20 {
        assert!(tokio::time::Instant::now() < deadline, "records are produced before the failure");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    sink.raise_fatal_error_for_test("the broker lost our sequence");
    // Well within the 30 s flush timeout: the run ends because of the failure, not because a grace period ran
    // out; before, it retried every second for as long as it ran.
    let outcome = tokio::time::timeout(Duration::from_secs(15), running)
        .await
        .expect("the run ends by itself after a fatal producer error")
        .unwrap();

    assert!(!shutdown.is_cancelled(), "nobody asked the run to stop");
    let reason = outcome.producer_failed.expect("the outcome names the fatal error");
    assert!(reason.contains("the broker lost our sequence"), "{reason}");
    assert!(reason.contains("OutOfOrderSequenceNumber"), "the original error, not just _FATAL: {reason}");
    let problem = health.problem().expect("unhealthy after a fatal producer error");
    assert!(problem.contains("the broker lost our sequence"), "{problem}");
    assert_eq!(metrics.delivery_retries.get(), 0, "nothing is retried after a fatal error");
    let produced = metrics.produced_count("accepted");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(metrics.produced_count("accepted"), produced, "nothing is produced after the run ended");
}

#[tokio::test]
async fn records_the_producer_gave_up_on_while_the_broker_was_away_are_retried_until_acknowledged() {
    let mut broker = Broker::start().await.unwrap();
    let (topic, rejects) = support::topics();
    let mut config = common::kafka::client_config(&broker.bootstrap_servers(), []);
    // librdkafka gives up on a record quickly, so that the forwarder's own retry is what gets it through.
    config.set("message.timeout.ms", "1000");
    let sink = Arc::new(KafkaSink::new(config).unwrap());
    sink.ensure_topics(&[&topic, &rejects], 1).await.unwrap();
    // One record acknowledged first: the producer has its idempotent producer id when the broker goes away.
    // A record that then times out makes librdkafka bump the id's epoch itself (KIP-360), and the broker
    // must take the new epoch at sequence 0 once it is back.
    let first = Record::accepted(&topic, "0".into(), b"{}".to_vec(), "replay".into(), Utc::now());
    sink.send(&first).await.unwrap();
    broker.stop();

    let metrics = Metrics::default();
    let running = tokio::spawn({
        let (sink, metrics, sources) = (sink.clone(), metrics.clone(), numbered(&topic, 3));
        // The sources end at once, so the flush timeout runs from the start: longer than the broker's restart
        // and the producer's reconnect backoff take on a loaded machine, so the broker's return decides.
        let options = Options { flush_timeout: Duration::from_secs(120), ..support::options(&rejects) };
        async move { run::run(sources, sink, metrics, &options, Health::default(), CancellationToken::new()).await }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metrics.delivery_retries.get() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "the records fail while the broker is away");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metrics.produced_count("accepted"), 0, "nothing counts as produced while the broker is away");
    broker.restart().await.unwrap();

    let outcome = tokio::time::timeout(Duration::from_secs(60), running).await.expect("the run ends").unwrap();
    assert_eq!(outcome.forwarded.accepted, 3, "{outcome:?}");
    assert_eq!(outcome.forwarded.unacknowledged, 0);
    assert_eq!(metrics.queued_bytes.get(), 0, "every record's budget is back");
    let mut keys: Vec<String> =
        support::consume(&broker, &topic, 4, Duration::from_secs(30)).await.into_iter().filter_map(|m| m.key).collect();
    keys.sort();
    assert_eq!(keys, ["0", "1", "2", "3"], "each record once, the one before the bump and the three after it");
}

#[tokio::test]
async fn records_still_unacknowledged_when_the_flush_timeout_ends_are_reported_and_the_sink_drops_cleanly() {
    let mut broker = Broker::start().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;
    broker.stop();

    let metrics = Metrics::default();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn({
        let (sink, metrics, sources, shutdown) = (sink.clone(), metrics.clone(), numbered(&topic, 5), shutdown.clone());
        let options = Options { flush_timeout: Duration::from_secs(1), ..support::options(&rejects) };
        async move { run::run(sources, sink, metrics, &options, Health::default(), shutdown).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    shutdown.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(15), running).await.expect("the run gives up").unwrap();

    assert_eq!(outcome.forwarded.unacknowledged, 5, "{outcome:?}");
    assert_eq!(outcome.forwarded.accepted, 0);
    // The producer still holds the records, handed over in place: dropping the sink must not free them under
    // it (a crash, or garbage sent, if it did).
    drop(sink);
}
