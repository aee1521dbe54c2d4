//! Mastodon statuses through the batch writer into a real Postgres: a status lands with every column; a newer
//! scrape updates counts and edits, an older one changes nothing, a replay emits no change event; duplicates
//! in a batch keep the newest scrape; and every unstorable status is dead-lettered with its reason while the
//! statuses and posts around it land.

use chrono::{DateTime, Duration, TimeZone, Utc};
use entity::{ingest_errors, mastodon_statuses, twitter_data};
use inserter::record::ConsumedRecord;
use inserter::writer::write;
use migration::CDC_PUBLICATION;
use sea_orm::{ColumnTrait as _, QueryFilter as _};
use sea_orm::{DatabaseConnection, EntityTrait};
use serde_json::{Value, json};
use testkit::cdc;

use crate::support::{batch, setup};

const STATUSES: &str = "mastodon.statuses";
const TWEETS: &str = "twitter.tweets";

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/mastodon/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 11, 21, 14, 15, 0).unwrap() + Duration::seconds(seconds)
}

fn record(offset: i64, payload: &[u8], source: &str, scraped_at: DateTime<Utc>) -> ConsumedRecord {
    ConsumedRecord {
        topic: STATUSES.into(),
        partition: 0,
        offset,
        key: Some(offset.to_string().into_bytes()),
        payload: Some(payload.to_vec()),
        headers: vec![
            ("source".into(), Some(source.as_bytes().to_vec())),
            ("scraped_at".into(), Some(scraped_at.to_rfc3339().into_bytes())),
        ],
        timestamp: None,
    }
}

fn status_record(offset: i64, status: &Value, scraped_at: DateTime<Utc>) -> ConsumedRecord {
    record(offset, status.to_string().as_bytes(), "sse.mastodon", scraped_at)
}

/// The full fixture with other counts: what a later scrape of the same status sends.
fn with_counts(reblogs: i64, favourites: i64, replies: i64) -> Value {
    let mut status = fixture("status.json");
    status["reblogs_count"] = json!(reblogs);
    status["favourites_count"] = json!(favourites);
    status["replies_count"] = json!(replies);
    status
}

async fn stored(db: &DatabaseConnection, id: i64) -> mastodon_statuses::Model {
    mastodon_statuses::Entity::find()
        .filter(mastodon_statuses::Column::Id.eq(id))
        .one(db)
        .await
        .unwrap()
        .expect("the status was stored")
}

async fn counts(db: &DatabaseConnection, id: i64) -> [Option<i64>; 3] {
    let row = stored(db, id).await;
    [row.reblogs_count, row.favourites_count, row.replies_count]
}

const ID: i64 = 113512893421773000;

#[tokio::test]
async fn a_status_lands_with_every_column() {
    let (_pg, db) = setup().await;
    let records = vec![
        status_record(0, &fixture("status.json"), at(0)),
        status_record(1, &fixture("reblog.json"), at(0)),
        record(2, fixture("minimal.json").to_string().as_bytes(), "sse", at(0)),
    ];
    let written = write(&db, "g", &mut batch(records)).await.unwrap();
    assert_eq!((written.rows_offered(), written.dead_letters(), written.rewrites), (3, 0, 0));
    assert_eq!(written.rows_by_table, [("mastodon_statuses", 3)].into(), "{written:?}");
    assert!(written.dead_letters_by_topic.is_empty(), "{written:?}");

    let row = stored(&db, ID).await;
    let expected = mastodon_statuses::Model {
        instance: "hachyderm.io".into(),
        id: ID,
        url: Some("https://hachyderm.io/@ferris/113512893400000000".into()),
        uri: "https://hachyderm.io/users/ferris/statuses/113512893400000000".into(),
        created_at: Utc.with_ymd_and_hms(2024, 11, 21, 14, 3, 11).unwrap() + Duration::milliseconds(523),
        account_id: 109301234567890124,
        account_acct: "ferris@hachyderm.io".into(),
        account_username: "ferris".into(),
        content_html: fixture("status.json")["content"].as_str().unwrap().into(),
        content_text: "@Gargron @rustlang Crabs & coffee <3 it's \"done\"\n\nSecond paragraph, line one\nline two: \
                       https://blog.rust-lang.org/2024/11/28/Rust-1.83.0.html\n\n#RustLang #Café 🦀"
            .into(),
        spoiler_text: "Food & drink".into(),
        visibility: "public".into(),
        language: Some("en".into()),
        sensitive: Some(true),
        in_reply_to_id: Some(113512880000000001),
        reblog_of_id: None,
        tags: vec!["rustlang".into(), "café".into()],
        mentions: vec!["Gargron@mastodon.social".into(), "rustlang@fosstodon.org".into()],
        reblogs_count: Some(12),
        favourites_count: Some(47),
        replies_count: Some(3),
        edited_at: Some(Utc.with_ymd_and_hms(2024, 11, 21, 14, 10, 2).unwrap() + Duration::milliseconds(1)),
        deleted_at: None,
        raw: fixture("status.json"),
        scraped_at: at(0),
        ingested_at: row.ingested_at,
    };
    assert_eq!(row, expected);
    assert!(row.ingested_at > at(0), "ingested_at is set by the database, at write time");
    assert_eq!(stored(&db, 113512900000000777).await.reblog_of_id, Some(ID));
    assert_eq!(stored(&db, 113512950000000001).await.visibility, "unlisted");
}

