//! The X stream mapping on real stream lines: every column from a fully populated line, NULLs and empty
//! arrays from a minimal one, X's renamed fields, and a reason for every line that is not a post. Mapped
//! rows are then written to a migrated database, to prove Postgres takes them as they are.

use chrono::{DateTime, TimeZone, Utc};
use entity::{twitter_data, twitter_users};
use inserter::mapping::DecodeError;
use inserter::mapping::twitter::{TweetRows, map};
use migration::Migrator;
use sea_orm::EntityTrait;
use testkit::Postgres;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/x_stream/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn scraped_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 14, 3, 11).unwrap()
}

fn mapped(name: &str) -> TweetRows {
    map(&fixture(name), "x.sample", scraped_at()).unwrap()
}

#[test]
fn a_full_line_fills_every_column() {
    let TweetRows { tweet, users } = mapped("full.json");
    assert_eq!(tweet.tweet_id.as_ref(), &1460323737035677698);
    assert!(tweet.text.as_ref().starts_with("Introducing a new era"));
    assert_eq!(tweet.author_id.as_ref(), &Some(2244994945));
    assert_eq!(tweet.created_at.as_ref(), &Some(Utc.with_ymd_and_hms(2021, 11, 15, 19, 8, 5).unwrap()));
    assert_eq!(tweet.lang.as_ref().as_deref(), Some("en"));
    assert_eq!(tweet.conversation_id.as_ref(), &Some(1460323737035677698));
    assert_eq!(tweet.in_reply_to_user_id.as_ref(), &Some(783214));
    assert_eq!(tweet.replied_to_id.as_ref(), &Some(1460323600000000000));
    assert_eq!(tweet.quoted_id.as_ref(), &Some(1460323600000000001));
    assert_eq!(tweet.retweeted_id.as_ref(), &None);
    let metrics = [
        tweet.retweet_count.as_ref(),
        tweet.reply_count.as_ref(),
        tweet.like_count.as_ref(),
        tweet.quote_count.as_ref(),
        tweet.bookmark_count.as_ref(),
        tweet.impression_count.as_ref(),
    ];
    assert_eq!(metrics.map(|m| m.unwrap()), [112, 24, 569, 37, 9, 104532]);
    assert_eq!(tweet.possibly_sensitive.as_ref(), &Some(false));
    assert_eq!(tweet.hashtags.as_ref(), &["TwitterAPI", "v2"]);
    assert_eq!(tweet.mentions.as_ref(), &["XDevelopers"]);
    assert_eq!(tweet.urls.as_ref(), &["https://developer.x.com/en/docs/x-api"]);
    assert_eq!(tweet.source.as_ref(), "x.sample");
    assert_eq!(tweet.scraped_at.as_ref(), &scraped_at());
    assert_eq!(tweet.raw.as_bytes(), fixture("full.json"), "raw is the line exactly as sent");

    assert_eq!(users.len(), 2);
    let dev = &users[0];
    assert_eq!((dev.user_id.as_ref(), dev.username.as_ref().as_str()), (&2244994945, "XDevelopers"));
    assert_eq!(dev.name.as_ref().as_deref(), Some("Developers"));
    assert_eq!(dev.description.as_ref().as_deref(), Some("The voice of the X Dev team"));
    assert_eq!(dev.location.as_ref().as_deref(), Some("127.0.0.1"));
    assert_eq!(dev.url.as_ref().as_deref(), Some("https://t.co/3ZX3TNiZCY"));
    assert!(dev.profile_image_url.as_ref().as_deref().unwrap().starts_with("https://pbs.twimg.com/"));
    assert_eq!((dev.verified.as_ref(), dev.protected.as_ref()), (&Some(true), &Some(false)));
    assert_eq!(dev.verified_type.as_ref().as_deref(), Some("business"));
    assert_eq!(dev.created_at.as_ref(), &Some(Utc.with_ymd_and_hms(2013, 12, 14, 4, 35, 55).unwrap()));
    let counts = [
        dev.followers_count.as_ref(),
        dev.following_count.as_ref(),
        dev.tweet_count.as_ref(),
        dev.listed_count.as_ref(),
        dev.like_count.as_ref(),
    ];
    assert_eq!(counts.map(|c| c.unwrap()), [570241, 2048, 14052, 1672, 2125]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&dev.raw).unwrap()["verified_type"],
        "business",
        "a user's raw is its own object"
    );
    assert_eq!(users[1].name.as_ref().as_deref(), Some("X"));
    assert_eq!(users[1].followers_count.as_ref(), &None, "metrics not sent are unknown, not zero");
}

