//! `inserter redrive` against a real Postgres: after a fix (here: the inserter now reads the topic that had
//! no mapping), dead letters become rows and leave `ingest_errors` in the same transaction; what still fails
//! stays with its new reason; topic and reason filters select; a dry run writes nothing; the binary reports.

use std::process::Command;

use chrono::{TimeZone, Utc};
use entity::{ingest_errors, twitter_data};
use inserter::batch::{Batch, Routes};
use inserter::record::ConsumedRecord;
use inserter::redrive::{Redrive, Report};
use inserter::writer::write;
use migration::Migrator;
use sea_orm::{DatabaseConnection, EntityTrait, QueryOrder};
use testkit::Postgres;
use tokio_util::sync::CancellationToken;

const NEW_TOPIC: &str = "x.tweets.v2";

fn record(topic: &str, offset: i64, payload: &[u8]) -> ConsumedRecord {
    ConsumedRecord {
        topic: topic.into(),
        partition: 0,
        offset,
        key: Some(offset.to_string().into_bytes()),
        payload: Some(payload.to_vec()),
        headers: vec![
            ("source".into(), Some(b"x.sample".to_vec())),
            ("scraped_at".into(), Some(b"2025-06-01T12:00:00Z".to_vec())),
            ("binary".into(), Some(vec![0xff, 0x00])),
        ],
        timestamp: None,
    }
}

fn tweet(id: u64) -> Vec<u8> {
    format!(r#"{{"data":{{"id":"{id}","text":"post {id}"}}}}"#).into_bytes()
}

/// Dead letters as an inserter that did not read `NEW_TOPIC` left them: five posts on it, one record on it
/// that is not JSON, and one post on `other`.
async fn dead_letters(db: &DatabaseConnection) {
    let mut records: Vec<ConsumedRecord> = (0..5).map(|i| record(NEW_TOPIC, i, &tweet(100 + i as u64))).collect();
    records.push(record(NEW_TOPIC, 5, b"not json"));
    records.push(record("other", 0, &tweet(200)));
    let written = write(db, "g", &mut Batch::decode(records, &Routes::default())).await.unwrap();
    assert_eq!(written.dead_letters(), 7);
}

fn fixed_routes() -> Routes {
    Routes::default().with_topic("tweets", NEW_TOPIC)
}

async fn setup() -> (Postgres, testkit::TestDatabase) {
    let (pg, db) = crate::support::migrated().await;
    dead_letters(&db.conn).await;
    (pg, db)
}

async fn errors(db: &DatabaseConnection) -> Vec<ingest_errors::Model> {
    ingest_errors::Entity::find().order_by_asc(ingest_errors::Column::Id).all(db).await.unwrap()
}

#[tokio::test]
async fn dead_letters_become_rows_and_what_still_fails_stays_with_its_new_reason() {
    let (_pg, db) = setup().await;
    let db = &db.conn;
    let redrive = Redrive { topics: vec![NEW_TOPIC.into()], batch_size: 2, ..Redrive::default() };
    let report = redrive.run(db, &fixed_routes(), &CancellationToken::new()).await.unwrap();
    assert_eq!(report, Report { selected: 6, landed: 5, still_failing: 1 });

    let ids: Vec<i64> = twitter_data::Entity::find().all(db).await.unwrap().iter().map(|t| t.tweet_id).collect();
    assert_eq!(ids, [100, 101, 102, 103, 104]);
    let scraped_at = twitter_data::Entity::find_by_id(100).one(db).await.unwrap().unwrap().scraped_at;
    assert_eq!(scraped_at, Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap(), "headers read back");
    let left = errors(db).await;
    let described: Vec<(&str, i64)> = left.iter().map(|e| (e.topic.as_str(), e.offset)).collect();
    assert_eq!(described, [("other", 0), (NEW_TOPIC, 5)], "the other topic untouched; the bad one again");
    assert!(left[1].error.contains("not valid JSON"), "today's reason: {}", left[1].error);
    assert_eq!(left[1].headers.as_ref().unwrap()["binary"], serde_json::json!({ "hex": "ff00" }));

    // A second run finds the one that still fails, once.
    let again = redrive.run(db, &fixed_routes(), &CancellationToken::new()).await.unwrap();
    assert_eq!(again, Report { selected: 1, landed: 0, still_failing: 1 });
}

#[tokio::test]
async fn a_dry_run_counts_and_writes_nothing_and_a_reason_pattern_selects() {
    let (_pg, db) = setup().await;
    let db = &db.conn;
    let dry = Redrive { dry_run: true, batch_size: 100, ..Redrive::default() };
    let report = dry.run(db, &fixed_routes(), &CancellationToken::new()).await.unwrap();
    assert_eq!(report, Report { selected: 7, landed: 5, still_failing: 2 });
    assert_eq!(errors(db).await.len(), 7);
    assert!(twitter_data::Entity::find().all(db).await.unwrap().is_empty());

    let only_other = Redrive { reason: Some("READS TOPIC `oth.r`".into()), ..Redrive::default() };
    let report = only_other.run(db, &fixed_routes(), &CancellationToken::new()).await.unwrap();
    assert_eq!(report, Report { selected: 1, landed: 0, still_failing: 1 });
    assert_eq!(errors(db).await.len(), 7);
}

#[tokio::test]
async fn the_binary_redrives_and_says_what_it_did() {
    let (_pg, db) = setup().await;
    let output = Command::new(env!("CARGO_BIN_EXE_inserter"))
        .args(["redrive", "--topic", NEW_TOPIC])
        .env("DATABASE_URL", &db.url)
        .env("TOPIC_TWEETS", NEW_TOPIC)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("6 dead letters selected; 5 landed; 1 still failing"), "{stdout}");
    assert_eq!(twitter_data::Entity::find().all(&db.conn).await.unwrap().len(), 5);
}

/// As the docs say to run it: the `redriver` role of roles.sql, on a schema its owner migrated, redrives
/// dead letters the `inserter` role wrote, and may delete nothing but them.
#[tokio::test]
async fn the_redriver_role_redrives_and_may_delete_nothing_else() {
    let pg = Postgres::start().await.unwrap();
    let (name, _) = pg.create_database().await.unwrap();
    testkit::stack::apply_roles_named(&pg, &name).unwrap();
    let as_role = |role| testkit::stack::role_url(&pg, role, &name);
    let owner = sea_orm::Database::connect(as_role("ingest_owner")).await.unwrap();
    <Migrator as migration::MigratorTrait>::up(&owner, None).await.unwrap();
    dead_letters(&sea_orm::Database::connect(as_role("inserter")).await.unwrap()).await;

    let redriver_url = as_role("redriver");
    let output = Command::new(env!("CARGO_BIN_EXE_inserter"))
        .args(["redrive", "--topic", NEW_TOPIC])
        .env("DATABASE_URL", &redriver_url)
        .env("TOPIC_TWEETS", NEW_TOPIC)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("6 dead letters selected; 5 landed; 1 still failing"), "{stdout}");

    let redriver = sea_orm::Database::connect(redriver_url).await.unwrap();
    for table in ["twitter_data", "kafka_offsets", "seaql_migrations"] {
        let denied = sea_orm::ConnectionTrait::execute_unprepared(&redriver, &format!("DELETE FROM {table}")).await;
        assert!(denied.unwrap_err().to_string().contains("permission denied"), "{table}");
    }
}
