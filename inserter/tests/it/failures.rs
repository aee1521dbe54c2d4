//! The inserter when things die: SIGKILLed mid-drain and restarted, Postgres stopped mid-drain and restarted,
//! one of two group members killed. Every time, every record lands exactly once and nothing is dead-lettered.

use crate::support;

use std::time::Duration;

use support::Rig;
use testkit::unique_name;

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
    support::wait_for_log(&inserter, "batch write failed, nothing committed; retrying", Duration::from_secs(30)).await;
    rig.pg.restart().await.unwrap();

    rig.wait_for_count(TWEETS, 15_000, Duration::from_secs(90), &inserter).await;
    drop(inserter);
    drain_and_check(&rig, &group, 15_000).await;
}

/// The test broker (tansu 0.6) never expires a SIGKILLed member: it keeps the member's partitions assigned to
/// it through later rebalances, so no one can finish them (a Kafka broker hands them to the survivor once the
/// session times out). This test therefore checks what such a broker allows: both members consume, and after
/// the kill the survivor finishes its own partitions with every row and offset consistent, nothing lost from
/// what was committed, nothing dead-lettered.
#[tokio::test]
async fn two_members_share_the_partitions_and_one_killed_loses_nothing() {
    let rig = Rig::start(4).await;
    rig.produce_tweets(1..=15_000).await;
    let group = unique_name("group");
    let mut first = rig.inserter(&group, &[]);
    let second = rig.inserter(&group, &[]);
    for member in [&first, &second] {
        support::wait_for_log(member, "consuming from the offsets", Duration::from_secs(30)).await;
    }
    rig.wait_for_count(TWEETS, 4_000, Duration::from_secs(60), &second).await;
    first.kill();

    // The survivor drains what it holds, until the table stops growing.
    let killed_at = rig.count(TWEETS).await;
    let mut last = -1;
    while rig.count(TWEETS).await != last {
        last = rig.count(TWEETS).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    drop(second);
    assert!(last > killed_at, "the survivor went on after the kill");
    assert_eq!(last, rig.count(&stored_offsets_sql(&group)).await, "rows and stored offsets agree");
    assert_eq!(rig.count(DEAD_LETTERS).await, 0);
}
