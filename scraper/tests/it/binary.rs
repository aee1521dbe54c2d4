//! The scraper binary as an operator runs it: replay by default (only where no other source is configured,
//! else only when named), /metrics (the build's version, and every series of the configured source from
//! start-up, at 0) and /healthz, SIGTERM flushes and
//! exits, a broker killed under load and restarted loses nothing the scraper counted as sent, a broker that is
//! not up yet is waited for, a bad configuration fails fast, and an ops endpoint out of file descriptors backs
//! off, logs little and answers again.

use crate::support;

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use testkit::{Broker, Process, free_addr, unique_name};

fn scraper(broker: &Broker, topic: &str, rejects: &str, dir: &tempfile::TempDir) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_scraper"));
    command
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap_servers())
        .env("TOPIC_TWEETS", topic)
        .env("TOPIC_REJECTS", rejects)
        // The broker is shared: the topics the run does not name are its own too.
        .env("TOPIC_MASTODON_STATUSES", unique_name("statuses"))
        .env("TOPIC_INSTAGRAM_PROFILES", unique_name("profiles"))
        .env("TOPIC_INSTAGRAM_MEDIA", unique_name("media"))
        .env("TOPIC_BLUESKY_EVENTS", unique_name("bluesky"))
        .env("TOPIC_PARTITIONS", "1")
        .env("SCRAPER_METRICS_ADDR", "127.0.0.1:0")
        .env("PROGRESS_INTERVAL", "1s")
        .env("RUST_LOG", "info");
    command
}

