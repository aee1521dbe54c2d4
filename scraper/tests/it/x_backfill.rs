//! Backfill and several sample10 partitions, against a local server speaking X's wire format and a real
//! broker: a reconnect asks for the minutes it was away (measured on the waiter's clock, so the gap is made of
//! the delays the source chose), the replayed lines are produced like any other and counted as backfilled,
//! and each partition reads on a connection of its own.

use crate::support;
use crate::x_stream::{TOKEN, chunk, config, post};

use std::collections::HashMap;
use std::time::Duration;

use clap::Parser;
use scraper::settings::Settings;
use scraper::source::{Source, Waiter};
use scraper::x::stream::XStream;
use testkit::Broker;
use testkit::http::{HttpServer, Part, Reply};
use tokio_util::sync::CancellationToken;

fn unauthorized() -> Reply {
    Reply::json(401, r#"{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}"#)
}

fn lines(ids: &[u64]) -> String {
    ids.iter().map(|id| format!("{}\r\n", post(*id))).collect()
}

fn backfill_lines(metrics: &scraper::metrics::Metrics, source: &str) -> u64 {
    metrics.backfill_lines.get_or_create(&vec![("source", source.to_owned())]).get()
}

#[tokio::test]
async fn a_reconnect_asks_for_the_minutes_it_was_away_and_its_replayed_lines_are_produced_and_counted() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;
    let replies = vec![
        // 1: the first connection, which asks for nothing; it drops after three posts.
        Reply::stream(vec![chunk(&lines(&[1, 2, 3])), chunk("\r\n"), Part::Drop]),
        // 2, 3: refused for a while (5 s, then 60 s of backoff): the gap grows past a minute.
        Reply::json(503, r#"{"title":"Service Unavailable","status":503}"#),
        Reply::json(429, r#"{"title":"ConnectionException","connection_issue":"TooManyConnections"}"#),
        // 4: X resends the posts from just before the drop, then new ones; heartbeats are not lines.
        Reply::stream(vec![chunk(&lines(&[2, 3])), chunk("\r\n"), chunk(&lines(&[4, 5]))]),
        unauthorized(),
    ];
    let server = HttpServer::scripted(replies, Reply::stream(vec![Part::Hang])).await.unwrap();
    let mut config = config(&server, &topic);
    config.backfill_minutes = 3;
    let (waiter, waits) = Waiter::recording();
    let source: Box<dyn Source> = Box::new(XStream::new(config, waiter));
    let run = support::run_sources(vec![source], sink, &rejects, CancellationToken::new());
    let (outcome, metrics) = tokio::time::timeout(Duration::from_secs(60), run).await.expect("the 401 stops it");
    assert_eq!(outcome.failed_sources.len(), 1);

    let asked: Vec<Option<String>> = server.requests().iter().map(|r| r.query("backfill_minutes")).collect();
    let reasons: Vec<String> = waits.lock().unwrap().iter().map(|w| w.reason.clone()).collect();
    assert_eq!(reasons, ["disconnected", "http_error", "rate_limited", "disconnected"]);
    assert_eq!(
        asked,
        [None, Some("1".into()), Some("1".into()), Some("2".into()), Some("1".into())],
        "first: none; then the time since the last byte, rounded up (0 s, 5 s, 65 s after the 429, 0 s)"
    );
    for request in server.requests() {
        assert_eq!(request.query("tweet.fields").as_deref(), Some(scraper::x::stream::DEFAULT_TWEET_FIELDS));
        assert_eq!(request.header("authorization"), Some(&*format!("Bearer {TOKEN}")));
    }

    let produced = support::consume(&broker, &topic, 7, Duration::from_secs(30)).await;
    let mut keys: Vec<String> = produced.iter().map(|m| m.key.clone().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, ["1", "2", "2", "3", "3", "4", "5"], "a replayed post is produced again, under its id");
    assert_eq!(metrics.lines_of("x.sample"), 7);
    assert_eq!(backfill_lines(&metrics, "x.sample"), 4, "every line of the connection that asked for backfill");
}

#[tokio::test]
async fn without_backfill_a_reconnect_asks_for_none() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;
    let replies = vec![
        Reply::stream(vec![chunk(&lines(&[1])), Part::Drop]),
        Reply::stream(vec![chunk(&lines(&[2]))]),
        unauthorized(),
    ];
    let server = HttpServer::scripted(replies, Reply::stream(vec![Part::Hang])).await.unwrap();
    let (waiter, _) = Waiter::recording();
    let source: Box<dyn Source> = Box::new(XStream::new(config(&server, &topic), waiter));
    let (_, metrics) = support::run_sources(vec![source], sink, &rejects, CancellationToken::new()).await;

    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.query("backfill_minutes").is_none()), "X_BACKFILL_MINUTES=0");
    assert_eq!(backfill_lines(&metrics, "x.sample"), 0);
}

