//! The replay source: an NDJSON file in X's stream format goes to Kafka as a live stream would (bad lines to
//! rejects with their reason, blank lines skipped, a last line without a newline kept, each counted on its
//! topic), up to a count; the synthetic generator's posts are marked as such.

use crate::support;

use std::time::Duration;

use scraper::metrics::{ACCEPTED, REJECTED};
use scraper::replay::{Replay, ReplayConfig};
use scraper::source::Source;
use testkit::Broker;
use tokio_util::sync::CancellationToken;

fn config(file: Option<std::path::PathBuf>, topic: &str, count: Option<u64>) -> ReplayConfig {
    ReplayConfig { file, rate: None, count, seed: 3, topic: topic.into(), max_line_bytes: 100_000 }
}

#[tokio::test]
async fn a_file_replays_like_a_live_stream() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sample.ndjson");
    let lines = [
        r#"{"data":{"id":"11","text":"one"}}"#,
        "",
        r#"{"data":{"id":"12","text":"two"}}"#,
        "Hello, Kafka",
        r#"{"errors":[{"title":"operational-disconnect","disconnect_type":"UpstreamOperationalDisconnect"}]}"#,
    ];
    // A byte-order mark, as some editors write one.
    let mut text = format!("\u{feff}{}", lines.join("\r\n"));
    text.push_str("\r\n{\"data\":{\"id\":\"13\",\"text\":\"no newline at the end\"}}");
    std::fs::write(&path, &text).unwrap();

    let source: Box<dyn Source> = Box::new(Replay::new(config(Some(path), &topic, None)));
    let (outcome, metrics) = support::run_sources(vec![source], sink, &rejects, CancellationToken::new()).await;
    assert!(outcome.failed_sources.is_empty());
    assert_eq!((outcome.forwarded.accepted, outcome.forwarded.rejected), (3, 1));
    let on = |outcome, topic: &str| metrics.produced_counter(outcome, topic).get();
    assert_eq!((on(ACCEPTED, &topic), on(REJECTED, &rejects)), (3, 1), "each counted on the topic it went to");
    assert_eq!((on(REJECTED, &topic), on(ACCEPTED, &rejects)), (0, 0));

    let produced = support::consume(&broker, &topic, 3, Duration::from_secs(30)).await;
    let keys: Vec<String> = produced.iter().map(|m| m.key.clone().unwrap()).collect();
    assert_eq!(keys, ["11", "12", "13"]);
    assert_eq!(produced[2].text(), r#"{"data":{"id":"13","text":"no newline at the end"}}"#);
    assert!(produced.iter().all(|m| m.header("source") == Some("replay")));
    let rejected = support::consume(&broker, &rejects, 1, Duration::from_secs(30)).await;
    assert_eq!(rejected[0].payload, b"Hello, Kafka");
    assert!(rejected[0].header("error").unwrap().starts_with("payload is not JSON"));
}

#[tokio::test]
async fn the_generator_stops_at_the_count_and_replays_the_same_posts_for_the_same_seed() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;
    let source: Box<dyn Source> = Box::new(Replay::new(config(None, &topic, Some(25))));
    let (outcome, _) = support::run_sources(vec![source], sink, &rejects, CancellationToken::new()).await;
    assert_eq!((outcome.forwarded.accepted, outcome.forwarded.rejected), (25, 0));

    let produced = support::consume(&broker, &topic, 25, Duration::from_secs(30)).await;
    assert_eq!(produced.len(), 25);
    for (n, message) in produced.iter().enumerate() {
        assert_eq!(message.payload, scraper::synthetic::line(3, n as u64), "post {n}");
        // Made-up posts say so; a replayed file's records are `replay` (above).
        assert_eq!(message.header("source"), Some(contract::source::REPLAY_SYNTHETIC), "post {n}");
    }
}

#[tokio::test]
async fn a_record_kafka_refuses_for_good_is_counted_as_failed_and_the_rest_goes_on() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let mut kafka = common::kafka::client_config(&broker.bootstrap_servers(), []);
    kafka.set("message.max.bytes", "2000");
    let sink = scraper::kafka_sink::KafkaSink::new(kafka).unwrap();
    sink.ensure_topics(&[&topic, &rejects], 1).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.ndjson");
    let big = format!(r#"{{"data":{{"id":"21","text":"{}"}}}}"#, "x".repeat(5000));
    std::fs::write(&path, format!("{big}\n{{\"data\":{{\"id\":\"22\",\"text\":\"small\"}}}}\n")).unwrap();

    let source: Box<dyn Source> = Box::new(Replay::new(config(Some(path), &topic, None)));
    let run = support::run_sources(vec![source], std::sync::Arc::new(sink), &rejects, CancellationToken::new());
    let (outcome, metrics) = tokio::time::timeout(Duration::from_secs(60), run).await.expect("no endless retry");
    assert_eq!((outcome.forwarded.accepted, outcome.forwarded.failed), (1, 1));
    assert_eq!(metrics.delivery_failures.get(), 1);
    assert_eq!(metrics.queued_bytes.get(), 0, "the refused record's budget came back");
}
