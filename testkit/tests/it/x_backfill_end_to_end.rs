//! X backfill end to end, with the scraper's X source and the inserter's pipeline in this process: a local
//! server speaking X's wire format drops the stream, the reconnect asks for `backfill_minutes`, and the server
//! replays the posts it sent before the drop along with new ones. Every post is one `twitter_data` row, and
//! the replayed ones rewrite nothing: the replication slot carries one insert per post and no update.

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use contract::topic::TWEETS;
use inserter::batch::Routes;
use migration::{CDC_PUBLICATION, Migrator};
use scraper::kafka_sink::KafkaSink;
use scraper::metrics::Metrics;
use scraper::run;
use scraper::secret::Secret;
use scraper::source::{Source, Waiter};
use scraper::x::stream::{self, Endpoint, XStream, XStreamConfig};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use testkit::cdc::{self, ChangeKind};
use testkit::http::{HttpServer, Part, Reply};
use testkit::{Broker, Postgres, unique_name};
use tokio_util::sync::CancellationToken;

const FIRST_ID: u64 = 1_850_000_000_000_000_001;

fn post(n: u64) -> String {
    let id = FIRST_ID + n;
    format!(
        r#"{{"data":{{"id":"{id}","text":"post {n}","author_id":"2244994945","created_at":"2025-06-01T14:03:11.000Z","lang":"en","public_metrics":{{"retweet_count":{n},"reply_count":0,"like_count":7,"quote_count":0}},"edit_history_tweet_ids":["{id}"]}},"includes":{{"users":[{{"id":"2244994945","username":"XDevelopers","name":"Developers","created_at":"2013-12-14T04:35:55.000Z"}}]}}}}"#
    )
}

fn lines(posts: &[u64]) -> Part {
    Part::Chunk(posts.iter().map(|n| format!("{}\r\n", post(*n))).collect::<String>().into_bytes())
}

fn config(server: &HttpServer, topic: &str) -> XStreamConfig {
    XStreamConfig {
        base_url: server.url(),
        token: Secret::new("test-bearer-token"),
        endpoint: Endpoint::Sample,
        tweet_fields: stream::DEFAULT_TWEET_FIELDS.into(),
        expansions: stream::DEFAULT_EXPANSIONS.into(),
        user_fields: stream::DEFAULT_USER_FIELDS.into(),
        topic: topic.into(),
        stall_timeout: Duration::from_secs(5),
        max_line_bytes: 64 * 1024,
        connections_per_15_min: NonZeroU32::new(50).unwrap(),
        rules: None,
        rules_dry_run: false,
        backfill_minutes: 5,
        resume_from: None,
    }
}

/// Runs the X source into `topic` until the server's 401 stops it.
async fn scrape(broker: &Broker, server: &HttpServer, topic: &str) -> Metrics {
    let rejects = unique_name("rejects");
    let sink = KafkaSink::new(common::kafka::client_config(&broker.bootstrap_servers(), [])).unwrap();
    sink.ensure_topics(&[topic, &rejects], 1).await.unwrap();
    let options = run::Options {
        queue_bytes: 16 << 20,
        rejects_topic: rejects,
        flush_timeout: Duration::from_secs(30),
        progress_interval: Duration::from_secs(3600),
    };
    // A dropped stream is reconnected at once: the recording waiter only spares the 401's wait.
    let (waiter, _) = Waiter::recording();
    let source: Box<dyn Source> = Box::new(XStream::new(config(server, topic), waiter));
    let metrics = Metrics::default();
    let run = run::run(
        vec![source],
        Arc::new(sink),
        metrics.clone(),
        &options,
        common::ops::Health::default(),
        CancellationToken::new(),
    );
    let outcome = tokio::time::timeout(Duration::from_secs(60), run).await.expect("the 401 stops the source");
    assert_eq!(outcome.forwarded.accepted, 7, "{outcome:?}");
    metrics
}

async fn insert(broker: &Broker, db: &DatabaseConnection, topic: &str) -> inserter::metrics::Metrics {
    crate::support::land_one_record_a_batch(broker, db, Routes::default().with_topic(TWEETS.name, topic)).await
}

async fn ids(db: &DatabaseConnection, sql: &str) -> Vec<i64> {
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    rows.iter().map(|row| row.try_get_by_index(0).unwrap()).collect()
}

#[tokio::test]
async fn posts_replayed_by_backfill_land_once_and_rewrite_no_row() {
    let pg = Postgres::start().await.unwrap();
    let db = pg.migrated_database::<Migrator>().await.unwrap().conn;
    let slot = unique_name("slot");
    cdc::create_slot(&db, &slot).await.unwrap();
    let broker = Broker::shared().await.unwrap();
    let topic = unique_name("tweets");

    let replies = vec![
        Reply::stream(vec![lines(&[1, 2, 3]), Part::Chunk(b"\r\n".to_vec()), Part::Drop]),
        // X resends what it sent before the drop (it does not deduplicate), then goes on.
        Reply::stream(vec![lines(&[2, 3]), Part::Chunk(b"\r\n".to_vec()), lines(&[4, 5])]),
        Reply::json(401, r#"{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}"#),
    ];
    let server = HttpServer::scripted(replies, Reply::stream(vec![Part::Hang])).await.unwrap();
    let scraped = scrape(&broker, &server, &topic).await;

    let asked: Vec<Option<String>> = server.requests().iter().map(|r| r.query("backfill_minutes")).collect();
    assert_eq!(asked, [None, Some("1".into()), Some("1".into())], "every reconnect asks for the minute it was away");
    let backfilled = scraped.backfill_lines.get_or_create(&vec![("source", "x.sample".to_owned())]).get();
    assert_eq!(backfilled, 4, "the two replayed lines and the two new ones of the backfill connection");

    let inserted = insert(&broker, &db, &topic).await;
    assert_eq!(inserted.records_consumed.total(), 7, "the replayed records reached the inserter too");
    let expected: Vec<i64> = (1..=5).map(|n| (FIRST_ID + n) as i64).collect();
    assert_eq!(ids(&db, "SELECT tweet_id FROM twitter_data ORDER BY tweet_id").await, expected, "one row each");
    assert_eq!(ids(&db, "SELECT count(*) FROM ingest_errors").await, [0]);

    let changes = cdc::peek_changes(&db, &slot, CDC_PUBLICATION).await.unwrap();
    assert!(changes.iter().all(|c| c.kind == ChangeKind::Insert), "no row rewritten: {changes:#?}");
    let tweets: Vec<&cdc::Change> = changes.iter().filter(|c| c.table == "twitter_data").collect();
    let streamed: BTreeSet<i64> = tweets.iter().map(|c| c.columns[0].as_deref().unwrap().parse().unwrap()).collect();
    assert_eq!(tweets.len(), 5, "one change event a post: {tweets:#?}");
    assert_eq!(streamed, expected.into_iter().collect());
}