/// The number in `field=N` of the last log line containing `marker`.
fn logged_count(log: &str, marker: &str, field: &str) -> Option<u64> {
    let line = log.lines().rev().find(|line| line.contains(marker))?;
    let start = line.find(&format!("{field}="))? + field.len() + 1;
    line[start..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// The line of the build's version.
fn build_info() -> String {
    format!("scraper_build_info{{version=\"{}\"}} 1\n", env!("CARGO_PKG_VERSION"))
}

/// Series of the replay source that exist from start-up, at 0, and stay 0 while nothing is rejected and the
/// replay does not reconnect.
fn zero_series(rejects: &str) -> Vec<String> {
    let mut series = vec![
        format!("scraper_records_produced_total{{outcome=\"rejected\",topic=\"{rejects}\"}}"),
        "scraper_heartbeats_total{source=\"replay\"}".to_owned(),
    ];
    for reason in scraper::metrics::Reconnect::ALL {
        series.push(format!("scraper_reconnects_total{{source=\"replay\",reason=\"{}\"}}", reason.label()));
    }
    series
}

/// A plain HTTP/1.0 GET: (status, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn sigterm_stops_reading_flushes_and_exits_cleanly() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let dir = tempfile::tempdir().unwrap();
    let mut command = scraper(&broker, &topic, &rejects, &dir);
    let ops = free_addr();
    command.env("REPLAY_RATE", "300").env("SCRAPER_METRICS_ADDR", ops.to_string());
    let mut process = Process::spawn(command, &dir.path().join("scraper.log")).unwrap();
    process.wait_for_log("progress", Duration::from_secs(60)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (status, health) = get(ops, "/healthz").await;
    assert_eq!((status, health.as_str()), (200, "ok\n"));
    let (status, metrics) = get(ops, "/metrics").await;
    assert_eq!(status, 200);
    for series in [
        format!("scraper_records_produced_total{{outcome=\"accepted\",topic=\"{topic}\"}}"),
        "scraper_lines_read_total{source=\"replay\"}".to_owned(),
        "scraper_queued_bytes".to_owned(),
        "scraper_queue_full_total".to_owned(),
    ] {
        assert!(metrics.contains(&series), "no {series} in\n{metrics}");
    }
    assert!(metrics.contains(&build_info()), "no {} in\n{metrics}", build_info());
    // Nothing was rejected, nor did the replay reconnect: those series are there all the same, at 0.
    for series in zero_series(&rejects) {
        assert!(metrics.contains(&format!("{series} 0\n")), "no `{series} 0` in\n{metrics}");
    }

    process.signal(libc::SIGTERM);
    let status = process.wait(Duration::from_secs(30)).await.unwrap();
    let log = process.log();
    assert!(status.success(), "{log}");
    let produced = logged_count(&log, "scraper stopped", "produced").expect("a summary line");
    assert!(produced > 100, "{log}");
    assert_eq!(logged_count(&log, "scraper stopped", "unacknowledged"), Some(0), "{log}");

    let messages = support::consume(&broker, &topic, produced as usize, Duration::from_secs(60)).await;
    assert_eq!(messages.len() as u64, produced, "every record counted as produced is in the topic, once");
    // Out of the box: nothing configured, so the replay runs, and its posts say they are made up.
    assert!(log.contains("replay started: no other source is configured"), "{log}");
    assert!(messages.iter().all(|m| m.header("source") == Some(contract::source::REPLAY_SYNTHETIC)));
    for message in &messages {
        let id: i64 = message.key.as_deref().unwrap().parse().unwrap();
        assert!(scraper::synthetic::POST_IDS.contains(&id), "{id} is an id X could give");
    }
}

/// Runs the scraper with a Mastodon stream configured (and `sources` as SCRAPER_SOURCES) until the stream's
/// status is in its topic and then `posts` X posts in `topic`, stops it: its log, and the X posts in `topic`.
async fn beside_mastodon(sources: Option<&str>, posts: usize) -> (String, Vec<support::Consumed>) {
    let broker = Broker::shared().await.unwrap();
    let server = support::mastodon().await;
    let (topic, rejects) = support::topics();
    let statuses = unique_name("statuses");
    let dir = tempfile::tempdir().unwrap();
    let mut command = scraper(&broker, &topic, &rejects, &dir);
    command
        .env("SSE_URL", format!("{}/api/v1/streaming/public", server.url()))
        .env("TOPIC_MASTODON_STATUSES", &statuses)
        .env("REPLAY_RATE", "50");
    if let Some(sources) = sources {
        command.env("SCRAPER_SOURCES", sources);
    }
    let mut process = Process::spawn(command, &dir.path().join("scraper.log")).unwrap();
    // The topics exist once the sources start.
    process.wait_for_log("source started", Duration::from_secs(60)).await.unwrap();
    let status = support::consume(&broker, &statuses, 1, Duration::from_secs(60)).await;
    assert_eq!(status.len(), 1, "the real source runs: {}", process.log());
    // A replay that ran would have produced for a while by now (50 a second).
    let x_posts = support::consume(&broker, &topic, posts, Duration::from_secs(5)).await;
    process.signal(libc::SIGTERM);
    let exit = process.wait(Duration::from_secs(30)).await.unwrap();
    let log = process.log();
    assert!(exit.success(), "{log}");
    (log, x_posts)
}

#[tokio::test]
async fn beside_a_real_source_the_replay_does_not_run_unless_named() {
    let (log, x_posts) = beside_mastodon(None, 1).await;
    assert!(x_posts.is_empty(), "{} synthetic posts beside a real source:\n{log}", x_posts.len());
    assert!(
        log.contains(
            "replay not started: a real source is configured (sse); name it in SCRAPER_SOURCES to run it beside them"
        ),
        "{log}"
    );
    assert!(log.contains("sources to run: sse, chosen by their settings (SCRAPER_SOURCES is unset)"), "{log}");
    assert_eq!(logged_count(&log, "scraper stopped", "produced"), Some(1), "the status alone: {log}");
}

#[tokio::test]
async fn named_beside_a_real_source_the_replay_runs() {
    let (log, x_posts) = beside_mastodon(Some("sse,replay"), 20).await;
    assert!(x_posts.len() >= 20, "{log}");
    assert!(x_posts.iter().all(|m| m.header("source") == Some(contract::source::REPLAY_SYNTHETIC)), "{log}");
    assert!(log.contains("sources to run: sse, replay, as SCRAPER_SOURCES (--source) names them"), "{log}");
}

#[tokio::test]
async fn a_broker_killed_under_load_and_restarted_loses_nothing_counted_as_sent() {
    const RECORDS: u64 = 1_500;
    let mut broker = Broker::start().await.unwrap();
    let (topic, rejects) = support::topics();
    let dir = tempfile::tempdir().unwrap();
    let mut command = scraper(&broker, &topic, &rejects, &dir);
    command.env("REPLAY_RATE", "500").env("REPLAY_COUNT", RECORDS.to_string()).env("FLUSH_TIMEOUT", "120s");
    let mut process = Process::spawn(command, &dir.path().join("scraper.log")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let before = loop {
        if let Some(produced) = logged_count(&process.log(), "progress", "produced") {
            break produced;
        }
        assert!(
            Instant::now() < deadline,
            "no progress line in the log:
{}",
            process.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(before < RECORDS, "the broker goes away while the replay is still producing");

    broker.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.restart().await.unwrap();

    let status = process.wait(Duration::from_secs(240)).await.unwrap();
    let log = process.log();
    assert!(status.success(), "{log}");
    let produced = logged_count(&log, "scraper stopped", "produced").expect("a summary line");
    assert_eq!(produced, RECORDS, "every record was eventually acknowledged: {log}");

    let messages = support::consume(&broker, &topic, RECORDS as usize, Duration::from_secs(120)).await;
    let keys: HashSet<String> = messages.iter().filter_map(|m| m.key.clone()).collect();
    assert_eq!(keys.len() as u64, RECORDS, "every acknowledged record is in the topic");
    assert_eq!(messages.len() as u64, RECORDS, "and none twice: the producer is idempotent across the crash");
}

#[tokio::test]
async fn a_source_asked_for_but_not_configured_fails_fast_with_what_to_set() {
    let broker = Broker::shared().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique_name("tweets");
    let output = scraper(&broker, &topic, "rejects", &dir).env("SCRAPER_SOURCES", "x").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("X_BEARER_TOKEN"), "{stderr}");
}

#[tokio::test]
async fn the_token_never_appears_in_the_logs() {
    let broker = Broker::shared().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = testkit::http::HttpServer::scripted(
        vec![testkit::http::Reply::json(401, r#"{"title":"Unauthorized","detail":"Unauthorized","status":401}"#)],
        testkit::http::Reply::json(401, "{}"),
    )
    .await
    .unwrap();
    let topic = unique_name("tweets");
    let mut command = scraper(&broker, &topic, "rejects", &dir);
    command
        .env("X_BEARER_TOKEN", "AAAA-secret-token-value")
        .env("X_API_BASE_URL", server.url())
        .env("RUST_LOG", "debug");
    // Off the runtime's thread: the test server answers on it.
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
    assert!(!output.status.success(), "a bad token stops the scraper");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("X_BEARER_TOKEN"), "{stderr}");
    assert!(!stderr.contains("AAAA-secret-token-value"), "{stderr}");
    assert_eq!(server.requests().len(), 1, "a bad token is not retried");
}

#[test]
fn help_shows_no_secret_from_the_environment() {
    const SECRET: &str = "hunter2-help-secret";
    let dir = tempfile::tempdir().unwrap();
    let url = |base: &str| format!("https://me:{SECRET}@{base}?access_token={SECRET}");
    let output = Command::new(env!("CARGO_BIN_EXE_scraper"))
        .arg("--help")
        .current_dir(dir.path())
        .env_clear()
        .env("SSE_URL", url("mastodon.example/api/v1/streaming/public"))
        .env("SSE_BEARER_TOKEN", SECRET)
        .env("X_BEARER_TOKEN", SECRET)
        .env("X_API_BASE_URL", url("api.x.example"))
        .env("INSTAGRAM_ACCESS_TOKEN", SECRET)
        .env("INSTAGRAM_GRAPH_BASE_URL", url("graph.example/v25.0"))
        .env("INSTAGRAM_WEB_BASE_URL", url("i.instagram.example"))
        // Shown: the check would see a secret that --help printed.
        .env("TOPIC_PARTITIONS", "3")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("[env: TOPIC_PARTITIONS=3]"), "{help}");
    for hidden in [
        "SSE_URL",
        "SSE_BEARER_TOKEN",
        "X_BEARER_TOKEN",
        "X_API_BASE_URL",
        "INSTAGRAM_ACCESS_TOKEN",
        "INSTAGRAM_GRAPH_BASE_URL",
        "INSTAGRAM_WEB_BASE_URL",
    ] {
        assert!(help.contains(&format!("[env: {hidden}]")), "{hidden}: {help}");
    }
    assert!(!help.contains(SECRET), "{help}");
}

#[tokio::test]
async fn a_scraper_started_before_its_broker_waits_unhealthy_then_produces() {
    let port = free_addr().port();
    let (topic, rejects) = support::topics();
    let dir = tempfile::tempdir().unwrap();
    let ops = free_addr();
    let mut command = Command::new(env!("CARGO_BIN_EXE_scraper"));
    command
        .env_clear()
        .env("KAFKA_BOOTSTRAP_SERVERS", format!("127.0.0.1:{port}"))
        .env("TOPIC_TWEETS", &topic)
        .env("TOPIC_REJECTS", &rejects)
        .env("TOPIC_PARTITIONS", "1")
        .env("SCRAPER_METRICS_ADDR", ops.to_string())
        .env("REPLAY_RATE", "0")
        .env("REPLAY_COUNT", "50");
    let mut process = Process::spawn(command, &dir.path().join("scraper.log")).unwrap();
    process.wait_for_log("serving /metrics", Duration::from_secs(30)).await.unwrap();
    let (status, problem) = get(ops, "/healthz").await;
    assert_eq!(status, 503, "no broker yet: {problem}");
    assert!(problem.contains("topics"), "{problem}");
    // Nothing read yet, nothing produced: every series of the configured source is there from the start.
    let (_, metrics) = get(ops, "/metrics").await;
    assert!(metrics.contains(&build_info()), "no {} in\n{metrics}", build_info());
    let mut series = zero_series(&rejects);
    series.push("scraper_lines_read_total{source=\"replay\"}".to_owned());
    series.push(format!("scraper_records_produced_total{{outcome=\"accepted\",topic=\"{topic}\"}}"));
    for series in series {
        assert!(metrics.contains(&format!("{series} 0\n")), "no `{series} 0` in\n{metrics}");
    }
    assert!(!metrics.contains(&format!("outcome=\"rejected\",topic=\"{topic}\"")), "a data topic has no rejects");

    let broker = Broker::start_on_port(port).await.unwrap();
    let status = process.wait(Duration::from_secs(120)).await.unwrap();
    assert!(status.success(), "{}", process.log());
    assert_eq!(logged_count(&process.log(), "scraper stopped", "produced"), Some(50), "{}", process.log());
    let log = process.log();
    let finished = log.lines().find(|line| line.contains("replay finished")).expect("a `replay finished` line");
    assert!(finished.contains("source{source=replay}"), "the source's span names it: {finished}");
    let messages = support::consume(&broker, &topic, 50, Duration::from_secs(30)).await;
    assert_eq!(messages.len(), 50);
}

/// The file descriptors `pid` has open, by number.
fn open_descriptors(pid: u32) -> Vec<u64> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap();
    entries.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok()).collect()
}

/// Out of file descriptors, the ops endpoint could not accept, retried at once and logged every failure (876 MB
/// in 15 s in the report): it now backs off, logs a line per interval, and answers again once descriptors free.
#[tokio::test]
async fn out_of_file_descriptors_the_ops_endpoint_backs_off_logs_little_and_answers_again() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let dir = tempfile::tempdir().unwrap();
    let ops = free_addr();
    let mut command = scraper(&broker, &topic, &rejects, &dir);
    command.env("REPLAY_RATE", "10").env("SCRAPER_METRICS_ADDR", ops.to_string());
    let process = Process::spawn(command, &dir.path().join("scraper.log")).unwrap();
    process.wait_for_log("progress", Duration::from_secs(60)).await.unwrap();
    assert_eq!(get(ops, "/healthz").await.0, 200);

    // Room for four more descriptors (a new one takes the lowest free number below the limit; those it holds
    // above it stay usable): far fewer than the endpoint's connection limit, so that limit cannot keep it from
    // running out, as a process short of descriptors for any reason would.
    let open = open_descriptors(process.pid());
    let fourth_free = (0..).filter(|fd| !open.contains(fd)).nth(3).unwrap();
    let limit = libc::rlimit { rlim_cur: fourth_free + 1, rlim_max: fourth_free + 1 };
    // SAFETY: prlimit(2) on our own child, with a valid rlimit and no old value asked for.
    let set = unsafe { libc::prlimit(process.pid() as libc::pid_t, libc::RLIMIT_NOFILE, &limit, std::ptr::null_mut()) };
    assert_eq!(set, 0, "prlimit: {}", std::io::Error::last_os_error());

    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(tokio::net::TcpStream::connect(ops).await.unwrap());
    }
    let failures = |log: &str| log.lines().filter(|line| line.contains("ops endpoint: accept failed")).count();
    process.wait_for_log("ops endpoint: accept failed", Duration::from_secs(10)).await.unwrap();
    // Less than the header timeout (5 s): the connections it accepted still hold their descriptors.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = process.log();
    assert_eq!(failures(&log), 1, "one line per 10 s at most:\n{}", &log[log.len().saturating_sub(4000)..]);
    assert!(log.len() < 256 << 10, "the log grew to {} bytes", log.len());

    drop(idle);
    let (status, body) = tokio::time::timeout(Duration::from_secs(15), get(ops, "/healthz"))
        .await
        .expect("/healthz unanswered 15 s after the idle connections closed");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert!(failures(&process.log()) <= 2, "{}", process.log());
}