#[tokio::test]
async fn newer_scrapes_update_older_ones_do_not_and_missing_counts_are_kept() {
    let (_pg, db) = setup().await;
    write(&db, "g", &mut batch(vec![status_record(0, &with_counts(12, 47, 3), at(10))])).await.unwrap();

    write(&db, "g", &mut batch(vec![status_record(1, &with_counts(99, 99, 99), at(5))])).await.unwrap();
    assert_eq!(counts(&db, ID).await, [Some(12), Some(47), Some(3)], "an older scrape never overwrites a newer one");
    assert_eq!(stored(&db, ID).await.scraped_at, at(10));

    write(&db, "g", &mut batch(vec![status_record(2, &with_counts(20, 60, 4), at(20))])).await.unwrap();
    assert_eq!(counts(&db, ID).await, [Some(20), Some(60), Some(4)], "a newer scrape updates the counts");
    assert_eq!(stored(&db, ID).await.scraped_at, at(20));

    let mut without_counts = fixture("status.json");
    for key in ["reblogs_count", "favourites_count", "replies_count"] {
        without_counts.as_object_mut().unwrap().remove(key);
    }
    write(&db, "g", &mut batch(vec![status_record(3, &without_counts, at(30))])).await.unwrap();
    assert_eq!(counts(&db, ID).await, [Some(20), Some(60), Some(4)], "counts not sent keep the known ones");
    assert_eq!(stored(&db, ID).await.scraped_at, at(20), "a scrape that changes no value rewrites nothing");
}

#[tokio::test]
async fn a_newer_scrape_of_an_edited_status_replaces_its_content() {
    let (_pg, db) = setup().await;
    write(&db, "g", &mut batch(vec![status_record(0, &fixture("status.json"), at(0))])).await.unwrap();

    let mut edited = fixture("status.json");
    edited["content"] =
        json!("<p>Edited: tea &amp; <a href=\"https://x/tags/Tea\" rel=\"tag\">#<span>Tea</span></a></p>");
    edited["tags"] = json!([{"name": "Tea", "url": "https://x/tags/tea"}]);
    edited["mentions"] = json!([]);
    edited["edited_at"] = json!("2024-11-21T14:12:00.000Z");
    write(&db, "g", &mut batch(vec![status_record(1, &edited, at(60))])).await.unwrap();

    let row = stored(&db, ID).await;
    assert_eq!(row.content_text, "Edited: tea & #Tea");
    assert_eq!((row.tags, row.mentions), (vec!["tea".to_owned()], vec![]));
    assert_eq!(row.edited_at, Some(Utc.with_ymd_and_hms(2024, 11, 21, 14, 12, 0).unwrap()));
}

/// `status` as a `status.update` (an edit) would bring it, edited at `edited_at`.
fn edited(content: &str, edited_at: &str) -> Value {
    let mut status = fixture("status.json");
    status["content"] = json!(content);
    status["edited_at"] = json!(edited_at);
    status
}

/// A record as the SSE source writes it: with its event type, from the instance of the fixtures' `uri`s.
fn event_record(offset: i64, payload: &[u8], event: &str, scraped_at: DateTime<Utc>) -> ConsumedRecord {
    from_instance(event_record_of(offset, payload, event, scraped_at), "hachyderm.io")
}

fn event_record_of(offset: i64, payload: &[u8], event: &str, scraped_at: DateTime<Utc>) -> ConsumedRecord {
    let mut record = record(offset, payload, "sse.mastodon", scraped_at);
    record.headers.push(("sse_event".into(), Some(event.as_bytes().to_vec())));
    record
}