#[test]
fn a_minimal_line_leaves_every_optional_column_empty() {
    let TweetRows { tweet, users } = mapped("minimal.json");
    assert_eq!((tweet.tweet_id.as_ref(), tweet.text.as_ref().as_str()), (&1460323737035677699, "hello"));
    for absent in [
        tweet.author_id.as_ref(),
        tweet.conversation_id.as_ref(),
        tweet.in_reply_to_user_id.as_ref(),
        tweet.replied_to_id.as_ref(),
        tweet.quoted_id.as_ref(),
        tweet.retweeted_id.as_ref(),
        tweet.retweet_count.as_ref(),
        tweet.like_count.as_ref(),
        tweet.impression_count.as_ref(),
    ] {
        assert_eq!(absent, &None);
    }
    assert_eq!((tweet.created_at.as_ref(), tweet.lang.as_ref()), (&None, &None));
    assert_eq!(tweet.possibly_sensitive.as_ref(), &None);
    assert!(tweet.hashtags.as_ref().is_empty() && tweet.mentions.as_ref().is_empty() && tweet.urls.as_ref().is_empty());
    assert!(users.is_empty());
}

#[test]
fn the_renamed_fields_are_read_like_the_old_ones() {
    let TweetRows { tweet, users } = mapped("renamed_fields.json");
    assert_eq!(tweet.retweeted_id.as_ref(), &Some(1900000000000000000));
    assert_eq!(tweet.retweet_count.as_ref(), &Some(7), "repost_count is retweet_count");
    assert!(tweet.hashtags.as_ref().is_empty(), "entities: null is no entities");
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].followers_count.as_ref(), &None);
}

