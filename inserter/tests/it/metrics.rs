//! The inserter's lag metrics against a real broker: one series per assigned partition, above 0 while records
//! sit uncommitted on it, and gone from a member once the partition is taken from it.

use crate::support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, TransactionTrait};
use support::{Rig, free_addr, http_get, lag_by_partition, tweet_message};
use testkit::{Process, TestMessage, unique_name};

const TWEETS: &str = "SELECT count(*) FROM twitter_data";

/// Polls the lag series of `topic` that `addr` serves until `done` holds for them; panics with the logs after
/// `timeout`.
async fn wait_for_lag(
    addr: &str,
    topic: &str,
    done: impl Fn(&BTreeMap<i32, i64>) -> bool,
    timeout: Duration,
    processes: &[&Process],
) -> BTreeMap<i32, i64> {
    let deadline = Instant::now() + timeout;
    loop {
        let lag = lag_by_partition(&http_get(addr, "/metrics"), topic);
        if done(&lag) {
            return lag;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = processes.iter().map(|p| p.log()).collect();
            panic!("lag of {topic} at {addr}: {lag:?} after {timeout:?}; logs:\n{}", logs.join("\n-----\n"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn consumer_lag_is_reported_per_assigned_partition_and_dropped_when_revoked() {
    const PARTITIONS: i32 = 4;
    const FIRST: u64 = 200;
    const ALL: u64 = 700;
    /// Where the records produced while the writes are held go.
    const HELD: i32 = 2;
    let stack = Rig::start(PARTITIONS).await;
    stack.produce_tweets(1..=FIRST).await;
    let group = unique_name("group");
    let env = [
        ("KAFKA_PARTITION_ASSIGNMENT_STRATEGY", "cooperative-sticky"),
        ("KAFKA_STATISTICS_INTERVAL_MS", "200"),
        ("BATCH_SIZE", "20"),
        ("PROGRESS_INTERVAL", "250ms"),
    ];
    let addr_a = free_addr().to_string();
    let a = stack.inserter_with(&group, &env, &["--metrics-addr", &addr_a]);
    stack.wait_for_count(TWEETS, FIRST as i64, Duration::from_secs(60), &a).await;

    // Caught up: a series for each assigned partition, at 0.
    let all_partitions = |lag: &BTreeMap<i32, i64>| lag.keys().copied().eq(0..PARTITIONS);
    let caught_up = |lag: &BTreeMap<i32, i64>| all_partitions(lag) && lag.values().all(|&lag| lag == 0);
    wait_for_lag(&addr_a, &stack.topic, caught_up, Duration::from_secs(30), &[&a]).await;

    // Hold A's writes (a lock every insert waits for): what is produced now, on one partition, sits there
    // uncommitted behind them.
    let lock = stack.conn().begin().await.unwrap();
    lock.execute_unprepared("LOCK TABLE twitter_data IN EXCLUSIVE MODE").await.unwrap();
    let held = (FIRST + 1..=ALL).map(|id| TestMessage { partition: Some(HELD), ..tweet_message(id) });
    stack.broker.produce(&stack.topic, held).await.unwrap();
    let behind = |lag: &BTreeMap<i32, i64>| {
        all_partitions(lag) && lag.iter().all(|(&partition, &lag)| (partition == HELD) == (lag > 0))
    };
    let lag = wait_for_lag(&addr_a, &stack.topic, behind, Duration::from_secs(30), &[&a]).await;
    assert!(lag[&HELD] <= (ALL - FIRST) as i64, "no more behind than was produced since: {lag:?}");
    let logged = |line: &str| line.contains(" progress ") && line.contains(" lag=") && !line.contains(" lag=0 ");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a.log().lines().any(logged) {
        assert!(Instant::now() < deadline, "the progress line shows the lag:\n{}", a.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // B joins: the cooperative rebalance takes some of A's partitions. A drops their series; B reports them.
    let addr_b = free_addr().to_string();
    let b = stack.inserter_with(&group, &env, &["--metrics-addr", &addr_b]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !a.log().contains("partitions revoked") {
        assert!(Instant::now() < deadline, "no revoke:\n{}\n-----\n{}", a.log(), b.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept = |lag: &BTreeMap<i32, i64>| !lag.is_empty() && lag.len() < PARTITIONS as usize;
    wait_for_lag(&addr_a, &stack.topic, kept, Duration::from_secs(30), &[&a, &b]).await;
    lock.commit().await.unwrap();

    // Both drain; each reports the partitions it holds, at 0, and none the other holds.
    stack.wait_for_count(TWEETS, ALL as i64, Duration::from_secs(60), &a).await;
    let drained = |lag: &BTreeMap<i32, i64>| !lag.is_empty() && lag.values().all(|&lag| lag == 0);
    let (in_a, in_b) = (
        wait_for_lag(&addr_a, &stack.topic, drained, Duration::from_secs(30), &[&a, &b]).await,
        wait_for_lag(&addr_b, &stack.topic, drained, Duration::from_secs(30), &[&a, &b]).await,
    );
    assert!(in_a.keys().all(|p| !in_b.contains_key(p)), "a partition has one owner: {in_a:?} {in_b:?}");
    assert_eq!(in_a.len() + in_b.len(), PARTITIONS as usize, "{in_a:?} {in_b:?}");
}
