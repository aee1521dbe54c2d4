//! The inserter when things die: SIGKILLed mid-drain and restarted, Postgres stopped mid-drain and restarted,
//! one of two group members killed, the broker killed and restarted. Every time, every record lands exactly
//! once and nothing is dead-lettered.

use crate::support;

use std::time::Duration;

use support::{Rig, Schema};
use testkit::{Broker, Postgres, unique_name};

const TWEETS: &str = "SELECT count(*) FROM twitter_data";
const DEAD_LETTERS: &str = "SELECT count(*) FROM ingest_errors";

fn stored_offsets_sql(group: &str) -> String {
    format!("SELECT coalesce(sum(next_offset), 0)::bigint FROM kafka_offsets WHERE consumer_group = '{group}'")
}

/// Runs an inserter to the end of the topic, and checks that every record landed once, its offset with it.
async fn drain_and_check(rig: &Rig, group: &str, records: i64) {
    let mut last = rig.inserter(group, &["--exit-when-idle", "2s"]);
    let status = last.wait(Duration::from_secs(90)).await.unwrap();
    assert!(status.success(), "{}", last.log());
    assert_eq!(rig.count(TWEETS).await, records, "{}", last.log());
    assert_eq!(rig.count(&stored_offsets_sql(group)).await, records, "each record's offset is stored once");
    assert_eq!(rig.count(DEAD_LETTERS).await, 0, "nothing is dead-lettered by a failure");
}

#[tokio::test]
async fn sigkill_mid_drain_then_restart_lands_every_record_exactly_once() {
    let rig = Rig::start(3).await;
    rig.produce_tweets(1..=15_000).await;
    let group = unique_name("group");
    let mut landed = 0;
    for round in 1..=3 {
        let mut inserter = rig.inserter(&group, &[]);
        rig.wait_for_count(TWEETS, landed + 1_000, Duration::from_secs(60), &inserter).await;
        inserter.kill();
        landed = rig.count(TWEETS).await;
        assert!(landed < 15_000, "round {round} must kill the inserter mid-drain");
        // What survived the kill is consistent: the stored offsets are exactly the rows committed with them.
        assert_eq!(rig.count(&stored_offsets_sql(&group)).await, landed);
    }
    drain_and_check(&rig, &group, 15_000).await;
}

#[tokio::test]
async fn a_postgres_outage_mid_drain_loses_nothing_and_dead_letters_nothing() {
    let mut rig = Rig::start(2).await;
    rig.produce_tweets(1..=15_000).await;
    let group = unique_name("group");
    let inserter = rig.inserter(&group, &[]);
    rig.wait_for_count(TWEETS, 1_000, Duration::from_secs(60), &inserter).await;

    rig.pg.stop();
    inserter.wait_for_log("batch write failed, nothing committed; retrying", Duration::from_secs(30)).await.unwrap();
    rig.pg.restart().await.unwrap();

    rig.wait_for_count(TWEETS, 15_000, Duration::from_secs(90), &inserter).await;
    drop(inserter);
    drain_and_check(&rig, &group, 15_000).await;
}

/// Two members share the topic's partitions; one is SIGKILLed mid-drain. Once its session times out (the
/// rig's KAFKA_SESSION_TIMEOUT_MS, 6 s) the broker hands its partitions to the survivor, which resumes them
/// from the offsets stored with the rows: every record lands exactly once.
#[tokio::test]
async fn two_members_share_the_partitions_and_the_survivor_takes_over_the_killed_ones() {
    let rig = Rig::start(4).await;
    rig.produce_tweets(1..=15_000).await;
    let group = unique_name("group");
    let mut first = rig.inserter(&group, &[]);
    let second = rig.inserter(&group, &[]);
    for member in [&first, &second] {
        member.wait_for_log("consuming from the offsets", Duration::from_secs(30)).await.unwrap();
    }
    rig.wait_for_count(TWEETS, 2_000, Duration::from_secs(60), &second).await;
    first.kill();
    let killed_at = rig.count(TWEETS).await;
    assert!(killed_at < 15_000, "the member is killed mid-drain");

    rig.wait_for_count(TWEETS, 15_000, Duration::from_secs(120), &second).await;
    // Both members' batches upsert the same 50 authors at once: in key order, neither waits on the other.
    for member in [&first, &second] {
        assert!(!member.log().contains("deadlock"), "{}", member.log());
    }
    drop(second);
    assert_eq!(rig.count(TWEETS).await, 15_000);
    assert_eq!(rig.count(&stored_offsets_sql(&group)).await, 15_000, "each record's offset is stored once");
    assert_eq!(rig.count(DEAD_LETTERS).await, 0);
}

/// The broker SIGKILLed under a draining inserter and restarted: the inserter rides it out and lands every
/// record exactly once.
#[tokio::test]
async fn a_broker_killed_mid_drain_and_restarted_loses_and_duplicates_nothing() {
    let broker = Broker::start().await.unwrap();
    let mut rig = Rig::start_in(Postgres::start().await.unwrap(), 2, Schema::Migrated, broker).await;
    rig.produce_tweets(1..=15_000).await;
    let group = unique_name("group");
    let inserter = rig.inserter(&group, &[]);
    rig.wait_for_count(TWEETS, 1_000, Duration::from_secs(60), &inserter).await;

    rig.broker.stop();
    let killed_at = rig.count(TWEETS).await;
    assert!(killed_at < 15_000, "the broker is killed mid-drain");
    tokio::time::sleep(Duration::from_secs(3)).await;
    rig.broker.restart().await.unwrap();

    rig.wait_for_count(TWEETS, 15_000, Duration::from_secs(120), &inserter).await;
    drop(inserter);
    drain_and_check(&rig, &group, 15_000).await;
}
