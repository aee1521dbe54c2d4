//! The Bluesky source against a plain producer, in one run, on one Apache Kafka broker: N Jetstream post events
//! (the shape of a real one, facets and all) are produced by a bare rdkafka producer with the scraper's
//! producer settings, keyed by their record URIs (the limit); then a local Jetstream (`testkit::jetstream`)
//! holds the same events and the scraper's Bluesky source, in this process, reads them from a cursor over a
//! WebSocket, validates, keys and produces them, each with its resume cursor.
//!
//!     cargo bench -p scraper --bench jetstream -- [--events 200000] [--partitions 6]
//!
//! Prints events/s for both and their ratio. The local Jetstream runs in the same process, so its sending is
//! counted against the source: the figure is a floor. Bluesky's firehose of posts runs at hundreds of events
//! a second, all collections at a few thousand.

use std::time::{Duration, Instant};

mod plain;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rdkafka::producer::FutureRecord;
use scraper::bluesky::{BlueskyConfig, BlueskySource};
use scraper::kafka_sink::KafkaSink;
use scraper::metrics::Metrics;
use scraper::source::{Source, Waiter};
use testkit::jetstream::Jetstream;
use testkit::{Broker, unique_name};
use tokio_util::sync::CancellationToken;

/// A run slower than this is broken, not slow.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

struct Args {
    events: i64,
    partitions: i32,
}

fn args() -> Option<Args> {
    // Test runners (`cargo nextest run --all-targets`) ask every bench target for its tests: it has none.
    if std::env::args().any(|arg| arg == "--list") {
        return None;
    }
    let mut args = Args { events: 200_000, partitions: 6 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value =
            || it.next().and_then(|v| v.parse::<i64>().ok()).unwrap_or_else(|| panic!("{flag} needs a number"));
        match flag.as_str() {
            "--events" => args.events = value(),
            "--partitions" => args.partitions = value() as i32,
            "--bench" => {}
            other => panic!("unknown flag {other}; see the file's header"),
        }
    }
    Some(args)
}

/// Event `n` of the run: a post of one of 5,000 accounts, with a mention, a link and two tags, as Jetstream
/// sends it; its record URI is its key.
fn event(first_us: i64, n: i64) -> (String, String) {
    let time_us = first_us + n * 100;
    let did = format!("did:plc:{:0>24}", format!("bench{}", n % 5_000));
    let rkey = contract::atproto::tid(time_us - 700_000, (n % 1024) as u16);
    let event = format!(
        r#"{{"did":"{did}","time_us":{time_us},"kind":"commit","commit":{{"rev":"{rkey}","operation":"create","collection":"app.bsky.feed.post","rkey":"{rkey}","record":{{"$type":"app.bsky.feed.post","createdAt":"2024-11-19T05:33:42.480Z","facets":[{{"features":[{{"$type":"app.bsky.richtext.facet#mention","did":"did:plc:hwknt7izxqqpaxcwfnddnmg5"}}],"index":{{"byteEnd":24,"byteStart":6}}}},{{"features":[{{"$type":"app.bsky.richtext.facet#link","uri":"https://docs.bsky.app/docs/advanced-guides/firehose"}}],"index":{{"byteEnd":108,"byteStart":78}}}},{{"features":[{{"$type":"app.bsky.richtext.facet#tag","tag":"RustLang"}}],"index":{{"byteEnd":118,"byteStart":109}}}}],"langs":["fr"],"text":"Merci @alice.example.com ! Café ☕ et crème brûlée 🍮 ce matin, post {n}. Le guide : docs.bsky.app/docs/advanced... #RustLang"}},"cid":"bafyreia33dsyhklcts25k7guvb3suet3n6gvw3fqhswejfbupaollnrzqy"}}}}"#
    );
    (format!("at://{did}/app.bsky.feed.post/{rkey}"), event)
}

