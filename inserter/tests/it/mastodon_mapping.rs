//! The Mastodon mapping on real-format statuses: every column from a fully populated status (account, tags,
//! mentions, media, an edit), a reblog pointing at the status it wraps, NULLs from a sparse status, and a
//! reason for every payload that is not a status. Mapped rows are then written to a migrated database, to
//! prove Postgres takes them as they are.

use chrono::{DateTime, TimeZone, Utc};
use entity::mastodon_statuses;
use inserter::mapping::DecodeError;
use inserter::mapping::mastodon::map;
use migration::Migrator;
use sea_orm::EntityTrait;
use sea_orm::{ColumnTrait as _, QueryFilter as _};
use serde_json::{Value, json};
use testkit::Postgres;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/mastodon/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

fn scraped_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 11, 21, 14, 15, 0).unwrap()
}

fn mapped(name: &str) -> mastodon_statuses::ActiveModel {
    map(&fixture(name), scraped_at()).unwrap()
}

fn millis(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap() + chrono::Duration::milliseconds(ms.into())
}

#[test]
fn a_full_status_fills_every_column() {
    let status = mapped("status.json");
    assert_eq!(status.id.as_ref(), &113512893421773000);
    assert_eq!(status.url.as_ref().as_deref(), Some("https://hachyderm.io/@ferris/113512893400000000"));
    assert_eq!(status.uri.as_ref(), "https://hachyderm.io/users/ferris/statuses/113512893400000000");
    assert_eq!(status.created_at.as_ref(), &millis(2024, 11, 21, 14, 3, 11, 523));
    assert_eq!(status.account_id.as_ref(), &109301234567890124);
    assert_eq!(status.account_acct.as_ref(), "ferris@hachyderm.io");
    assert_eq!(status.account_username.as_ref(), "ferris");
    assert!(status.content_html.as_ref().starts_with("<p><span class=\"h-card\""));
    assert_eq!(
        status.content_text.as_ref(),
        "@Gargron @rustlang Crabs & coffee <3 it's \"done\"\n\n\
         Second paragraph, line one\n\
         line two: https://blog.rust-lang.org/2024/11/28/Rust-1.83.0.html\n\n\
         #RustLang #Café 🦀"
    );
    assert_eq!(status.spoiler_text.as_ref(), "Food & drink", "the content warning is plain text already");
    assert_eq!(status.visibility.as_ref(), "public");
    assert_eq!(status.language.as_ref().as_deref(), Some("en"));
    assert_eq!(status.sensitive.as_ref(), &Some(true));
    assert_eq!(status.in_reply_to_id.as_ref(), &Some(113512880000000001));
    assert_eq!(status.reblog_of_id.as_ref(), &None);
    assert_eq!(status.tags.as_ref(), &["rustlang", "café"], "tag names are lower-cased");
    assert_eq!(status.mentions.as_ref(), &["Gargron@mastodon.social", "rustlang@fosstodon.org"]);
    let counts = [status.reblogs_count.as_ref(), status.favourites_count.as_ref(), status.replies_count.as_ref()];
    assert_eq!(counts.map(|c| c.unwrap()), [12, 47, 3]);
    assert_eq!(status.edited_at.as_ref(), &Some(millis(2024, 11, 21, 14, 10, 2, 1)));
    assert_eq!(status.raw.as_ref(), &fixture_json("status.json"), "raw is the status as sent");
    assert_eq!(status.raw.as_ref()["media_attachments"][0]["description"], "A crab next to a flat white");
    assert_eq!(status.scraped_at.as_ref(), &scraped_at());
    assert!(status.ingested_at.is_not_set(), "ingested_at is the database's to set");
}

#[test]
fn a_reblog_is_its_own_row_pointing_at_the_status_it_wraps() {
    let reblog = mapped("reblog.json");
    assert_eq!(reblog.id.as_ref(), &113512900000000777);
    assert_eq!(reblog.reblog_of_id.as_ref(), &Some(113512893421773000));
    assert_eq!(reblog.account_acct.as_ref(), "Gargron", "a local account's acct has no domain");
    assert_eq!((reblog.content_html.as_ref().as_str(), reblog.content_text.as_ref().as_str()), ("", ""));
    assert_eq!(reblog.url.as_ref(), &None);
    assert!(reblog.tags.as_ref().is_empty(), "the reblogged status's tags are its own, not the reblog's");
    assert_eq!(reblog.raw.as_ref()["reblog"]["content"], fixture_json("reblog.json")["reblog"]["content"]);
}