#[test]
fn every_line_that_is_not_a_post_is_refused_with_its_reason() {
    let refuse = |payload: &[u8]| map(payload, "x.sample", scraped_at()).unwrap_err();
    assert!(
        matches!(refuse(&fixture("operational_disconnect.json")), DecodeError::SourceError(e) if e.contains("operational-disconnect"))
    );
    assert_eq!(refuse(b""), DecodeError::Empty);
    assert!(matches!(refuse(b"Hello, Kafka"), DecodeError::InvalidJson(_)));
    assert!(matches!(refuse(b"{\"data\":{\"id\":\"1\",\"text\":\"caf\xe9\"}}"), DecodeError::InvalidUtf8 { .. }));
    assert!(
        matches!(refuse(br#"{"data":{"id":"1","text":"a\u0000b"}}"#), DecodeError::Nul { path } if path == "$.data.text")
    );
    let shape = |payload: &[u8]| match refuse(payload) {
        DecodeError::Shape(reason) => reason,
        other => panic!("expected a shape error, got {other:?}"),
    };
    assert!(shape(br#"{"data":{"text":"no id"}}"#).contains("missing field `id`"));
    assert!(shape(br#"{"data":{"id":"1"}}"#).contains("missing field `text`"));
    assert!(shape(br#"{"data":{"id":"abc","text":"t"}}"#).contains("positive 64-bit integer"));
    assert!(shape(br#"{"data":{"id":"1","text":5}}"#).contains("invalid type"));
    assert!(shape(br#"{"data":{"id":"1","text":"t","public_metrics":{"like_count":-1.5}}}"#).contains("invalid type"));
    assert!(shape(br#"{"data":{"id":"1","text":"t","created_at":"yesterday"}}"#).contains("input"));
    assert!(
        shape(br#"{"data":{"id":"1","text":"t"},"includes":{"users":[{"id":"2"}]}}"#).contains("includes.users[0]")
    );
    assert!(shape(br#"{"matching_rules":[]}"#).contains("missing field `data`"));
}

#[tokio::test]
async fn mapped_rows_are_storable_as_they_are() {
    let pg = Postgres::start().await.unwrap();
    let db = pg.migrated_database::<Migrator>().await.unwrap().conn;
    for name in ["full.json", "minimal.json", "renamed_fields.json"] {
        let TweetRows { tweet, users } = mapped(name);
        twitter_data::Entity::insert(tweet.into_model()).exec_without_returning(&db).await.unwrap();
        for user in users {
            twitter_users::Entity::insert(user.into_model()).exec_without_returning(&db).await.unwrap();
        }
    }
    let stored = twitter_data::Entity::find_by_id(1460323737035677698_i64).one(&db).await.unwrap().unwrap();
    assert_eq!(stored.hashtags, ["TwitterAPI", "v2"]);
    assert_eq!(stored.raw["matching_rules"][0]["tag"], "api");
    assert_eq!(twitter_data::Entity::find().all(&db).await.unwrap().len(), 3);
    assert_eq!(twitter_users::Entity::find().all(&db).await.unwrap().len(), 3);
}

#[tokio::test]
async fn synthetic_posts_are_stored_marked_as_such_and_only_as_x_posts() {
    use crate::support;
    use contract::source::REPLAY_SYNTHETIC;
    use contract::topic::{MASTODON_STATUSES, TWEETS};
    use inserter::batch::{Batch, Routes};
    use scraper::synthetic;

    let pg = Postgres::start().await.unwrap();
    let db = pg.migrated_database::<Migrator>().await.unwrap().conn;
    // As the scraper's replay produces the generator's posts.
    let record = |topic: &str, n: u64| {
        let key = synthetic::post_id(1, n).to_string();
        let mut record = support::consumed_tweet(topic, n as i64, key, synthetic::line(1, n), "2026-01-01T00:00:00Z");
        record.headers[0].1 = Some(REPLAY_SYNTHETIC.as_bytes().to_vec());
        record
    };
    let mut batch = Batch::decode((0..20).map(|n| record(TWEETS.default, n)), &Routes::default());
    assert!(batch.dead_letters().is_empty(), "{:?}", batch.dead_letters());
    inserter::writer::write(&db, "synthetic", &mut batch).await.unwrap();

    let rows = twitter_data::Entity::find().all(&db).await.unwrap();
    assert_eq!(rows.len(), 20);
    for row in &rows {
        assert_eq!(row.source, REPLAY_SYNTHETIC, "the row says where it comes from");
        assert!(synthetic::POST_IDS.contains(&row.tweet_id), "{}", row.tweet_id);
        assert!(synthetic::USER_IDS.contains(&row.author_id.unwrap()), "{:?}", row.author_id);
        assert!(row.text.starts_with(synthetic::TEXT_PREFIX), "{}", row.text);
    }
    let users = twitter_users::Entity::find().all(&db).await.unwrap();
    assert!(users.iter().all(|user| synthetic::USER_IDS.contains(&user.user_id)), "{users:?}");
    let defaulted = support::count(&db, "SELECT count(*) FROM twitter_data_default").await;
    assert_eq!(defaulted, 20, "ids of 2079 on are past every partition made");

    // X stream lines: on another topic no mapping reads them.
    let batch = Batch::decode([record(MASTODON_STATUSES.default, 0)], &Routes::default());
    let reason = &batch.dead_letters()[0].1;
    assert!(reason.contains("no mapping for source `replay.synthetic`"), "{reason}");
}
