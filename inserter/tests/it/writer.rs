//! The batch writer against a real Postgres: rows, dead letters and offsets land together; every bad
//! record lands in `ingest_errors` with a readable reason while the records around it land; a row the
//! database refuses is isolated; replays and older scrapes change nothing (not even for CDC); and a batch of
//! 50,000 posts (far past Postgres's 65,535 bind parameters, had each value been bound alone) is written.

use chrono::{DateTime, Duration, TimeZone, Utc};
use entity::{ingest_errors, twitter_data, twitter_users};
use inserter::batch::{Batch, Routes};
use inserter::record::ConsumedRecord;
use inserter::writer::write;
use migration::CDC_PUBLICATION;
use sea_orm::{DatabaseConnection, EntityTrait, QueryOrder};
use testkit::cdc;

use crate::support::setup;

const TOPIC: &str = "twitter.tweets";

fn routes() -> Routes {
    Routes::default().with_topic("tweets", TOPIC)
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap() + Duration::seconds(seconds)
}

fn record(offset: i64, payload: &[u8], scraped_at: DateTime<Utc>) -> ConsumedRecord {
    ConsumedRecord {
        topic: TOPIC.into(),
        partition: 0,
        offset,
        key: Some(offset.to_string().into_bytes()),
        payload: Some(payload.to_vec()),
        headers: vec![
            ("source".into(), Some(b"x.sample".to_vec())),
            ("scraped_at".into(), Some(scraped_at.to_rfc3339().into_bytes())),
        ],
        timestamp: None,
    }
}

