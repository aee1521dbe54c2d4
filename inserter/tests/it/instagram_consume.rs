//! The `inserter` binary with Instagram records on a real broker: profiles and media produced to their two
//! topics land as profiles, snapshots, posts (a Graph and a web scrape of one post on one row), hashtags,
//! comments and tagged users; a malformed record is dead-lettered with its reason.

use crate::support;

use std::time::Duration;

use entity::{instagram_posts, instagram_profiles};
use sea_orm::EntityTrait;
use support::{Rig, fixture_json, instagram_message};
use testkit::{TestMessage, unique_name};

const GRAPH_POST: i64 = 3195531937028616383;

fn offsets_sql(rig: &Rig, group: &str) -> String {
    format!(
        "SELECT coalesce(sum(next_offset), 0)::bigint FROM kafka_offsets WHERE consumer_group = '{group}' \
         AND topic IN ('{}', '{}')",
        rig.instagram_profiles_topic, rig.instagram_media_topic
    )
}

#[tokio::test]
async fn instagram_profiles_and_media_land_from_both_topics() {
    let rig = Rig::start(1).await;
    rig.broker.create_topic(&rig.instagram_profiles_topic, 2).await.unwrap();
    rig.broker.create_topic(&rig.instagram_media_topic, 2).await.unwrap();
    let at = "2025-06-03T09:00:00Z";
    let graph = [("source", "instagram.graph.business_discovery")];
    let web = [("source", "instagram.web.profile")];
    let profiles = vec![
        instagram_message(&fixture_json("instagram/graph_profile.json"), at, &graph),
        instagram_message(&fixture_json("instagram/web_profile.json"), at, &web),
    ];
    let owned = [("source", "instagram.graph.business_discovery"), ("instagram_owner_id", "17841405309211844")];
    let searched = [
        ("source", "instagram.graph.hashtag.recent_media"),
        ("instagram_hashtag", "coffee"),
        ("instagram_hashtag_id", "17843826142012701"),
    ];
    let malformed = TestMessage {
        key: Some(b"17900000000000002".to_vec()),
        value: Some(br#"{"id":"17900000000000002","permalink":"https://www.instagram.com/explore/","timestamp":"2025-06-02T08:30:00+0000"}"#.to_vec()),
        headers: vec![("source".into(), b"instagram.graph.hashtag.top_media".to_vec())],
        partition: None,
    };
    let media = vec![
        instagram_message(&fixture_json("instagram/graph_media.json"), at, &owned),
        instagram_message(&fixture_json("instagram/graph_hashtag_media.json"), at, &searched),
        instagram_message(&fixture_json("instagram/web_node.json"), at, &web),
        instagram_message(&fixture_json("instagram/web_node_video.json"), "2025-06-03T09:05:00Z", &web),
        malformed,
    ];
    rig.broker.produce(&rig.instagram_profiles_topic, profiles).await.unwrap();
    rig.broker.produce(&rig.instagram_media_topic, media).await.unwrap();

    let group = unique_name("group");
    let mut inserter = rig.inserter(&group, &[]);
    rig.wait_for_count(&offsets_sql(&rig, &group), 7, Duration::from_secs(60), &inserter).await;

    let count = |table: &str| format!("SELECT count(*) FROM {table}");
    assert_eq!(rig.count(&count("instagram_profiles WHERE raw IS NOT NULL")).await, 2, "{}", inserter.log());
    assert_eq!(rig.count(&count("instagram_profiles WHERE raw IS NULL")).await, 4, "555, 556, 777 and the web owner");
    assert_eq!(rig.count(&count("instagram_profile_snapshots")).await, 2);
    assert_eq!(rig.count(&count("instagram_posts")).await, 3);
    assert_eq!(rig.count(&count("instagram_hashtags")).await, 5);
    assert_eq!(rig.count(&count("instagram_post_hashtags")).await, 6);
    assert_eq!(rig.count(&count("instagram_comments")).await, 3);
    assert_eq!(rig.count(&count("instagram_post_tagged_users")).await, 1);
    let post = instagram_posts::Entity::find_by_id(GRAPH_POST).one(rig.conn()).await.unwrap().unwrap();
    assert_eq!(post.graph_media_id, Some(17858843269216389));
    // Keyed by different ids, the two scrapes may land in either order: the first owner known stays.
    assert!(matches!(post.owner_id, Some(17841405309211844 | 1620131)), "{:?}", post.owner_id);
    assert_eq!(
        (post.video_view_count, post.media_type.as_deref()),
        (Some(5000), Some("VIDEO")),
        "the later web scrape"
    );
    let profile = instagram_profiles::Entity::find_by_id(25025320_i64).one(rig.conn()).await.unwrap().unwrap();
    assert_eq!(profile.followers_count, Some(676000000));
    let dead = "SELECT count(*) FROM ingest_errors WHERE key = '17900000000000002' \
                AND error LIKE 'permalink%is not a post''s URL with a shortcode%'";
    assert_eq!(rig.count(dead).await, 1, "the malformed record is dead-lettered with its reason");

    inserter.signal(libc::SIGTERM);
    assert!(inserter.wait(Duration::from_secs(20)).await.unwrap().success(), "{}", inserter.log());
}
