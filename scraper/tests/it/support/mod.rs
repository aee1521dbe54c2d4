//! What the scraper's integration tests share: running sources into a real broker, and reading topics back.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ops::Health;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use scraper::kafka_sink::KafkaSink;
use scraper::metrics::Metrics;
use scraper::run::{self, Options, Outcome};
use scraper::source::Source;
use testkit::http::{HttpServer, Part, Reply};
use testkit::{Broker, unique_name};
use tokio_util::sync::CancellationToken;

/// A message read back from the broker.
#[derive(Clone, Debug)]
pub struct Consumed {
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub partition: i32,
    pub offset: i64,
}

impl Consumed {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// Unique topic names for one test: (data topic, rejects topic).
pub fn topics() -> (String, String) {
    (unique_name("data"), unique_name("rejects"))
}

/// A sink on `broker` with `topics` created.
pub async fn sink(broker: &Broker, topics: &[&str]) -> Arc<KafkaSink> {
    let sink = KafkaSink::new(common::kafka::client_config(&broker.bootstrap_servers(), [])).unwrap();
    sink.ensure_topics(topics, 1).await.unwrap();
    Arc::new(sink)
}

pub fn options(rejects: &str) -> Options {
    Options {
        queue_bytes: 16 << 20,
        rejects_topic: rejects.to_owned(),
        flush_timeout: Duration::from_secs(30),
        progress_interval: Duration::from_secs(3600),
    }
}

/// Runs `sources` into the broker until they end by themselves, or `shutdown` is cancelled.
pub async fn run_sources(
    sources: Vec<Box<dyn Source>>,
    sink: Arc<KafkaSink>,
    rejects: &str,
    shutdown: CancellationToken,
) -> (Outcome, Metrics) {
    let metrics = Metrics::default();
    let outcome = run::run(sources, sink, metrics.clone(), &options(rejects), Health::default(), shutdown).await;
    (outcome, metrics)
}

/// Reads `topic` from the start until `expected` messages arrived (then 300 ms more, to catch extras) or
/// `timeout` passed.
pub async fn consume(broker: &Broker, topic: &str, expected: usize, timeout: Duration) -> Vec<Consumed> {
    let consumer: StreamConsumer = common::kafka::client_config(&broker.bootstrap_servers(), [])
        .set("group.id", unique_name("group"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + timeout;
    let mut extra_until: Option<Instant> = None;
    let mut messages = Vec::new();
    loop {
        let now = Instant::now();
        let until = extra_until.unwrap_or(deadline).min(deadline);
        if now >= until {
            break;
        }
        match tokio::time::timeout(until - now, consumer.recv()).await {
            Ok(Ok(message)) => {
                messages.push(Consumed {
                    key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    payload: message.payload().unwrap_or_default().to_vec(),
                    headers: message
                        .headers()
                        .map(|headers| {
                            headers
                                .iter()
                                .map(|h| {
                                    (
                                        h.key.to_owned(),
                                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    partition: message.partition(),
                    offset: message.offset(),
                });
                if messages.len() >= expected && extra_until.is_none() {
                    extra_until = Some(Instant::now() + Duration::from_millis(300));
                }
            }
            Ok(Err(e)) => panic!("consume {topic}: {e}"),
            Err(_) => break,
        }
    }
    messages
}

/// A Mastodon streaming endpoint that sends one status, then stays open and silent.
pub async fn mastodon() -> HttpServer {
    let status = r#"{"id":"110000000000000001","created_at":"2025-01-01T00:00:00.000Z","content":"<p>hi</p>","account":{"id":"1","acct":"alice"},"media_attachments":[]}"#;
    let stream = |body: Vec<Part>| {
        let mut reply = Reply::stream(body);
        reply.headers.retain(|(name, _)| name != "content-type");
        reply.header("content-type", "text/event-stream")
    };
    let first = stream(vec![Part::Chunk(format!("event: update\ndata: {status}\n\n").into_bytes()), Part::Hang]);
    HttpServer::scripted(vec![first], stream(vec![Part::Hang])).await.unwrap()
}
