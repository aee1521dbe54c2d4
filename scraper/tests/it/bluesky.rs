//! The Bluesky source against a local server speaking Jetstream's wire format (`testkit::jetstream`) and a
//! real broker: events recorded from Jetstream's documented output keyed by their record URIs and DIDs and
//! forwarded byte for byte; frames split and joined, pings; a dropped connection resumed from a cursor a
//! few seconds before the last event read; a restart resumed from the cursor the topic holds; kinds and
//! collections not kept skipped; invalid and oversized messages rejected with their reasons.

use crate::support::{self, Consumed};

use std::time::{Duration, Instant};

use scraper::bluesky::{BlueskyConfig, BlueskySource};
use scraper::source::{Source, Waiter};
use testkit::Broker;
use testkit::jetstream::Jetstream;
use tokio_util::sync::CancellationToken;

const ALL: [&str; 4] = ["app.bsky.feed.post", "app.bsky.feed.like", "app.bsky.feed.repost", "app.bsky.graph.follow"];

fn fixture_events() -> Vec<String> {
    let path = format!("{}/../inserter/tests/fixtures/bluesky/events.jsonl", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

fn config(server: &Jetstream, topic: &str) -> BlueskyConfig {
    BlueskyConfig {
        name: "bluesky.jetstream".into(),
        url: server.url(),
        collections: ALL.iter().map(|c| (*c).to_owned()).collect(),
        dids: Vec::new(),
        topic: topic.into(),
        max_event_bytes: 64 * 1024,
        stall_timeout: Duration::from_secs(10),
        rewind: Duration::from_secs(5),
        resume_from: None,
        first_cursor: None,
    }
}

/// A post event of `time_us`, its record key a TID of about that time.
pub(crate) fn post(time_us: i64, n: u32) -> String {
    let rkey = contract::atproto::tid(time_us - 1_000, 7);
    format!(
        r#"{{"did":"did:plc:ewvi7nxzyoun6zhxrhs64oiz","time_us":{time_us},"kind":"commit","commit":{{"rev":"{rkey}","operation":"create","collection":"app.bsky.feed.post","rkey":"{rkey}","record":{{"$type":"app.bsky.feed.post","createdAt":"2024-11-19T05:33:39.567Z","langs":["en"],"text":"post {n}"}},"cid":"bafyreiel2eoh7r5f2mwmfbixnikmm2bpwxvzqei6ezem6dm7rt52xkx4lu"}}}}"#
    )
}

/// Runs `source` until the returned token is cancelled; the handle gives the outcome and metrics.
fn start(
    source: BlueskySource,
    broker_sink: std::sync::Arc<scraper::kafka_sink::KafkaSink>,
    rejects: &str,
) -> (CancellationToken, tokio::task::JoinHandle<(scraper::run::Outcome, scraper::metrics::Metrics)>) {
    let shutdown = CancellationToken::new();
    let source: Box<dyn Source> = Box::new(source);
    let (rejects, stop) = (rejects.to_owned(), shutdown.clone());
    let handle = tokio::spawn(async move { support::run_sources(vec![source], broker_sink, &rejects, stop).await });
    (shutdown, handle)
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn keys(messages: &[Consumed]) -> Vec<String> {
    messages.iter().map(|m| m.key.clone().unwrap_or_default()).collect()
}

#[tokio::test]
async fn events_are_keyed_by_record_uri_or_did_and_forwarded_as_they_came_whole_across_frames_and_pings() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;
    let server = Jetstream::start().await.unwrap();
    server.fragment(Some(37));
    server.ping_every(Some(Duration::from_millis(30)));
    let (shutdown, run) = start(BlueskySource::new(config(&server, &topic), Waiter::recording().0), sink, &rejects);
    until("the subscription", || server.connections() == 1).await;
    let events = fixture_events();
    for event in &events {
        server.publish(event);
    }
    // 23 events: 2 of collections not kept (a profile, a threadgate) are skipped.
    let produced = support::consume(&broker, &topic, 21, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    shutdown.cancel();
    let (outcome, metrics) = run.await.unwrap();
    assert_eq!(produced.len(), 21, "{:?}", keys(&produced));
    let kept: Vec<&String> =
        events.iter().filter(|e| !e.contains("actor.profile") && !e.contains("threadgate")).collect();
    for (message, event) in produced.iter().zip(kept) {
        assert_eq!(&message.text(), event, "forwarded byte for byte, whole across 37-byte frames");
        let value: serde_json::Value = serde_json::from_str(event).unwrap();
        let did = value["did"].as_str().unwrap();
        let expected_key = match value["kind"].as_str().unwrap() {
            "commit" => format!(
                "at://{did}/{}/{}",
                value["commit"]["collection"].as_str().unwrap(),
                value["commit"]["rkey"].as_str().unwrap()
            ),
            _ => did.to_owned(),
        };
        assert_eq!(message.key.as_deref(), Some(&*expected_key));
        assert_eq!(message.header("source"), Some("bluesky.jetstream"));
        let cursor: i64 = message.header("bluesky_cursor").unwrap().parse().unwrap();
        assert!(cursor > 0 && cursor <= value["time_us"].as_i64().unwrap());
    }
    assert_eq!(outcome.forwarded.accepted, 21);
    assert!(metrics.heartbeats.get_or_create(&vec![("source", "bluesky.jetstream".to_owned())]).get() > 0, "pings");
    let request = &server.requests()[0];
    assert_eq!(request.wanted_collections, ALL);
    assert_eq!(request.max_message_size_bytes, Some(64 * 1024));
    assert_eq!(request.cursor, None, "a first start with no resume point reads from now");
}

#[tokio::test]
async fn a_dropped_connection_resumes_from_a_cursor_before_the_last_event_and_loses_nothing() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;
    let server = Jetstream::start().await.unwrap();
    let (waiter, waits) = Waiter::recording();
    let (shutdown, run) = start(BlueskySource::new(config(&server, &topic), waiter), sink, &rejects);
    until("the subscription", || server.connections() == 1).await;
    let base = chrono::Utc::now().timestamp_micros() - 60_000_000;
    for n in 0..3 {
        server.publish(&post(base + i64::from(n) * 1_000_000, n));
    }
    support::consume(&broker, &topic, 3, Duration::from_secs(30)).await;
    server.drop_connections();
    // Posted while the scraper is away: the server keeps them for the cursor.
    for n in 3..6 {
        server.publish(&post(base + i64::from(n) * 1_000_000, n));
    }
    until("the resumed subscription", || server.requests().len() == 2 && server.connections() == 1).await;
    let produced = support::consume(&broker, &topic, 9, Duration::from_secs(30)).await;
    shutdown.cancel();
    run.await.unwrap();
    let resumed = server.requests()[1].cursor.expect("the reconnect asks for a cursor");
    assert_eq!(resumed, base + 2_000_000 - 5_000_000, "five seconds before the last event read");
    let texts: Vec<String> = produced.iter().map(Consumed::text).collect();
    for n in 0..6 {
        assert!(texts.contains(&post(base + i64::from(n) * 1_000_000, n)), "post {n} lost");
    }
    assert_eq!(produced.len(), 9, "the rewind replays the three posts before the drop; the upserts absorb them");
    assert_eq!(waits.lock().unwrap()[0].reason, "disconnected");
}

#[tokio::test]
async fn a_restarted_source_resumes_from_the_cursor_its_last_run_left_in_the_topic() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;
    let server = Jetstream::start().await.unwrap();
    let mut restartable = config(&server, &topic);
    restartable.resume_from = Some(common::kafka::client_config(&broker.bootstrap_servers(), []));

    let (shutdown, run) = start(BlueskySource::new(restartable.clone(), Waiter::recording().0), sink.clone(), &rejects);
    until("the subscription", || server.connections() == 1).await;
    assert_eq!(server.requests()[0].cursor, None, "the topic is empty: nothing to resume");
    let base = chrono::Utc::now().timestamp_micros() - 60_000_000;
    for n in 0..3 {
        server.publish(&post(base + i64::from(n) * 1_000_000, n));
    }
    let first = support::consume(&broker, &topic, 3, Duration::from_secs(30)).await;
    shutdown.cancel();
    run.await.unwrap();
    let left: i64 = first.iter().map(|m| m.header("bluesky_cursor").unwrap().parse::<i64>().unwrap()).max().unwrap();

    // Posted while the scraper is down.
    for n in 3..6 {
        server.publish(&post(base + i64::from(n) * 1_000_000, n));
    }
    let (shutdown, run) = start(BlueskySource::new(restartable, Waiter::recording().0), sink, &rejects);
    until("the restarted subscription", || server.requests().len() == 2 && server.connections() == 1).await;
    let produced = support::consume(&broker, &topic, 6, Duration::from_secs(30)).await;
    shutdown.cancel();
    run.await.unwrap();
    assert_eq!(server.requests()[1].cursor, Some(left - 5_000_000), "the newest cursor in the topic, rewound");
    let texts: Vec<String> = produced.iter().map(Consumed::text).collect();
    for n in 0..6 {
        assert!(texts.contains(&post(base + i64::from(n) * 1_000_000, n)), "post {n} lost across the restart");
    }
}

#[tokio::test]
async fn invalid_and_oversized_messages_are_rejected_with_reasons_and_unknown_kinds_skipped() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;
    let server = Jetstream::start().await.unwrap();
    let mut config = config(&server, &topic);
    config.max_event_bytes = 2_000;
    let (shutdown, run) = start(BlueskySource::new(config, Waiter::recording().0), sink, &rejects);
    until("the subscription", || server.connections() == 1).await;
    let good = post(1_731_994_420_800_952, 1);
    let oversized = good.replace("post 1", &"x".repeat(5_000));
    server.send_raw(&good[..good.len() / 2]);
    server.send_raw(&oversized);
    server.send_raw(&good.replace("did:plc:", "did:PLC:"));
    server.send_raw(&good.replace("\"time_us\":1731994420800952,", ""));
    server.send_raw("[1,2,3]");
    server.send_binary(b"\xff\xfe not text");
    server.send_raw(r#"{"did":"did:plc:ewvi7nxzyoun6zhxrhs64oiz","time_us":1731994420800999,"kind":"sync","sync":{}}"#);
    server.send_raw(&good);
    let rejected = support::consume(&broker, &rejects, 6, Duration::from_secs(30)).await;
    let produced = support::consume(&broker, &topic, 1, Duration::from_secs(30)).await;
    shutdown.cancel();
    run.await.unwrap();
    let reasons: Vec<&str> = rejected.iter().map(|m| m.header("error").unwrap()).collect();
    let expected = [
        "payload is not JSON",
        "payload is 5",
        "is not a DID",
        "payload has no `time_us`",
        "payload is JSON but not an object",
        "payload is not UTF-8",
    ];
    assert_eq!(reasons.len(), expected.len(), "{reasons:?}");
    for (reason, want) in reasons.iter().zip(expected) {
        assert!(reason.contains(want), "{reason} / {want}");
    }
    assert_eq!(rejected[1].payload.len(), 1024, "only the first KiB of an oversized event is kept");
    assert_eq!(keys(&produced).len(), 1, "the unknown kind is skipped, the good post kept");
}

#[tokio::test]
async fn a_silent_server_is_left_and_a_refused_subscription_says_what_to_fix() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;
    let server = Jetstream::start().await.unwrap();
    let mut stalling = config(&server, &topic);
    stalling.stall_timeout = Duration::from_millis(300);
    server.stall(true);
    server.refuse_next(1, 503, None);
    let (waiter, waits) = Waiter::recording();
    let (shutdown, run) = start(BlueskySource::new(stalling, waiter), sink.clone(), &rejects);
    until("a stall", || waits.lock().unwrap().iter().any(|w| w.reason == "stalled")).await;
    shutdown.cancel();
    run.await.unwrap();
    assert_eq!(waits.lock().unwrap()[0].reason, "http_error", "a 503 is retried");

    server.stall(false);
    server.refuse_next(1, 400, None);
    let (_, run) = start(BlueskySource::new(config(&server, &topic), Waiter::recording().0), sink, &rejects);
    let (outcome, _) = tokio::time::timeout(Duration::from_secs(20), run).await.unwrap().unwrap();
    let (_, error) = &outcome.failed_sources[0];
    assert!(format!("{error:#}").contains("BLUESKY_COLLECTIONS"), "{error:#}");
}

