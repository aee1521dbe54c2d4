//! `twitter_data` as users and Debezium see it: the documented first query returns what was inserted, and a
//! pgoutput slot on the publication reports the insert (and nothing from unpublished tables).

use chrono::Utc;
use entity::{kafka_offsets, twitter_data};
use migration::{CDC_PUBLICATION, Migrator};
use sea_orm::{ConnectionTrait, EntityTrait, IntoActiveModel, Statement};
use serde_json::json;
use testkit::Postgres;
use testkit::cdc::{self, ChangeKind};

fn tweet(id: i64, text: &str) -> twitter_data::Model {
    twitter_data::Model {
        tweet_id: id,
        text: text.into(),
        author_id: None,
        created_at: None,
        lang: None,
        conversation_id: None,
        in_reply_to_user_id: None,
        replied_to_id: None,
        quoted_id: None,
        retweeted_id: None,
        retweet_count: None,
        reply_count: None,
        like_count: None,
        quote_count: None,
        bookmark_count: None,
        impression_count: None,
        possibly_sensitive: None,
        hashtags: vec![],
        mentions: vec![],
        urls: vec![],
        source: "replay".into(),
        raw: json!({"data": {"id": id.to_string(), "text": text}}),
        scraped_at: Utc::now(),
        ingested_at: Utc::now(),
    }
}

#[tokio::test]
async fn an_insert_is_queryable_and_reaches_the_replication_slot() {
    let pg = Postgres::start().await.unwrap();
    let db = pg.migrated_database::<Migrator>().await.unwrap().conn;
    cdc::create_slot(&db, "debezium_test").await.unwrap();

    twitter_data::Entity::insert(tweet(1_850_000_000_000_000_001, "hello, CDC").into_active_model())
        .exec_without_returning(&db)
        .await
        .unwrap();
    let offsets = kafka_offsets::Model {
        consumer_group: "g".into(),
        topic: "twitter.tweets".into(),
        partition: 0,
        next_offset: 1,
        updated_at: Utc::now(),
    };
    kafka_offsets::Entity::insert(offsets.into_active_model()).exec_without_returning(&db).await.unwrap();

    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT tweet_id, text FROM public.twitter_data;",
        ))
        .await
        .unwrap();
    let rows: Vec<(i64, String)> =
        rows.iter().map(|r| (r.try_get_by_index(0).unwrap(), r.try_get_by_index(1).unwrap())).collect();
    assert_eq!(rows, vec![(1_850_000_000_000_000_001, "hello, CDC".to_owned())]);

    let changes = cdc::peek_changes(&db, "debezium_test", CDC_PUBLICATION).await.unwrap();
    assert_eq!(changes.len(), 1, "one insert into a published table, none from kafka_offsets: {changes:?}");
    let change = &changes[0];
    assert_eq!((change.kind, change.table.as_str()), (ChangeKind::Insert, "twitter_data"));
    assert_eq!(change.columns[0].as_deref(), Some("1850000000000000001"));
    assert_eq!(change.columns[1].as_deref(), Some("hello, CDC"));
}

#[tokio::test]
async fn an_update_carries_the_full_before_image() {
    let pg = Postgres::start().await.unwrap();
    let db = pg.migrated_database::<Migrator>().await.unwrap().conn;
    twitter_data::Entity::insert(tweet(7, "before").into_active_model()).exec_without_returning(&db).await.unwrap();
    cdc::create_slot(&db, "before_images").await.unwrap();

    db.execute_unprepared("UPDATE twitter_data SET like_count = 5 WHERE tweet_id = 7").await.unwrap();

    let changes = cdc::peek_changes(&db, "before_images", CDC_PUBLICATION).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].kind, ChangeKind::Update);
    let old = changes[0].old_columns.as_ref().expect("REPLICA IDENTITY FULL sends the old row");
    assert_eq!(old[1].as_deref(), Some("before"), "the whole old row, not only its key");
    assert_eq!(old.len(), changes[0].columns.len());
}