fn from_instance(mut record: ConsumedRecord, instance: &str) -> ConsumedRecord {
    record.headers.push(("instance".into(), Some(instance.as_bytes().to_vec())));
    record
}

#[tokio::test]
async fn the_newest_edit_wins_whichever_is_read_last() {
    let (_pg, db) = setup().await;
    let second = edited("<p>second edit</p>", "2024-11-21T14:20:00.000Z");
    let first = edited("<p>first edit</p>", "2024-11-21T14:12:00.000Z");
    let update = |offset, status: &Value, at| event_record(offset, status.to_string().as_bytes(), "status.update", at);
    write(&db, "g", &mut batch(vec![update(0, &second, at(10))])).await.unwrap();
    // Read later, but an older version: a second stream, or a replay of the first edit.
    write(&db, "g", &mut batch(vec![update(1, &first, at(20))])).await.unwrap();
    let mut original = fixture("status.json");
    original["edited_at"] = Value::Null;
    write(&db, "g", &mut batch(vec![event_record(2, original.to_string().as_bytes(), "update", at(30))]))
        .await
        .unwrap();
    assert_eq!(stored(&db, ID).await.content_text, "second edit");

    // The same in one batch, in every order of reading.
    let (_pg2, db2) = setup().await;
    let records = vec![update(0, &second, at(10)), update(1, &first, at(20)), update(2, &original, at(30))];
    write(&db2, "g", &mut batch(records)).await.unwrap();
    assert_eq!(stored(&db2, ID).await.content_text, "second edit");
    let third = edited("<p>third edit</p>", "2024-11-21T14:30:00.000Z");
    write(&db2, "g", &mut batch(vec![update(3, &third, at(40))])).await.unwrap();
    assert_eq!(stored(&db2, ID).await.content_text, "third edit", "a newer edit replaces");
}

/// An `edited_at` a year ahead (a hostile instance, or anyone who can write the topic) would be the newest
/// version for a year, and every real edit older: it counts as no later than its scrape, so the next real
/// edit still lands. `raw` keeps what was sent.
#[tokio::test]
async fn an_edit_dated_in_the_future_does_not_keep_later_edits_out() {
    let (_pg, db) = setup().await;
    // Whole seconds: Postgres keeps microseconds.
    let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 0);
    let seen = |minutes| now - Duration::minutes(minutes);
    let update = |offset, status: &Value, at| event_record(offset, status.to_string().as_bytes(), "status.update", at);
    let year_ahead = (now + Duration::days(365)).to_rfc3339();
    write(&db, "g", &mut batch(vec![update(0, &edited("<p>from the future</p>", &year_ahead), seen(30))]))
        .await
        .unwrap();
    let row = stored(&db, ID).await;
    assert_eq!(row.edited_at, Some(seen(30) + inserter::record::SCRAPED_AT_SKEW));
    assert_eq!(row.raw["edited_at"], json!(year_ahead), "raw keeps what the instance sent");

    let real = (now - Duration::minutes(10)).to_rfc3339();
    write(&db, "g", &mut batch(vec![update(1, &edited("<p>a real edit</p>", &real), seen(5))])).await.unwrap();
    assert_eq!(stored(&db, ID).await.content_text, "a real edit");
}

#[tokio::test]
async fn a_deletion_marks_the_status_before_or_after_it_lands_and_the_change_is_published() {
    let (_pg, db) = setup().await;
    write(&db, "g", &mut batch(vec![status_record(0, &fixture("status.json"), at(0))])).await.unwrap();
    cdc::create_slot(&db, "deletions").await.unwrap();
    let deleted =
        write(&db, "g", &mut batch(vec![event_record(1, ID.to_string().as_bytes(), "delete", at(50))])).await.unwrap();
    assert_eq!(deleted.dead_letters(), 0);
    let row = stored(&db, ID).await;
    assert_eq!(row.deleted_at, Some(at(50)), "the row stays, marked");
    assert!(!row.content_text.is_empty(), "its content stays");
    let changes = cdc::peek_changes(&db, "deletions", CDC_PUBLICATION).await.unwrap();
    assert_eq!(changes.len(), 2, "the deletion and the status's update: {changes:?}");

    // A later scrape of the status (a replay, another stream) does not bring it back to life.
    write(&db, "g", &mut batch(vec![status_record(2, &with_counts(50, 50, 50), at(90))])).await.unwrap();
    assert_eq!(stored(&db, ID).await.deleted_at, Some(at(50)));
    // A second deletion keeps the first time.
    write(&db, "g", &mut batch(vec![event_record(3, ID.to_string().as_bytes(), "delete", at(99))])).await.unwrap();
    assert_eq!(stored(&db, ID).await.deleted_at, Some(at(50)));

    // Deleted before it was ever seen (a JSON string id, as some servers send it): the status is born deleted.
    let other = 113512950000000001;
    let quoted = format!("\"{other}\"");
    let deletion = from_instance(event_record_of(4, quoted.as_bytes(), "delete", at(100)), "example.social");
    write(&db, "g", &mut batch(vec![deletion])).await.unwrap();
    write(&db, "g", &mut batch(vec![status_record(5, &fixture("minimal.json"), at(110))])).await.unwrap();
    assert_eq!(stored(&db, other).await.deleted_at, Some(at(100)));
}