#[tokio::test]
async fn an_event_stamped_far_in_the_future_does_not_carry_the_cursor_past_now() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;
    let server = Jetstream::start().await.unwrap();
    let (shutdown, run) = start(BlueskySource::new(config(&server, &topic), Waiter::recording().0), sink, &rejects);
    until("the subscription", || server.connections() == 1).await;
    let now = chrono::Utc::now().timestamp_micros();
    let far = now + 365 * 86_400 * 1_000_000;
    server.send_raw(&post(far, 1));
    let produced = support::consume(&broker, &topic, 1, Duration::from_secs(30)).await;
    let before = server.requests().len();
    server.drop_connections();
    until("the resumed subscription", || server.requests().len() > before && server.connections() == 1).await;
    shutdown.cancel();
    run.await.unwrap();
    assert_eq!(produced.len(), 1, "the event itself is forwarded");
    let cursor: i64 = produced[0].header("bluesky_cursor").unwrap().parse().unwrap();
    assert!(cursor < now + 60_000_000, "the record's cursor is not a year ahead: {cursor}");
    let resumed = server.requests().last().unwrap().cursor.expect("a reconnect after an event asks for a cursor");
    assert!(resumed < now + 60_000_000, "a reconnect does not ask for a future cursor, which Jetstream serves as live");
}

