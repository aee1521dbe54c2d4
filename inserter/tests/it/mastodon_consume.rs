//! The `inserter` binary with Mastodon statuses on a real broker: statuses produced to their topic land in
//! `mastodon_statuses` with every column, a newer scrape updates them, an older one changes nothing, a
//! malformed one is dead-lettered with its reason; and a statuses topic that does not exist yet holds back
//! nothing: posts flow meanwhile, and statuses flow once the topic is created.

use crate::support;

use std::time::Duration;

use chrono::{TimeZone, Utc};
use entity::mastodon_statuses;
use sea_orm::EntityTrait;
use sea_orm::{ColumnTrait as _, QueryFilter as _};
use serde_json::json;
use support::{Rig, fixture_json, status_message};
use testkit::{TestMessage, unique_name};

const STATUSES: &str = "SELECT count(*) FROM mastodon_statuses";
const ID: i64 = 113512893421773000;

fn statuses_offsets_sql(rig: &Rig, group: &str) -> String {
    format!(
        "SELECT coalesce(sum(next_offset), 0)::bigint FROM kafka_offsets
         WHERE consumer_group = '{group}' AND topic = '{}'",
        rig.statuses_topic
    )
}

fn with_counts(reblogs: i64, favourites: i64, replies: i64) -> serde_json::Value {
    let mut status = fixture_json("mastodon/status.json");
    status["reblogs_count"] = json!(reblogs);
    status["favourites_count"] = json!(favourites);
    status["replies_count"] = json!(replies);
    status
}

/// The status of id `id` (the fixtures' records carry no `instance`: one row has the id).
async fn stored(rig: &Rig, id: i64) -> mastodon_statuses::Model {
    mastodon_statuses::Entity::find()
        .filter(mastodon_statuses::Column::Id.eq(id))
        .one(rig.conn())
        .await
        .unwrap()
        .expect("the status was stored")
}

async fn counts(rig: &Rig) -> [Option<i64>; 3] {
    let row = stored(rig, ID).await;
    [row.reblogs_count, row.favourites_count, row.replies_count]
}