fn tweet(id: u64, likes: Option<i64>) -> Vec<u8> {
    let metrics = likes.map(|l| format!(r#","public_metrics":{{"like_count":{l}}}"#)).unwrap_or_default();
    format!(r#"{{"data":{{"id":"{id}","text":"post {id}","lang":"en"{metrics}}},"includes":{{"users":[{{"id":"77","username":"u77"}}]}}}}"#)
        .into_bytes()
}

fn batch(records: Vec<ConsumedRecord>) -> Batch {
    Batch::decode(records, &routes())
}

async fn likes(db: &DatabaseConnection, id: i64) -> Option<i64> {
    twitter_data::Entity::find_by_id(id).one(db).await.unwrap().unwrap().like_count
}

#[tokio::test]
async fn every_bad_record_is_dead_lettered_with_its_reason_and_the_rest_lands() {
    let (_pg, db) = setup().await;
    let mut records = vec![
        record(0, &tweet(1, Some(1)), at(0)),
        record(1, b"Hello, Kafka", at(0)),
        record(2, b"{\"data\":{\"id\":\"2\",\"text\":\"\xff\"}}", at(0)),
        record(3, br#"{"data":{"text":"no id"}}"#, at(0)),
        record(4, br#"{"data":{"id":"5","text":7}}"#, at(0)),
        record(5, br#"{"data":{"id":"6","text":"nul \u0000"}}"#, at(0)),
        record(6, b"", at(0)),
        record(7, b"null", at(0)),
        record(8, &tweet(9, Some(-1)), at(0)), // valid JSON, refused by a CHECK
        record(9, &tweet(10, Some(2)), at(0)),
    ];
    records.push(ConsumedRecord { payload: None, ..record(10, b"", at(0)) });
    records.push(ConsumedRecord { topic: "elsewhere".into(), ..record(0, &tweet(11, None), at(0)) });
    let mut unknown_source = record(11, &tweet(12, None), at(0));
    unknown_source.headers[0].1 = Some(b"myspace".to_vec());
    records.push(unknown_source);

    let written = write(&db, "g", &mut batch(records)).await.unwrap();
    assert_eq!((written.rows_offered(), written.dead_letters()), (4, 11));

    let ids: Vec<i64> = twitter_data::Entity::find().all(&db).await.unwrap().iter().map(|t| t.tweet_id).collect();
    assert_eq!(ids, [1, 10]);
    let errors = ingest_errors::Entity::find().order_by_asc(ingest_errors::Column::Id).all(&db).await.unwrap();
    let reason = |topic: &str, offset: i64| {
        errors.iter().find(|e| e.topic == topic && e.offset == offset).map(|e| e.error.clone()).unwrap()
    };
    assert!(reason(TOPIC, 1).contains("not valid JSON"));
    assert!(reason(TOPIC, 2).contains("not valid UTF-8"));
    assert!(reason(TOPIC, 3).contains("missing field `id`"));
    assert!(reason(TOPIC, 4).contains("invalid type"));
    assert!(reason(TOPIC, 5).contains("NUL character"));
    assert!(reason(TOPIC, 6).contains("empty payload"));
    assert!(reason(TOPIC, 7).contains("not an object"));
    assert!(reason(TOPIC, 8).contains("database refused") && reason(TOPIC, 8).contains("like_count"));
    assert!(reason(TOPIC, 10).contains("tombstone"));
    assert!(reason("elsewhere", 0).contains("no mapping reads topic `elsewhere`"));
    assert!(reason(TOPIC, 11).contains("source `myspace`"));
    let utf8 = errors.iter().find(|e| e.offset == 2).unwrap();
    assert_eq!(
        utf8.payload.as_deref(),
        Some(&b"{\"data\":{\"id\":\"2\",\"text\":\"\xff\"}}"[..]),
        "bytes kept as consumed"
    );
    assert_eq!(utf8.key.as_deref(), Some(&b"2"[..]));
    assert_eq!(utf8.headers.as_ref().unwrap()["source"], "x.sample");

    let offsets = inserter::offsets::stored(&db, "g").await.unwrap();
    assert_eq!(offsets.get(&(TOPIC.to_owned(), 0)), Some(&12));
    assert_eq!(offsets.get(&("elsewhere".to_owned(), 0)), Some(&1));
}

#[tokio::test]
async fn a_replay_changes_no_row_and_emits_no_change_event() {
    let (_pg, db) = setup().await;
    let records: Vec<ConsumedRecord> = (0..50).map(|i| record(i, &tweet(100 + i as u64, Some(i)), at(0))).collect();
    write(&db, "g", &mut batch(records.clone())).await.unwrap();
    cdc::create_slot(&db, "replay").await.unwrap();

    write(&db, "g", &mut batch(records)).await.unwrap();
    write(&db, "g", &mut batch(vec![record(0, &tweet(100, Some(0)), at(60))])).await.unwrap(); // newer, identical

    assert_eq!(cdc::peek_changes(&db, "replay", CDC_PUBLICATION).await.unwrap(), vec![]);
    assert_eq!(ingest_errors::Entity::find().all(&db).await.unwrap().len(), 0);
}

#[tokio::test]
async fn newer_scrapes_update_older_ones_do_not_and_missing_values_are_kept() {
    let (_pg, db) = setup().await;
    write(&db, "g", &mut batch(vec![record(0, &tweet(1, Some(5)), at(10))])).await.unwrap();

    write(&db, "g", &mut batch(vec![record(1, &tweet(1, Some(3)), at(5))])).await.unwrap();
    assert_eq!(likes(&db, 1).await, Some(5), "an older scrape never overwrites a newer one");

    write(&db, "g", &mut batch(vec![record(2, &tweet(1, None), at(20))])).await.unwrap();
    assert_eq!(likes(&db, 1).await, Some(5), "a count the source did not send keeps the known one");

    write(&db, "g", &mut batch(vec![record(3, &tweet(1, Some(9)), at(30))])).await.unwrap();
    let row = twitter_data::Entity::find_by_id(1_i64).one(&db).await.unwrap().unwrap();
    assert_eq!((row.like_count, row.scraped_at), (Some(9), at(30)));
}

#[tokio::test]
async fn duplicates_within_a_batch_keep_the_newest_scrape() {
    let (_pg, db) = setup().await;
    let records = vec![
        record(0, &tweet(1, Some(1)), at(0)),
        record(1, &tweet(1, Some(3)), at(30)),
        record(2, &tweet(1, Some(2)), at(20)),
    ];
    let written = write(&db, "g", &mut batch(records)).await.unwrap();
    assert_eq!(written.dead_letters(), 0);
    assert_eq!(likes(&db, 1).await, Some(3));
    assert_eq!(twitter_users::Entity::find().all(&db).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_batch_of_50_000_posts_is_written_whole() {
    let (_pg, db) = setup().await;
    let records: Vec<ConsumedRecord> = (0..50_000).map(|i| record(i, &tweet(1 + i as u64, Some(i)), at(0))).collect();
    let written = write(&db, "g", &mut batch(records)).await.unwrap();
    assert_eq!(written.dead_letters(), 0);
    assert_eq!(twitter_data::Entity::find().all(&db).await.unwrap().len(), 50_000);
    assert_eq!(inserter::offsets::stored(&db, "g").await.unwrap()[&(TOPIC.to_owned(), 0)], 50_000);
}

/// The upsert passes each column as one array: text that array syntax treats specially (quotes, backslashes,
/// braces, commas, `NULL`), multi-byte characters and NULLs among values must all arrive exactly.
#[tokio::test]
async fn values_that_array_syntax_treats_specially_arrive_exactly() {
    let (_pg, db) = setup().await;
    let text = r#"a "quoted" \back\slash\ {brace}, NULL 🦀 日本 \\"#;
    let tag = r#"t"a,g{}\"#;
    let hostile = serde_json::json!({
        "data": {"id": "1", "text": text, "lang": "NULL", "possibly_sensitive": true,
                 "entities": {"hashtags": [{"start": 0, "end": 3, "tag": tag}, {"start": 4, "end": 5, "tag": "NULL"}]}}
    });
    let records = vec![
        record(0, hostile.to_string().as_bytes(), at(0)),
        // Its neighbour leaves the optional columns NULL, so those columns travel with NULLs among values.
        record(1, &tweet(2, None), at(0)),
    ];
    write(&db, "g", &mut batch(records)).await.unwrap();

    let stored = twitter_data::Entity::find_by_id(1).one(&db).await.unwrap().unwrap();
    assert_eq!(stored.text, text);
    assert_eq!(stored.lang.as_deref(), Some("NULL"));
    assert_eq!(stored.hashtags, vec![tag.to_owned(), "NULL".to_owned()]);
    assert_eq!(stored.possibly_sensitive, Some(true));
    assert_eq!(stored.raw, hostile);
    let neighbour = twitter_data::Entity::find_by_id(2).one(&db).await.unwrap().unwrap();
    assert_eq!((neighbour.possibly_sensitive, neighbour.hashtags.len()), (None, 0));
}