#[tokio::main]
async fn main() {
    let Some(args) = args() else { return };
    let first_us = chrono::Utc::now().timestamp_micros() - 3_600_000_000;
    let events: Vec<(String, String)> = (0..args.events).map(|n| event(first_us, n)).collect();
    let bytes: usize = events.iter().map(|(_, e)| e.len()).sum();

    let broker = Broker::start().await.unwrap();
    let (baseline_topic, topic, rejects) =
        (unique_name("bench_baseline"), unique_name("bench_bluesky"), unique_name("bench_rejects"));
    let warm_up = unique_name("bench_warm_up");
    for name in [&baseline_topic, &topic, &rejects, &warm_up] {
        broker.create_topic(name, args.partitions).await.unwrap();
    }

    eprintln!("baseline: producing {} events with a plain producer...", args.events);
    let baseline = produce(&broker, &baseline_topic, &warm_up, &events).await;

    let server = Jetstream::start().await.unwrap();
    for (_, event) in &events {
        server.publish(event);
    }
    eprintln!("baseline done in {baseline:.1?}; the Bluesky source: reading them from a cursor...");
    let source = read(&broker, &server, &topic, &rejects, first_us, args.events).await;
    assert_eq!(broker.records(&topic).await.unwrap(), args.events, "every event, once");
    assert_eq!(broker.records(&rejects).await.unwrap(), 0);

    let rate = |took: Duration| args.events as f64 / took.as_secs_f64();
    println!(
        "events:             {:>10} ({:.1} MB, {} B an event on average, {} partitions)",
        args.events,
        bytes as f64 / 1e6,
        bytes / events.len().max(1),
        args.partitions
    );
    println!("plain producer:     {:>10.0} events/s  (memory -> rdkafka, keyed by record URI)", rate(baseline));
    println!(
        "bluesky source:     {:>10.0} events/s  (local Jetstream -> WebSocket -> validation, keys, cursor -> rdkafka)",
        rate(source)
    );
    println!("ratio:              {:>10.2}x plain producer", rate(source) / rate(baseline));
}

/// The plain producer (connected first), every event keyed by its record URI.
async fn produce(broker: &Broker, topic: &str, warm_up: &str, events: &[(String, String)]) -> Duration {
    let producer = plain::producer(broker, warm_up, topic).await;
    let started = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    for (key, event) in events {
        in_flight.push(producer.send(FutureRecord::to(topic).key(key).payload(event), Duration::from_secs(60)));
        while in_flight.len() >= 100_000 {
            in_flight.next().await.unwrap().map_err(|(e, _)| e).unwrap();
        }
    }
    while let Some(delivery) = in_flight.next().await {
        delivery.map_err(|(e, _)| e).unwrap();
    }
    started.elapsed()
}

/// The Bluesky source from the first event's cursor until the broker acknowledged every event, timed from
/// its start (the WebSocket handshake included).
async fn read(broker: &Broker, server: &Jetstream, topic: &str, rejects: &str, first_us: i64, events: i64) -> Duration {
    let sink = KafkaSink::new(common::kafka::client_config(&broker.bootstrap_servers(), [])).unwrap();
    // Connected first, as the scraper's producer is at start-up and the baseline's is.
    sink.connect(topic, Duration::from_secs(30)).unwrap();
    let config = BlueskyConfig {
        name: "bluesky.jetstream".into(),
        url: server.url(),
        collections: vec!["app.bsky.feed.post".into()],
        dids: Vec::new(),
        topic: topic.into(),
        max_event_bytes: 900_000,
        stall_timeout: Duration::from_secs(60),
        rewind: Duration::from_secs(5),
        resume_from: None,
        first_cursor: Some(first_us),
    };
    let source: Box<dyn Source> = Box::new(BlueskySource::new(config, Waiter::sleeping()));
    let options = scraper::run::Options {
        queue_bytes: 64 << 20,
        rejects_topic: rejects.into(),
        flush_timeout: Duration::from_secs(30),
        progress_interval: Duration::from_secs(3600),
    };
    let (metrics, shutdown) = (Metrics::default(), CancellationToken::new());
    let started = Instant::now();
    let run = tokio::spawn({
        let (metrics, shutdown) = (metrics.clone(), shutdown.clone());
        async move { scraper::run::run(vec![source], sink.into(), metrics, &options, Default::default(), shutdown).await }
    });
    while metrics.produced_count(scraper::metrics::ACCEPTED) < events as u64 {
        assert!(started.elapsed() < RUN_TIMEOUT, "the source did not produce every event within {RUN_TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    shutdown.cancel();
    run.await.unwrap();
    took
}