#[tokio::test]
async fn statuses_land_newer_scrapes_update_older_ones_do_not_and_malformed_ones_are_dead_lettered() {
    let rig = Rig::start(1).await;
    rig.broker.create_topic(&rig.statuses_topic, 2).await.unwrap();
    let malformed = TestMessage {
        key: Some(b"113512893421773001".to_vec()),
        value: Some(br#"{"id":"113512893421773001","uri":"https://x/1","content":"<p>no account</p>"}"#.to_vec()),
        headers: vec![("source".into(), b"sse".to_vec())],
        partition: None,
    };
    let messages = vec![
        status_message(&fixture_json("mastodon/status.json"), "2024-11-21T14:15:00Z"),
        status_message(&fixture_json("mastodon/reblog.json"), "2024-11-21T14:15:00Z"),
        status_message(&fixture_json("mastodon/minimal.json"), "2024-11-21T14:15:00Z"),
        malformed,
    ];
    rig.broker.produce(&rig.statuses_topic, messages).await.unwrap();
    let group = unique_name("group");
    let mut inserter = rig.inserter(&group, &[]);
    rig.wait_for_count(&statuses_offsets_sql(&rig, &group), 4, Duration::from_secs(60), &inserter).await;

    assert_eq!(rig.count(STATUSES).await, 3, "{}", inserter.log());
    let row = stored(&rig, ID).await;
    assert_eq!(row.uri, "https://hachyderm.io/users/ferris/statuses/113512893400000000");
    assert_eq!(row.url.as_deref(), Some("https://hachyderm.io/@ferris/113512893400000000"));
    assert_eq!((row.account_id, row.account_acct.as_str()), (109301234567890124, "ferris@hachyderm.io"));
    assert_eq!(row.account_username, "ferris");
    assert!(row.content_text.starts_with("@Gargron @rustlang Crabs & coffee <3 it's \"done\"\n\nSecond paragraph"));
    assert_eq!((row.spoiler_text.as_str(), row.visibility.as_str()), ("Food & drink", "public"));
    assert_eq!((row.language.as_deref(), row.sensitive), (Some("en"), Some(true)));
    assert_eq!((row.in_reply_to_id, row.reblog_of_id), (Some(113512880000000001), None));
    assert_eq!(row.tags, ["rustlang", "café"]);
    assert_eq!(row.mentions, ["Gargron@mastodon.social", "rustlang@fosstodon.org"]);
    assert_eq!([row.reblogs_count, row.favourites_count, row.replies_count], [Some(12), Some(47), Some(3)]);
    assert_eq!(
        row.created_at,
        Utc.with_ymd_and_hms(2024, 11, 21, 14, 3, 11).unwrap() + chrono::Duration::milliseconds(523)
    );
    assert!(row.edited_at.is_some());
    assert_eq!(row.raw, fixture_json("mastodon/status.json"));
    assert_eq!(row.scraped_at, Utc.with_ymd_and_hms(2024, 11, 21, 14, 15, 0).unwrap(), "from the scraped_at header");
    let reblog = mastodon_statuses::Entity::find()
        .filter(mastodon_statuses::Column::Id.eq(113512900000000777_i64))
        .one(rig.conn())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reblog.reblog_of_id, Some(ID));
    let dead = "SELECT count(*) FROM ingest_errors WHERE key = '113512893421773001' AND error LIKE '%missing field%'";
    assert_eq!(rig.count(dead).await, 1, "the malformed status is dead-lettered with its reason");

    // Same key, same partition: the newer scrape first, then an older one that arrives late.
    rig.broker
        .produce(&rig.statuses_topic, [status_message(&with_counts(20, 60, 4), "2024-11-21T14:20:00Z")])
        .await
        .unwrap();
    rig.wait_for_count(&statuses_offsets_sql(&rig, &group), 5, Duration::from_secs(30), &inserter).await;
    assert_eq!(counts(&rig).await, [Some(20), Some(60), Some(4)], "a newer scrape updates the counts");

    rig.broker
        .produce(&rig.statuses_topic, [status_message(&with_counts(1, 1, 1), "2024-11-21T14:10:00Z")])
        .await
        .unwrap();
    rig.wait_for_count(&statuses_offsets_sql(&rig, &group), 6, Duration::from_secs(30), &inserter).await;
    assert_eq!(counts(&rig).await, [Some(20), Some(60), Some(4)], "an older scrape changes nothing");
    assert_eq!(rig.count(STATUSES).await, 3);
    assert_eq!(rig.count("SELECT count(*) FROM ingest_errors").await, 1);

    inserter.signal(libc::SIGTERM);
    assert!(inserter.wait(Duration::from_secs(20)).await.unwrap().success(), "{}", inserter.log());
}

#[tokio::test]
async fn a_statuses_topic_created_later_holds_back_nothing_and_is_picked_up() {
    let rig = Rig::start(1).await;
    let mut inserter = rig.inserter(&unique_name("group"), &[]);
    rig.produce_tweets(1..=100).await;
    rig.wait_for_count("SELECT count(*) FROM twitter_data", 100, Duration::from_secs(30), &inserter).await;
    assert!(inserter.log().contains("missing topics are added once they exist"), "{}", inserter.log());

    rig.broker.create_topic(&rig.statuses_topic, 1).await.unwrap();
    let statuses = ["status.json", "reblog.json", "minimal.json"]
        .map(|name| status_message(&fixture_json(&format!("mastodon/{name}")), "2024-11-21T14:15:00Z"));
    rig.broker.produce(&rig.statuses_topic, statuses).await.unwrap();
    rig.wait_for_count(STATUSES, 3, Duration::from_secs(60), &inserter).await;
    assert!(inserter.log().contains("subscription widened"), "{}", inserter.log());

    rig.produce_tweets(101..=200).await;
    rig.wait_for_count("SELECT count(*) FROM twitter_data", 200, Duration::from_secs(30), &inserter).await;
    inserter.signal(libc::SIGTERM);
    assert!(inserter.wait(Duration::from_secs(20)).await.unwrap().success(), "{}", inserter.log());
    assert_eq!(rig.count("SELECT count(*) FROM ingest_errors").await, 0);
}