#[tokio::test]
async fn a_deletion_that_names_no_status_is_dead_lettered_with_its_reason() {
    let (_pg, db) = setup().await;
    let records = vec![
        event_record(0, b"0", "delete", at(0)),
        event_record(1, b"not-an-id", "delete", at(0)),
        event_record(2, b"99999999999999999999", "delete", at(0)),
        event_record(3, ID.to_string().as_bytes(), "delete", at(0)),
    ];
    let written = write(&db, "g", &mut batch(records)).await.unwrap();
    assert_eq!((written.rows_offered(), written.dead_letters()), (1, 3));
    let reasons: Vec<String> =
        entity::ingest_errors::Entity::find().all(&db).await.unwrap().into_iter().map(|letter| letter.error).collect();
    assert_eq!(reasons.len(), 3);
    assert!(reasons.iter().any(|r| r.contains("deleted status id `0`")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("not valid JSON")), "{reasons:?}");
}

#[tokio::test]
async fn a_replay_changes_no_row_and_emits_no_change_event() {
    let (_pg, db) = setup().await;
    let records = vec![
        status_record(0, &fixture("status.json"), at(0)),
        status_record(1, &fixture("reblog.json"), at(0)),
        status_record(2, &fixture("minimal.json"), at(0)),
    ];
    write(&db, "g", &mut batch(records.clone())).await.unwrap();
    cdc::create_slot(&db, "replay").await.unwrap();

    write(&db, "g", &mut batch(records)).await.unwrap();
    write(&db, "g", &mut batch(vec![status_record(0, &fixture("status.json"), at(60))])).await.unwrap(); // newer, same

    assert_eq!(cdc::peek_changes(&db, "replay", CDC_PUBLICATION).await.unwrap(), vec![]);
    write(&db, "g", &mut batch(vec![status_record(0, &with_counts(13, 47, 3), at(90))])).await.unwrap();
    let changes = cdc::peek_changes(&db, "replay", CDC_PUBLICATION).await.unwrap();
    assert_eq!(changes.len(), 1, "a real change is published: {changes:?}");
}

#[tokio::test]
async fn duplicates_within_a_batch_keep_the_newest_scrape() {
    let (_pg, db) = setup().await;
    let records = vec![
        status_record(0, &with_counts(1, 1, 1), at(0)),
        status_record(1, &with_counts(3, 3, 3), at(30)),
        status_record(2, &with_counts(2, 2, 2), at(20)),
    ];
    let written = write(&db, "g", &mut batch(records)).await.unwrap();
    assert_eq!(written.dead_letters(), 0);
    assert_eq!(counts(&db, ID).await, [Some(3), Some(3), Some(3)]);
}

