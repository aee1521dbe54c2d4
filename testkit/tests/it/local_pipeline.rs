//! The `local-pipeline` runner as a developer uses it: it prints a psql URL that shows the rows arriving,
//! SIGTERM stops the scraper, then the inserter, then the services, and a child that fails fails the run.

use std::process::Command;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, Statement};
use testkit::Process;

/// `local-pipeline` as a developer starts it, logging into `dir`; also used by the observability tests.
pub(crate) fn runner(dir: &tempfile::TempDir) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_local-pipeline"));
    command
        .arg("--log-dir")
        .arg(dir.path().join("logs"))
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "info,librdkafka=warn,rdkafka=warn")
        .env("PROGRESS_INTERVAL", "1s");
    // Where Java and the installed Kafka jars are found, as in a developer's shell.
    for name in ["HOME", "JAVA_HOME", "XDG_CACHE_HOME", "SOCIAL_INGEST_JVM_HOME"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
}

/// The analyst's URL, from the `rows:` line the runner prints.
fn analyst_url(log: &str) -> String {
    let line = log.lines().find(|line| line.starts_with("rows:")).expect("a rows: line");
    let start = line.find("postgres://").expect("a URL");
    line[start..].split('\'').next().unwrap().to_owned()
}

fn position(log: &str, needle: &str) -> usize {
    log.find(needle).unwrap_or_else(|| panic!("no `{needle}` in the log:\n{log}"))
}

#[tokio::test]
async fn sigterm_stops_the_scraper_then_the_inserter_then_the_services() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = runner(&dir);
    command.env("REPLAY_RATE", "100");
    let mut process = Process::spawn(command, &dir.path().join("runner.log")).unwrap();
    process.wait_for_log("the pipeline is running", Duration::from_secs(60)).await.unwrap();

    // The printed URL works, as the read-only analyst, and shows the rows arriving.
    let url = analyst_url(&process.log());
    let db = Database::connect(&url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sql = "SELECT count(*) FROM public.twitter_data";
        let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
        if row.try_get_by_index::<i64>(0).unwrap() > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no rows after 60 s:\n{}", process.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nothing configured: the replay's made-up posts, marked as such.
    let sql = "SELECT count(*) FROM public.twitter_data WHERE source <> 'replay.synthetic'";
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), 0);
    db.close().await.unwrap();

    // The printed Connect URL answers, and the connector it registered runs.
    let log = process.log();
    let line = log.lines().find(|line| line.starts_with("connect:")).expect("a connect: line");
    let status_url = line.split_whitespace().find(|w| w.ends_with("/status,")).unwrap().trim_end_matches(',');
    let status = Command::new("curl").args(["-fsS", status_url]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["connector"]["state"], "RUNNING", "{status}");
    assert_eq!(status["tasks"][0]["state"], "RUNNING", "{status}");

    process.signal(libc::SIGTERM);
    let status = process.wait(Duration::from_secs(120)).await.unwrap();
    let log = process.log();
    assert!(status.success(), "{log}");
    let order = [
        "stopping the scraper (SIGTERM)",
        "[scraper]",
        "scraper exited: exit status: 0",
        "stopping the inserter (SIGTERM)",
        "inserter exited: exit status: 0",
        "stopping Kafka Connect, the broker and Postgres",
        "[local-pipeline] stopped",
    ];
    let stop_at = position(&log, order[0]);
    let mut last = stop_at;
    for needle in &order[1..] {
        let at = stop_at + position(&log[stop_at..], needle);
        assert!(at >= last, "`{needle}` out of order:\n{log}");
        last = at;
    }
    assert!(Database::connect(&url).await.is_err(), "Postgres is stopped");
    for name in ["scraper.log", "inserter.log"] {
        let child_log = std::fs::read_to_string(dir.path().join("logs").join(name)).unwrap();
        assert!(child_log.contains("stopped"), "{name}:\n{child_log}");
    }
    let scraper_log = std::fs::read_to_string(dir.path().join("logs/scraper.log")).unwrap();
    assert!(scraper_log.contains("replay started: no other source is configured"), "{scraper_log}");
}

#[tokio::test]
async fn a_child_that_fails_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = runner(&dir);
    // The x source without a token: the scraper refuses to start.
    command.env("SCRAPER_SOURCES", "x");
    let mut process = Process::spawn(command, &dir.path().join("runner.log")).unwrap();
    let status = process.wait(Duration::from_secs(120)).await.unwrap();
    let log = process.log();
    assert!(!status.success(), "{log}");
    assert!(log.contains("X_BEARER_TOKEN"), "the scraper's reason is shown: {log}");
    assert!(log.contains("inserter exited"), "the inserter is stopped too: {log}");
    assert!(log.contains("[local-pipeline] stopped"), "{log}");
}
