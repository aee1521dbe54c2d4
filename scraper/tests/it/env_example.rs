//! The README's path to real data, as written: `.env.example` copied unchanged to `.env`, one source's setting
//! added, and the scraper started in that directory. Each source starts, reads and produces. The environment
//! overrides only what must point at this machine: the broker, the source's base URL, the topics (the broker
//! is shared) and the ops address.

use crate::support;

use std::process::Command;
use std::time::Duration;

use testkit::http::{HttpServer, Part, Reply};
use testkit::{Broker, Process, unique_name};

use crate::x_stream::{chunk, post};

/// A directory whose `.env` is `.env.example` as it is, then `added`.
fn env_dir(added: &str) -> tempfile::TempDir {
    let example = std::fs::read_to_string(format!("{}/../.env.example", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), format!("{example}\n{added}\n")).unwrap();
    dir
}

/// The scraper run in `dir`, its topics unique on the shared broker; `topic` takes the records of `variable`.
fn scraper(broker: &Broker, dir: &tempfile::TempDir, variable: &str, topic: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_scraper"));
    command.current_dir(dir.path()).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for name in ["TOPIC_TWEETS", "TOPIC_MASTODON_STATUSES", "TOPIC_INSTAGRAM_PROFILES", "TOPIC_INSTAGRAM_MEDIA"] {
        command.env(name, if name == variable { topic.to_owned() } else { unique_name("unused") });
    }
    command
        .env("TOPIC_REJECTS", unique_name("rejects"))
        .env("KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap_servers())
        .env("SCRAPER_METRICS_ADDR", "127.0.0.1:0");
    command
}

/// Runs `command` until `expected` records are in `topic`, then stops it: it must exit 0.
async fn produces(broker: &Broker, command: Command, dir: &tempfile::TempDir, topic: &str, expected: usize) {
    // Made before the scraper starts (it leaves an existing topic as it is), so that reading can start at once.
    broker.create_topic(topic, 1).await.unwrap();
    let mut process = Process::spawn(command, &dir.path().join("scraper.log")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        // Each read starts from the topic's beginning: the last one has all the records so far.
        let records = support::consume(broker, topic, expected, Duration::from_secs(2)).await;
        if records.len() >= expected {
            assert_eq!(records.len(), expected, "{}", process.log());
            break;
        }
        assert!(process.try_wait().unwrap().is_none(), "the scraper stopped:\n{}", process.log());
        assert!(std::time::Instant::now() < deadline, "{} of {expected} records:\n{}", records.len(), process.log());
    }
    process.signal(libc::SIGTERM);
    let status = process.wait(Duration::from_secs(30)).await.unwrap();
    assert!(status.success(), "{}", process.log());
    // Nothing in the file the README has users copy deserves a warning (librdkafka's own, about a broker that
    // has just started, are not the file's).
    let warned = process.log().lines().any(|line| line.contains(" WARN ") && !line.contains(" librdkafka: "));
    assert!(!warned, "{}", process.log());
}

#[tokio::test]
async fn the_env_example_with_a_bearer_token_reads_the_x_stream() {
    let broker = Broker::shared().await.unwrap();
    let server = HttpServer::scripted(
        vec![Reply::stream(vec![chunk(&format!("{}\r\n{}\r\n", post(1), post(2))), Part::Hang])],
        Reply::stream(vec![Part::Hang]),
    )
    .await
    .unwrap();
    let dir = env_dir("X_BEARER_TOKEN=a-bearer-token");
    let topic = unique_name("tweets");
    let mut command = scraper(&broker, &dir, "TOPIC_TWEETS", &topic);
    command.env("X_API_BASE_URL", server.url());
    produces(&broker, command, &dir, &topic, 2).await;
    let asked = server.requests();
    assert!(asked[0].target.starts_with("/2/tweets/sample/stream"), "{}", asked[0].target);
}

#[tokio::test]
async fn the_env_example_with_an_sse_url_reads_the_stream() {
    let broker = Broker::shared().await.unwrap();
    let server = support::mastodon().await;
    let dir = env_dir(&format!("SSE_URL={}/api/v1/streaming/public", server.url()));
    let topic = unique_name("statuses");
    produces(&broker, scraper(&broker, &dir, "TOPIC_MASTODON_STATUSES", &topic), &dir, &topic, 1).await;
}

#[tokio::test]
async fn the_env_example_with_instagram_usernames_polls_their_profiles() {
    let broker = Broker::shared().await.unwrap();
    let path = format!("{}/tests/fixtures/instagram/web/kitchen_notes.json", env!("CARGO_MANIFEST_DIR"));
    let profile = std::fs::read_to_string(path).unwrap();
    let server = HttpServer::with(move |request| match request.query("username").as_deref() {
        Some("kitchen_notes") => Reply::json(200, &profile).header("x-ig-set-www-claim", "0"),
        _ => Reply::json(404, r#"{"status":"fail"}"#),
    })
    .await
    .unwrap();
    let dir = env_dir("INSTAGRAM_USERNAMES=kitchen_notes");
    let topic = unique_name("profiles");
    let mut command = scraper(&broker, &dir, "TOPIC_INSTAGRAM_PROFILES", &topic);
    command.env("INSTAGRAM_WEB_BASE_URL", format!("{}/", server.url()));
    produces(&broker, command, &dir, &topic, 1).await;
}