#[tokio::test]
async fn each_sample10_partition_reads_on_a_connection_of_its_own() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;
    let mut connections: HashMap<String, u32> = HashMap::new();
    let server = HttpServer::with(move |request| {
        let partition = request.query("partition").unwrap_or_default();
        let count = connections.entry(partition.clone()).or_default();
        *count += 1;
        match (partition.as_str(), *count) {
            ("1", 1) => Reply::stream(vec![chunk(&lines(&[11, 12]))]),
            ("2", 1) => Reply::stream(vec![chunk(&lines(&[21])), chunk("\r\n"), chunk(&lines(&[22]))]),
            _ => unauthorized(),
        }
    })
    .await
    .unwrap();

    // Through the flags, as an operator configures it.
    let settings = Settings::try_parse_from([
        "scraper",
        "--source",
        "x",
        "--x-bearer-token",
        TOKEN,
        "--x-api-base-url",
        &server.url(),
        "--x-stream",
        "sample10",
        "--x-stream-partitions",
        "1-2",
        "--topic-tweets",
        &topic,
    ])
    .unwrap();
    let sources = settings.sources().unwrap();
    let run = support::run_sources(sources, sink, &rejects, CancellationToken::new());
    let (outcome, metrics) = tokio::time::timeout(Duration::from_secs(60), run).await.expect("each stops on its 401");

    let mut failed: Vec<&str> = outcome.failed_sources.iter().map(|(name, _)| name.as_str()).collect();
    failed.sort();
    assert_eq!(failed, ["x.sample10.p1", "x.sample10.p2"], "each partition is a task of its own");
    let requests = server.requests();
    assert!(requests.iter().all(|r| r.path() == "/2/tweets/sample10/stream"));
    let mut partitions: Vec<String> = requests.iter().filter_map(|r| r.query("partition")).collect();
    partitions.sort();
    assert_eq!(partitions, ["1", "1", "2", "2"], "a connection each, and a reconnect each");

    let produced = support::consume(&broker, &topic, 4, Duration::from_secs(30)).await;
    let mut keys: Vec<String> = produced.iter().map(|m| m.key.clone().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, ["11", "12", "21", "22"]);
    assert!(produced.iter().all(|m| m.header("source") == Some("x.sample10")), "the inserter maps x.sample10");
    assert_eq!((metrics.lines_of("x.sample10.p1"), metrics.lines_of("x.sample10.p2")), (2, 2));
    assert_eq!(metrics.reconnects_of("x.sample10.p1"), 1);
}

#[tokio::test]
async fn a_restarted_stream_asks_for_the_minutes_since_its_newest_record_in_the_topic() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;
    // The last run: three posts, then the server's 401 stops it.
    let server = HttpServer::scripted(
        vec![Reply::stream(vec![chunk(&lines(&[1, 2, 3])), Part::Drop]), unauthorized()],
        unauthorized(),
    )
    .await
    .unwrap();
    let kafka = common::kafka::client_config(&broker.bootstrap_servers(), []);
    let restartable = |server: &HttpServer| {
        let mut config = config(server, &topic);
        config.backfill_minutes = 5;
        config.resume_from = Some(kafka.clone());
        config
    };
    let (waiter, _) = Waiter::recording();
    let first: Box<dyn Source> = Box::new(XStream::new(restartable(&server), waiter));
    let run = support::run_sources(vec![first], sink.clone(), &rejects, CancellationToken::new());
    tokio::time::timeout(Duration::from_secs(60), run).await.expect("the 401 stops it");
    let first_asked: Vec<Option<String>> = server.requests().iter().map(|r| r.query("backfill_minutes")).collect();
    assert_eq!(first_asked[0], None, "a first run on an empty topic has missed nothing");
    support::consume(&broker, &topic, 3, Duration::from_secs(30)).await;

    // Another X stream's records in the same topic say nothing of this one's gap.
    let gap =
        scraper::x::restart::gap(kafka.clone(), topic.clone(), "x.search".into(), 5, chrono::Utc::now()).await.unwrap();
    assert_eq!(gap, Some(Duration::from_secs(300)), "no x.search record: at least the whole window");

    // The restart, a little over a minute after the newest record as far as the gap is concerned.
    let later = chrono::Utc::now() + chrono::Duration::seconds(70);
    let gap = scraper::x::restart::gap(kafka.clone(), topic.clone(), "x.sample".into(), 5, later).await.unwrap();
    let gap = gap.expect("the last run's records are in the topic");
    assert!((Duration::from_secs(69)..Duration::from_secs(80)).contains(&gap), "{gap:?}");

    let server = HttpServer::scripted(
        vec![Reply::stream(vec![chunk(&lines(&[3, 4])), Part::Drop]), unauthorized()],
        unauthorized(),
    )
    .await
    .unwrap();
    let (waiter, _) = Waiter::recording();
    let second: Box<dyn Source> = Box::new(XStream::new(restartable(&server), waiter));
    let run = support::run_sources(vec![second], sink, &rejects, CancellationToken::new());
    tokio::time::timeout(Duration::from_secs(60), run).await.expect("the 401 stops it");
    let asked: Vec<Option<String>> = server.requests().iter().map(|r| r.query("backfill_minutes")).collect();
    assert_eq!(asked[0].as_deref(), Some("1"), "the first connection after the restart backfills the gap");
}
