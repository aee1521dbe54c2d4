//! The flush on its own, against a real Postgres and no broker: records decoded, written with their offsets
//! and reported; a write retried while the database is down (the health says so) and landing once it is back;
//! a failing write given up at shutdown with nothing committed; and an error no retry mends stopping it.

use std::time::Duration;

use common::ops::Health;
use inserter::batch::Routes;
use inserter::flush::Flush;
use inserter::metrics::Metrics;
use migration::Migrator;
use prometheus_client::registry::Registry;
use sea_orm::{Database, DatabaseConnection};
use testkit::Postgres;
use tokio_util::sync::CancellationToken;

use crate::support::{self, consumed_tweet, tweet_line};

const TOPIC: &str = "twitter.tweets";

fn flush(db: DatabaseConnection) -> Flush {
    let metrics = Metrics::new(&mut Registry::default(), &[TOPIC]);
    let routes = Routes::default().with_topic("tweets", TOPIC);
    Flush { db, group: "flush-test".into(), routes, metrics, health: Health::default() }
}

fn records(ids: std::ops::Range<u64>) -> Vec<inserter::record::ConsumedRecord> {
    let scraped_at = chrono::Utc::now().to_rfc3339();
    ids.map(|id| consumed_tweet(TOPIC, id as i64, id.to_string(), tweet_line(id).into_bytes(), &scraped_at)).collect()
}

#[tokio::test]
async fn a_batch_is_decoded_written_with_its_offsets_and_reported() {
    let pg = Postgres::start().await.unwrap();
    let db = pg.migrated_database::<Migrator>().await.unwrap().conn;
    let flush = flush(db.clone());
    let flushed = flush.clone().write(flush.decode(records(1..4)), CancellationToken::new()).await.unwrap();
    assert_eq!(flushed.records, 3);
    assert_eq!(flushed.next_offsets, [((TOPIC.to_owned(), 0), 4)].into());
    assert_eq!(support::count(&db, "SELECT count(*) FROM twitter_data").await, 3);
    let stored = "SELECT next_offset FROM kafka_offsets WHERE consumer_group = 'flush-test' AND \"partition\" = 0";
    assert_eq!(support::count(&db, stored).await, 4, "the offsets are written with the rows");
    flush.report(&flushed);
    assert_eq!(flush.metrics.batches.get(), 1);
    assert_eq!(flush.health.problem(), None);
}

#[tokio::test]
async fn while_the_database_is_down_the_write_is_retried_and_lands_once_it_is_back() {
    let mut pg = Postgres::start().await.unwrap();
    // Connected as the inserter connects, with its timeouts: sqlx's default would wait 30 s for a connection.
    let db = inserter::database::connect(&pg.migrated_database::<Migrator>().await.unwrap().url).await.unwrap();
    let flush = flush(db.clone());
    pg.stop();
    let writing = tokio::spawn(flush.clone().write(flush.decode(records(1..3)), CancellationToken::new()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while flush.metrics.write_failures.get() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the write was not retried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let problem = flush.health.problem().unwrap_or_default();
    assert!(problem.starts_with("database write failing"), "{problem}");
    assert!(!writing.is_finished(), "the write waits for the database");
    pg.restart().await.unwrap();
    let flushed = tokio::time::timeout(Duration::from_secs(60), writing).await.unwrap().unwrap().unwrap();
    assert_eq!(flushed.records, 2);
    assert_eq!(support::count(&db, "SELECT count(*) FROM twitter_data").await, 2);
    assert_eq!(flush.health.problem(), None, "a durable batch clears the health");
}

#[tokio::test]
async fn at_shutdown_a_write_the_database_refuses_gives_up_with_nothing_committed() {
    let mut pg = Postgres::start().await.unwrap();
    // Connected as the inserter connects, with its timeouts: sqlx's default would wait 30 s for a connection.
    let db = inserter::database::connect(&pg.migrated_database::<Migrator>().await.unwrap().url).await.unwrap();
    let flush = flush(db.clone());
    pg.stop();
    let shutdown = CancellationToken::new();
    let writing = tokio::spawn(flush.clone().write(flush.decode(records(1..3)), shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while flush.metrics.write_failures.get() < 1 {
        assert!(tokio::time::Instant::now() < deadline, "the write was not tried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    let error = tokio::time::timeout(Duration::from_secs(60), writing).await.unwrap().unwrap().unwrap_err();
    assert!(format!("{error:#}").contains("not committed; they will be consumed again"), "{error:#}");
    pg.restart().await.unwrap();
    assert_eq!(support::count(&db, "SELECT count(*) FROM kafka_offsets").await, 0);
}

#[tokio::test]
async fn a_database_without_the_schema_stops_the_write_and_says_why() {
    let pg = Postgres::start().await.unwrap();
    let (_, url) = pg.create_database().await.unwrap();
    let flush = flush(Database::connect(&url).await.unwrap());
    let error = flush.clone().write(flush.decode(records(1..2)), CancellationToken::new()).await.unwrap_err();
    assert!(error.to_string().starts_with("cannot write a batch of 1 records"), "{error:#}");
    let problem = flush.health.problem().unwrap_or_default();
    assert!(problem.starts_with("stopped: "), "{problem}");
    assert_eq!(flush.metrics.write_failures.get(), 0, "an error no retry mends is not retried");
}