#[tokio::test]
async fn the_bluesky_source_by_name_killed_and_restarted_loses_no_post() {
    let broker = Broker::shared().await.unwrap();
    let server = testkit::jetstream::Jetstream::start().await.unwrap();
    let (topic, rejects) = support::topics();
    let bluesky = unique_name("bluesky");
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let mut command = scraper(&broker, &topic, &rejects, &dir);
        command
            .env("SCRAPER_SOURCES", "bluesky")
            .env("BLUESKY_URL", server.url())
            .env("TOPIC_BLUESKY_EVENTS", &bluesky)
            .env("TOPIC_PARTITIONS", "3");
        Process::spawn(command, &dir.path().join(format!("scraper-{}.log", server.requests().len()))).unwrap()
    };
    let base = chrono::Utc::now().timestamp_micros() - 600_000_000;
    let posts: Vec<String> = (0..100).map(|n| crate::bluesky::post(base + i64::from(n) * 100_000, n)).collect();

    let mut first = run();
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.connections() == 0 {
        assert!(Instant::now() < deadline, "no subscription: {}", first.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for post in &posts[..50] {
        server.publish(post);
    }
    support::consume(&broker, &bluesky, 50, Duration::from_secs(30)).await;
    first.signal(libc::SIGKILL);
    first.wait(Duration::from_secs(10)).await.unwrap();
    // Posted while no scraper runs.
    for post in &posts[50..] {
        server.publish(post);
    }

    let mut second = run();
    let produced = support::consume(&broker, &bluesky, 100, Duration::from_secs(60)).await;
    second.signal(libc::SIGTERM);
    let status = second.wait(Duration::from_secs(30)).await.unwrap();
    let log = second.log();
    assert!(status.success(), "{log}");
    assert!(log.contains("resuming where the last run stopped"), "{log}");
    let resumed = server.requests().last().unwrap().cursor.expect("the restart resumes from the topic's cursor");
    assert!(resumed <= base + 49 * 100_000, "no later than the last post the killed run read: {resumed}");
    let texts: HashSet<String> = produced.iter().map(support::Consumed::text).collect();
    for (n, post) in posts.iter().enumerate() {
        assert!(texts.contains(post), "post {n} lost across the SIGKILL: {log}");
    }
}