#[tokio::test]
async fn every_unstorable_status_is_dead_lettered_with_its_reason_and_the_rest_lands() {
    let (_pg, db) = setup().await;
    let mut no_id = fixture("minimal.json");
    no_id.as_object_mut().unwrap().remove("id");
    let mut negative = fixture("minimal.json");
    negative["id"] = json!("113512950000000002");
    negative["favourites_count"] = json!(-1);
    let mut own_reblog = fixture("reblog.json");
    own_reblog["reblog"]["id"] = own_reblog["id"].clone();
    let tweet = br#"{"data":{"id":"7","text":"a post"}}"#;
    let records = vec![
        status_record(0, &fixture("status.json"), at(0)),
        record(1, br#""113512893421773000""#, "sse.mastodon", at(0)), // a delete event's data
        record(2, b"{\"id\":\"1\",\"content\":\"\xff\"}", "sse.mastodon", at(0)),
        status_record(3, &no_id, at(0)),
        status_record(4, &negative, at(0)), // valid JSON, refused by a CHECK
        status_record(5, &own_reblog, at(0)),
        record(6, fixture("minimal.json").to_string().as_bytes(), "x.sample", at(0)),
        ConsumedRecord { payload: None, ..record(7, b"", "sse.mastodon", at(0)) },
        status_record(8, &fixture("minimal.json"), at(0)),
        ConsumedRecord { topic: TWEETS.into(), ..record(0, tweet, "x.sample", at(0)) },
    ];
    let written = write(&db, "g", &mut batch(records)).await.unwrap();
    assert_eq!((written.rows_offered(), written.dead_letters()), (5, 7), "rows offered, refused ones included");

    let ids: Vec<i64> = mastodon_statuses::Entity::find().all(&db).await.unwrap().iter().map(|s| s.id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&ID) && ids.contains(&113512950000000001));
    assert_eq!(twitter_data::Entity::find().all(&db).await.unwrap().len(), 1, "a post in the same batch lands");

    let errors = ingest_errors::Entity::find().all(&db).await.unwrap();
    let reason = |offset: i64| errors.iter().find(|e| e.topic == STATUSES && e.offset == offset).unwrap().error.clone();
    assert!(reason(1).contains("not an object"));
    assert!(reason(2).contains("not valid UTF-8"));
    assert!(reason(3).contains("missing field `id`"));
    assert!(reason(4).contains("database refused") && reason(4).contains("favourites_count"), "{}", reason(4));
    assert!(reason(5).contains("database refused") && reason(5).contains("not_own_reblog"), "{}", reason(5));
    assert!(reason(6).contains("no mapping for source `x.sample` on topic `mastodon.statuses`"));
    assert!(reason(7).contains("tombstone"));
    let dead = errors.iter().find(|e| e.offset == 2).unwrap();
    assert_eq!(dead.payload.as_deref(), Some(&b"{\"id\":\"1\",\"content\":\"\xff\"}"[..]), "bytes kept as consumed");
    assert_eq!(dead.headers.as_ref().unwrap()["source"], "sse.mastodon");

    let offsets = inserter::offsets::stored(&db, "g").await.unwrap();
    assert_eq!(offsets.get(&(STATUSES.to_owned(), 0)), Some(&9));
    assert_eq!(offsets.get(&(TWEETS.to_owned(), 0)), Some(&1));
}

#[tokio::test]
async fn two_instances_statuses_with_one_id_are_two_rows_and_a_deletion_marks_only_its_own() {
    let (_pg, db) = setup().await;
    let status = fixture("status.json").to_string();
    let mut other = fixture("status.json");
    other["content"] = json!("<p>another instance's status, same number</p>");
    let records = vec![
        from_instance(event_record_of(0, status.as_bytes(), "update", at(0)), "mastodon.social"),
        from_instance(event_record_of(1, other.to_string().as_bytes(), "update", at(0)), "fosstodon.org"),
    ];
    let written = write(&db, "g", &mut batch(records)).await.unwrap();
    assert_eq!((written.rows_offered(), written.dead_letters()), (2, 0));
    let deletion = from_instance(event_record_of(2, ID.to_string().as_bytes(), "delete", at(9)), "fosstodon.org");
    write(&db, "g", &mut batch(vec![deletion])).await.unwrap();

    let rows = mastodon_statuses::Entity::find().filter(mastodon_statuses::Column::Id.eq(ID)).all(&db).await.unwrap();
    let mut seen: Vec<(String, String, Option<DateTime<Utc>>)> =
        rows.into_iter().map(|row| (row.instance, row.content_text, row.deleted_at)).collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("fosstodon.org".into(), "another instance's status, same number".into(), Some(at(9))),
            ("mastodon.social".into(), seen[1].1.clone(), None),
        ]
    );

    // A deletion without its instance cannot say which status it is.
    let orphan = event_record_of(3, ID.to_string().as_bytes(), "delete", at(10));
    let written = write(&db, "g", &mut batch(vec![orphan])).await.unwrap();
    assert_eq!(written.dead_letters(), 1);
    // An instance header no key can hold is refused, not stored.
    let hostile = from_instance(event_record_of(4, status.as_bytes(), "update", at(11)), "bad\u{0}host");
    assert_eq!(write(&db, "g", &mut batch(vec![hostile])).await.unwrap().dead_letters(), 1);
}