#[test]
fn a_sparse_status_leaves_every_optional_column_empty() {
    let status = mapped("minimal.json");
    assert_eq!((status.id.as_ref(), status.content_text.as_ref().as_str()), (&113512950000000001, "hi"));
    assert_eq!((status.url.as_ref(), status.language.as_ref()), (&None, &None));
    assert_eq!((status.in_reply_to_id.as_ref(), status.reblog_of_id.as_ref()), (&None, &None));
    for count in [status.reblogs_count.as_ref(), status.favourites_count.as_ref(), status.replies_count.as_ref()] {
        assert_eq!(count, &None, "counts not sent are unknown, not zero");
    }
    assert_eq!(status.edited_at.as_ref(), &None);
    assert!(status.tags.as_ref().is_empty() && status.mentions.as_ref().is_empty());
    assert_eq!(status.visibility.as_ref(), "unlisted");
}

#[test]
fn every_payload_that_is_not_a_status_is_refused_with_its_reason() {
    let refuse = |payload: &[u8]| map(payload, scraped_at()).unwrap_err();
    assert_eq!(refuse(br#""113512893421773000""#), DecodeError::NotAnObject, "a delete event's id");
    assert_eq!(refuse(b"113512893421773000"), DecodeError::NotAnObject);
    assert_eq!(refuse(b""), DecodeError::Empty);
    assert!(matches!(refuse(b":thump"), DecodeError::InvalidJson(_)));
    assert!(matches!(refuse(b"{\"id\":\"1\",\"content\":\"caf\xe9\"}"), DecodeError::InvalidUtf8 { .. }));

    let shape = |status: Value| match refuse(status.to_string().as_bytes()) {
        DecodeError::Shape(reason) => reason,
        other => panic!("expected a shape error, got {other:?}"),
    };
    let full = fixture_json("status.json");
    let with = |path: &[&str], value: Value| {
        let mut status = full.clone();
        let (last, parents) = path.split_last().unwrap();
        let mut target = &mut status;
        for key in parents {
            target = &mut target[*key];
        }
        target[*last] = value;
        status
    };
    let without = |key: &str| {
        let mut status = full.clone();
        status.as_object_mut().unwrap().remove(key);
        status
    };
    for key in ["id", "uri", "created_at", "account", "content", "visibility"] {
        assert!(shape(without(key)).contains(&format!("missing field `{key}`")), "{key}");
    }
    assert!(shape(with(&["id"], json!("AbCdEf"))).contains("positive 64-bit integer"), "a Pleroma-style id");
    assert!(shape(with(&["id"], json!("-5"))).contains("positive 64-bit integer"));
    assert!(shape(with(&["account", "id"], json!("0"))).contains("positive 64-bit integer"));
    assert!(shape(with(&["reblog"], json!({"id": "x"}))).contains("positive 64-bit integer"));
    assert!(shape(with(&["created_at"], json!("yesterday"))).contains("input"));
    assert!(shape(with(&["edited_at"], json!(17))).contains("invalid type"));
    assert!(shape(with(&["content"], json!(null))).contains("invalid type"));
    assert!(shape(with(&["reblogs_count"], json!("many"))).contains("invalid type"));
    assert!(shape(with(&["tags"], json!([{"url": "https://x/tags/a"}]))).contains("missing field `name`"));
    assert!(shape(with(&["mentions"], json!([{"id": "1"}]))).contains("missing field `acct`"));
    assert!(shape(with(&["account"], json!({"id": "1", "username": "a"}))).contains("missing field `acct`"));
    assert!(
        matches!(refuse(with(&["content"], json!("a\u{0}b")).to_string().as_bytes()), DecodeError::Nul { path } if path == "$.content")
    );
}

#[test]
fn fields_sent_as_null_read_as_not_sent() {
    let status = with_nulls(&["spoiler_text", "tags", "mentions", "language", "sensitive", "reblogs_count"]);
    let row = map(status.to_string().as_bytes(), scraped_at()).unwrap();
    assert_eq!(row.spoiler_text.as_ref(), "");
    assert!(row.tags.as_ref().is_empty() && row.mentions.as_ref().is_empty());
    assert_eq!((row.language.as_ref(), row.sensitive.as_ref(), row.reblogs_count.as_ref()), (&None, &None, &None));
}

fn with_nulls(keys: &[&str]) -> Value {
    let mut status = fixture_json("status.json");
    for key in keys {
        status[*key] = Value::Null;
    }
    status
}

#[tokio::test]
async fn mapped_rows_are_storable_as_they_are() {
    let pg = Postgres::start().await.unwrap();
    let db = pg.migrated_database::<Migrator>().await.unwrap().conn;
    for name in ["status.json", "reblog.json", "minimal.json"] {
        mastodon_statuses::Entity::insert(mapped(name)).exec_without_returning(&db).await.unwrap();
    }
    let stored = mastodon_statuses::Entity::find()
        .filter(mastodon_statuses::Column::Id.eq(113512893421773000_i64))
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.tags, ["rustlang", "café"]);
    assert!(stored.content_text.ends_with("#Café 🦀"));
    assert_eq!(stored.raw, fixture_json("status.json"));
    assert_eq!(mastodon_statuses::Entity::find().all(&db).await.unwrap().len(), 3);
}