#[tokio::test]
async fn a_first_run_starts_from_bluesky_cursor_when_the_topic_holds_none() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;
    let server = Jetstream::start().await.unwrap();
    let base = chrono::Utc::now().timestamp_micros() - 3_600_000_000;
    // Posted an hour ago, before any scraper ran: only a cursor reaches them.
    for n in 0..3 {
        server.publish(&post(base + i64::from(n) * 1_000_000, n));
    }
    let mut first = config(&server, &topic);
    first.resume_from = Some(common::kafka::client_config(&broker.bootstrap_servers(), []));
    first.first_cursor = Some(base + 1_000_000);
    let (shutdown, run) = start(BlueskySource::new(first, Waiter::recording().0), sink, &rejects);
    let produced = support::consume(&broker, &topic, 2, Duration::from_secs(30)).await;
    shutdown.cancel();
    run.await.unwrap();
    assert_eq!(server.requests()[0].cursor, Some(base + 1_000_000));
    let texts: Vec<String> = produced.iter().map(Consumed::text).collect();
    assert_eq!(texts, [post(base + 1_000_000, 1), post(base + 2_000_000, 2)], "from the cursor on, inclusive");
}

#[tokio::test]
async fn a_connection_dropped_before_its_first_event_resumes_from_when_it_connected() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;
    let server = Jetstream::start().await.unwrap();
    let connected_at = chrono::Utc::now().timestamp_micros();
    let (shutdown, run) = start(BlueskySource::new(config(&server, &topic), Waiter::recording().0), sink, &rejects);
    until("the subscription", || server.connections() == 1).await;
    // The connection drops before its first event, and the server refuses a while: a post is made meanwhile.
    server.refuse_next(1_000_000, 503, None);
    server.drop_connections();
    until("two refused reconnects", || server.requests().len() >= 3).await;
    server.publish(&post(chrono::Utc::now().timestamp_micros(), 1));
    server.refuse_next(0, 503, None);
    let produced = support::consume(&broker, &topic, 1, Duration::from_secs(30)).await;
    shutdown.cancel();
    run.await.unwrap();
    assert_eq!(produced.len(), 1, "the post made while the scraper was away");
    let resumed = server.requests().last().unwrap().cursor.expect("the reconnect resumes from when it went live");
    assert!(resumed >= connected_at - 5_000_000 && resumed <= chrono::Utc::now().timestamp_micros(), "{resumed}");
}

#[tokio::test]
async fn a_message_that_cannot_be_read_again_and_again_stops_the_source_with_why() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;
    let server = Jetstream::start().await.unwrap();
    let (_, run) = start(BlueskySource::new(config(&server, &topic), Waiter::recording().0), sink, &rejects);
    // A server that ignores maxMessageSizeBytes and sends, at each connection, a message over the hard limit.
    let huge = format!(r#"{{"did":"did:plc:a","time_us":1,"kind":"commit","pad":"{}"}}"#, "x".repeat(17 << 20));
    for attempt in 1..=3 {
        until("a connection", || server.requests().len() == attempt && server.connections() == 1).await;
        server.send_raw(&huge);
    }
    let (outcome, _) = tokio::time::timeout(Duration::from_secs(30), run).await.unwrap().unwrap();
    let (_, error) = outcome.failed_sources.first().expect("the source stops instead of looping");
    assert!(format!("{error:#}").contains("cannot be read"), "{error:#}");
    let rejected = support::consume(&broker, &rejects, 3, Duration::from_secs(30)).await;
    assert_eq!(rejected.len(), 3, "each is on the rejects topic, with why");
    assert!(rejected[0].header("error").unwrap().contains("connection was dropped"));
}
