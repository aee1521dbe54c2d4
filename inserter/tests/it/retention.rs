//! Retention as a user runs it: the schema's owner sets `twitter_data`'s with `migration retention`, and the
//! inserter drops the partitions older than it when it starts (and on its schedule), while the posts it
//! consumes land in today's partition.

use crate::support;

use std::time::Duration;

use support::Rig;
use testkit::unique_name;

#[tokio::test]
async fn the_inserter_drops_partitions_past_the_retention_and_lands_new_posts_in_todays() {
    let rig = Rig::start(1).await;
    let db = rig.conn();
    let sql = "SELECT ingest_partition_create('twitter_data', now() - interval '10 days', now());
               INSERT INTO twitter_data (tweet_id, text, created_at, source, raw, scraped_at)
               SELECT ((floor(extract(epoch FROM now() - d * interval '1 day') * 1000)::bigint - 1288834974657) << 22),
                      'old post', now() - d * interval '1 day', 'x.sample', '{}', now()
                 FROM generate_series(5, 9) AS d;";
    sea_orm::ConnectionTrait::execute_unprepared(db, sql).await.unwrap();
    let retention = std::process::Command::new(testkit::stack::binaries_dir().unwrap().join("migration"))
        .args(["retention", "--twitter-retention", "3d"])
        .env("DATABASE_URL", &rig.db.url)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&retention.stdout);
    assert!(retention.status.success(), "{said}{}", String::from_utf8_lossy(&retention.stderr));
    assert!(said.contains("twitter_data: keeps 3 days, not maintained yet"), "{said}");
    let first = support::x_id_ago(0);
    rig.produce_tweets(first..first + 3).await;

    let mut inserter = rig.inserter(&unique_name("group"), &["--exit-when-idle", "2s"]);
    assert!(inserter.wait(Duration::from_secs(60)).await.unwrap().success(), "{}", inserter.log());

    let log = inserter.log();
    assert!(log.contains("partition maintenance") && log.contains("partitions_dropped"), "{log}");
    assert_eq!(support::count(db, "SELECT count(*) FROM twitter_data WHERE text = 'old post'").await, 0, "{log}");
    let landed = format!(
        "SELECT count(*) FROM twitter_data WHERE tweet_id >= {first} AND tableoid::regclass::text <> 'twitter_data_default'"
    );
    assert_eq!(support::count(db, &landed).await, 3, "the new posts are in a partition of their day");
    let old_partitions = "SELECT count(*) FROM pg_inherits WHERE inhparent = 'twitter_data'::regclass";
    assert_eq!(support::count(db, old_partitions).await, 1 + 4 + 4, "the default, the last 4 days, 4 ahead");
}
