//! The `inserter` binary against a real broker and a real Postgres: it drains a topic into the tables,
//! dead-letters what it cannot store while the records around it land, replays change nothing, SIGTERM
//! finishes the batch in hand, a write held by the database costs no CPU, a missing topic is waited for, and
//! /metrics and /healthz answer.

use crate::support;

use std::time::Duration;

use migration::CDC_PUBLICATION;
use sea_orm::{ConnectionTrait, TransactionTrait};
use support::{Rig, free_addr, http_get, lag_by_partition, metric, tweet_message};
use testkit::{TestMessage, cdc, unique_name};

const TWEETS: &str = "SELECT count(*) FROM twitter_data";
const DEAD_LETTERS: &str = "SELECT count(*) FROM ingest_errors";

fn stored_offsets_sql(group: &str) -> String {
    format!("SELECT coalesce(sum(next_offset), 0)::bigint FROM kafka_offsets WHERE consumer_group = '{group}'")
}

fn bad(value: Option<&[u8]>, source: &str) -> TestMessage {
    TestMessage {
        key: Some(b"bad".to_vec()),
        value: value.map(<[u8]>::to_vec),
        headers: vec![("source".into(), source.as_bytes().to_vec())],
        partition: Some(0),
    }
}

#[tokio::test]
async fn drains_a_topic_dead_letters_the_unstorable_and_exits_when_idle() {
    let rig = Rig::start(3).await;
    rig.produce_tweets(1..=1_500).await;
    let bad_records = vec![
        bad(Some(br#"{"data":{"id":"1","text":"#), "x.sample"), // truncated line
        bad(Some(b"\xff\xfe not utf-8"), "x.sample"),
        bad(Some(br#"{"data":{"id":"2","text":"nul \u0000 inside"}}"#), "x.sample"),
        bad(Some(br#"{"data":{"text":"no id"}}"#), "x.sample"),
        bad(Some(b""), "x.sample"),
        bad(None, "x.sample"),
        bad(Some(br#"{"data":{"id":"3","text":"from elsewhere"}}"#), "tiktok.feed"),
    ];
    rig.broker.produce(&rig.topic, bad_records).await.unwrap();
    rig.produce_tweets(1_501..=3_000).await;

    let group = unique_name("group");
    let mut inserter = rig.inserter(&group, &["--exit-when-idle", "2s"]);
    let status = inserter.wait(Duration::from_secs(60)).await.unwrap();
    assert!(status.success(), "{}", inserter.log());

    assert_eq!(rig.count(TWEETS).await, 3_000, "{}", inserter.log());
    assert_eq!(rig.count("SELECT count(*) FROM twitter_users").await, 50);
    assert_eq!(rig.count(&stored_offsets_sql(&group)).await, 3_007, "every record's offset is stored");
    assert_eq!(rig.count(DEAD_LETTERS).await, 7);
    for reason in [
        "EOF while parsing",
        "UTF-8",
        "NUL",
        "missing field `id`",
        "empty",
        "tombstone",
        "no mapping for source `tiktok.feed`",
    ] {
        let sql = format!("SELECT count(*) FROM ingest_errors WHERE error LIKE '%{reason}%'");
        assert_eq!(rig.count(&sql).await, 1, "one dead letter saying `{reason}`");
    }
    assert!(inserter.log().contains("no new record: exiting"), "{}", inserter.log());
}

#[tokio::test]
async fn replaying_the_whole_topic_into_a_filled_database_changes_no_row() {
    let rig = Rig::start(2).await;
    rig.produce_tweets(1..=2_000).await;
    let mut first = rig.inserter(&unique_name("group"), &["--exit-when-idle", "2s"]);
    assert!(first.wait(Duration::from_secs(60)).await.unwrap().success(), "{}", first.log());
    assert_eq!(rig.count(TWEETS).await, 2_000);

    let slot = unique_name("slot");
    cdc::create_slot(rig.conn(), &slot).await.unwrap();
    // A new group has no stored offsets: it reads both partitions from offset 0.
    let mut replay = rig.inserter(&unique_name("replay"), &["--exit-when-idle", "2s"]);
    assert!(replay.wait(Duration::from_secs(60)).await.unwrap().success(), "{}", replay.log());
    assert!(replay.log().contains("records=2000"), "the replay read every record: {}", replay.log());

    let changes = cdc::peek_changes(rig.conn(), &slot, CDC_PUBLICATION).await.unwrap();
    assert!(changes.is_empty(), "a replay must not change any row: {changes:?}");
    assert_eq!(rig.count(TWEETS).await, 2_000);
    assert_eq!(rig.count(DEAD_LETTERS).await, 0);
}

#[tokio::test]
async fn sigterm_commits_the_batch_in_hand_then_a_restart_resumes_after_it() {
    let rig = Rig::start(2).await;
    rig.produce_tweets(1..=20_000).await;
    let group = unique_name("group");
    // Small batches, so that the drain is still under way when the signal comes.
    let mut inserter = rig.inserter_with(&group, &[("BATCH_SIZE", "50")], &[]);
    rig.wait_for_count(TWEETS, 1, Duration::from_secs(30), &inserter).await;

    inserter.signal(libc::SIGTERM);
    let status = inserter.wait(Duration::from_secs(20)).await.unwrap();
    assert!(status.success(), "{}", inserter.log());
    let log = inserter.log();
    assert!(log.contains("shutdown requested") && log.contains("inserter stopped"), "{log}");
    // What was committed is exactly what was stored: each record is one row, and its offset went with it.
    let stored = rig.count(&stored_offsets_sql(&group)).await;
    assert_eq!(rig.count(TWEETS).await, stored);
    assert!(stored < 20_000, "the test needs a shutdown mid-drain");

    let mut again = rig.inserter(&group, &["--exit-when-idle", "2s"]);
    assert!(again.wait(Duration::from_secs(60)).await.unwrap().success(), "{}", again.log());
    assert_eq!(rig.count(TWEETS).await, 20_000);
    assert!(again.log().contains(&format!("records={}", 20_000 - stored)), "{}", again.log());
}

#[tokio::test]
async fn a_write_held_by_the_database_costs_the_inserter_no_cpu_while_records_wait() {
    let rig = Rig::start(1).await;
    rig.produce_tweets(1..=10).await;
    let group = unique_name("group");
    let inserter = rig.inserter_with(&group, &[("BATCH_SIZE", "10"), ("BATCH_TIMEOUT", "20ms")], &[]);
    rig.wait_for_count(TWEETS, 10, Duration::from_secs(30), &inserter).await;

    // A write waits for the lock, the next batch is decoded beside it, and more records wait past their batch
    // timeout: the loop has nothing to do until the write ends, and must sleep until then.
    let lock = rig.conn().begin().await.unwrap();
    lock.execute_unprepared("LOCK TABLE twitter_data IN EXCLUSIVE MODE").await.unwrap();
    rig.produce_tweets(11..=100).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = cpu_seconds(inserter.pid());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let used = cpu_seconds(inserter.pid()) - before;
    lock.commit().await.unwrap();
    assert!(used < 0.3, "{used:.2} CPU seconds in 3 s of waiting for the database:\n{}", inserter.log());
    rig.wait_for_count(TWEETS, 100, Duration::from_secs(30), &inserter).await;
}

/// User and system CPU time of process `pid` so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let ticks = support::proc_stat(pid).expect("the inserter runs").own;
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

#[tokio::test]
async fn exit_when_idle_waits_for_records_a_slow_broker_has_not_sent_yet() {
    let rig = Rig::start(1).await;
    rig.produce_tweets(1..=500).await;
    // Each fetch waits 2 s for bytes that never come to be enough: two idle periods pass before the first
    // record arrives, as on a loaded machine whose broker is slow to answer a backfill's first fetch.
    let slow = [("KAFKA_FETCH_MIN_BYTES", "100000000"), ("KAFKA_FETCH_WAIT_MAX_MS", "2000")];
    let mut inserter = rig.inserter_with(&unique_name("group"), &slow, &["--exit-when-idle", "1s"]);
    assert!(inserter.wait(Duration::from_secs(60)).await.unwrap().success(), "{}", inserter.log());
    assert_eq!(rig.count(TWEETS).await, 500, "{}", inserter.log());
    assert!(inserter.log().contains("the broker holds more"), "{}", inserter.log());
    assert!(inserter.log().contains("no new record: exiting"), "and exits once it has them: {}", inserter.log());
}

#[tokio::test]
async fn a_topic_that_does_not_exist_yet_is_waited_for() {
    let rig = Rig::start(0).await;
    let mut inserter = rig.inserter(&unique_name("group"), &[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(inserter.log().contains("waiting for topics to be created"), "{}", inserter.log());

    rig.broker.create_topic(&rig.topic, 1).await.unwrap();
    rig.produce_tweets(1..=100).await;
    rig.wait_for_count(TWEETS, 100, Duration::from_secs(30), &inserter).await;
    inserter.signal(libc::SIGTERM);
    assert!(inserter.wait(Duration::from_secs(20)).await.unwrap().success());
}

#[tokio::test]
async fn metrics_and_health_are_served() {
    let rig = Rig::start(1).await;
    rig.broker.produce(&rig.topic, (1..=100).map(tweet_message)).await.unwrap();
    let addr = free_addr().to_string();
    let env = [("KAFKA_STATISTICS_INTERVAL_MS", "200")];
    let mut inserter = rig.inserter_with(&unique_name("group"), &env, &["--metrics-addr", &addr]);
    rig.wait_for_count(TWEETS, 100, Duration::from_secs(30), &inserter).await;
    // The lag comes with librdkafka's next statistics after the commit.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while lag_by_partition(&http_get(&addr, "/metrics"), &rig.topic) != [(0, 0)].into() {
        assert!(std::time::Instant::now() < deadline, "no lag of 0 for partition 0: {}", http_get(&addr, "/metrics"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let metrics = http_get(&addr, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    let build_info = format!("inserter_build_info{{version=\"{}\"}} 1\n", env!("CARGO_PKG_VERSION"));
    assert!(metrics.contains(&build_info), "{metrics}");
    let of_topic = |name: &str, topic: &str| metric(&metrics, &format!("{name}{{topic=\"{topic}\"}}"));
    assert_eq!(of_topic("inserter_records_consumed_total", &rig.topic), Some(100.0), "{metrics}");
    assert_eq!(of_topic("inserter_dead_letters_total", &rig.topic), Some(0.0), "{metrics}");
    // The topics nobody wrote to yet, and the tables nothing went to, are there at 0.
    for topic in [&rig.statuses_topic, &rig.instagram_profiles_topic, &rig.instagram_media_topic] {
        assert_eq!(of_topic("inserter_records_consumed_total", topic), Some(0.0), "{metrics}");
        assert_eq!(of_topic("inserter_dead_letters_total", topic), Some(0.0), "{metrics}");
    }
    let rows = |table: &str| metric(&metrics, &format!("inserter_rows_written_total{{table=\"{table}\"}}"));
    assert_eq!(rows("twitter_data"), Some(100.0), "{metrics}");
    assert!(rows("twitter_users").is_some_and(|rows| rows >= 50.0), "{metrics}");
    // Every table the inserter writes, as its `table` label says.
    let tables: Vec<&str> = entity::tables().into_iter().filter(|t| t.written).map(|t| t.table).collect();
    for table in tables.iter().filter(|table| !["twitter_users", "twitter_data"].contains(table)) {
        assert_eq!(rows(table), Some(0.0), "{table}: {metrics}");
    }
    assert_eq!(metrics.matches("inserter_rows_written_total{").count(), tables.len(), "{metrics}");
    assert!(metrics.contains("inserter_batches_total"), "{metrics}");
    assert!(metrics.contains("inserter_batch_duration_seconds_bucket"), "{metrics}");
    // The start-up maintenance ran without failing, and with no retention dropped nothing.
    for table in inserter::partitions::tables() {
        let of_table = |name: &str| metric(&metrics, &format!("{name}{{table=\"{table}\"}}"));
        assert_eq!(of_table("inserter_partition_maintenance_failures_total"), Some(0.0), "{metrics}");
        assert_eq!(of_table("inserter_partitions_dropped_total"), Some(0.0), "{metrics}");
        assert_eq!(of_table("inserter_partition_maintenance_skipped_total"), Some(0.0), "{metrics}");
        let last_done = of_table("inserter_partition_maintenance_last_done_timestamp_seconds");
        assert!(last_done.is_some_and(|at| at > 1.7e9), "the start-up run did its work: {metrics}");
    }
    let health = http_get(&addr, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"), "{health}");
    inserter.signal(libc::SIGTERM);
    assert!(inserter.wait(Duration::from_secs(20)).await.unwrap().success());
}
