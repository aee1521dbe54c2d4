//! Bluesky end to end, with the scraper's Bluesky source and the inserter's pipeline in this process: a local
//! server speaking Jetstream's wire format drops the connection, the scraper resumes from a cursor a few
//! seconds back; the scraper stops and a new one resumes from the cursor its records left in the topic, while
//! posts go on being made. Every post lands once with its typed columns, a deletion marks its post, and the
//! replayed overlap rewrites nothing: the replication slot carries one insert per post and the one update
//! of the deletion's mark.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::ops::Health;
use contract::topic::BLUESKY_EVENTS;
use inserter::batch::Routes;
use migration::{CDC_PUBLICATION, Migrator};
use scraper::bluesky::{BlueskyConfig, BlueskySource};
use scraper::kafka_sink::KafkaSink;
use scraper::metrics::Metrics;
use scraper::run;
use scraper::source::{Source, Waiter};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use testkit::cdc::{self, ChangeKind};
use testkit::jetstream::Jetstream;
use testkit::{Broker, Postgres, unique_name};
use tokio_util::sync::CancellationToken;

const DID: &str = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";

/// Posts made a minute ago, a second apart, each keyed by a TID of its time.
struct Timeline {
    base: i64,
}

impl Timeline {
    fn time(&self, n: i64) -> i64 {
        self.base + n * 1_000_000
    }

    fn rkey(&self, n: i64) -> String {
        contract::atproto::tid(self.time(n) - 500, 3)
    }

    fn post(&self, n: i64) -> String {
        let (time, rkey) = (self.time(n), self.rkey(n));
        format!(
            r#"{{"did":"{DID}","time_us":{time},"kind":"commit","commit":{{"rev":"{rkey}","operation":"create","collection":"app.bsky.feed.post","rkey":"{rkey}","record":{{"$type":"app.bsky.feed.post","createdAt":"2024-11-19T05:33:39.567Z","langs":["en"],"text":"post {n} #Kafka","facets":[{{"features":[{{"$type":"app.bsky.richtext.facet#tag","tag":"Kafka"}}],"index":{{"byteStart":7,"byteEnd":13}}}}]}},"cid":"bafyreiel2eoh7r5f2mwmfbixnikmm2bpwxvzqei6ezem6dm{n:06}"}}}}"#
        )
    }

    fn delete(&self, n: i64, at: i64) -> String {
        let rkey = self.rkey(n);
        format!(
            r#"{{"did":"{DID}","time_us":{},"kind":"commit","commit":{{"rev":"3lbbpzzzzzz2a","operation":"delete","collection":"app.bsky.feed.post","rkey":"{rkey}"}}}}"#,
            self.time(at)
        )
    }

    fn takedown(&self, at: i64) -> String {
        format!(
            r#"{{"did":"{DID}","time_us":{},"kind":"account","account":{{"active":false,"did":"{DID}","seq":9001,"status":"takendown","time":"2024-11-19T05:40:00.000Z"}}}}"#,
            self.time(at)
        )
    }
}

fn config(server: &Jetstream, broker: &Broker, topic: &str) -> BlueskyConfig {
    BlueskyConfig {
        name: "bluesky.jetstream".into(),
        url: server.url(),
        collections: vec!["app.bsky.feed.post".into()],
        dids: Vec::new(),
        topic: topic.into(),
        max_event_bytes: 64 * 1024,
        stall_timeout: Duration::from_secs(10),
        rewind: Duration::from_secs(5),
        resume_from: Some(common::kafka::client_config(&broker.bootstrap_servers(), [])),
        first_cursor: None,
    }
}

/// A running scraper with the Bluesky source.
struct Scraper {
    shutdown: CancellationToken,
    run: tokio::task::JoinHandle<run::Outcome>,
}

impl Scraper {
    fn start(server: &Jetstream, broker: &Broker, topic: &str, rejects: &str) -> Self {
        let sink = KafkaSink::new(common::kafka::client_config(&broker.bootstrap_servers(), [])).unwrap();
        let options = run::Options {
            queue_bytes: 16 << 20,
            rejects_topic: rejects.to_owned(),
            flush_timeout: Duration::from_secs(30),
            progress_interval: Duration::from_secs(3600),
        };
        let source: Box<dyn Source> =
            Box::new(BlueskySource::new(config(server, broker, topic), Waiter::recording().0));
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let run = tokio::spawn(async move {
            run::run(vec![source], Arc::new(sink), Metrics::default(), &options, Health::default(), stop).await
        });
        Self { shutdown, run }
    }

    async fn stop(self) -> run::Outcome {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.run).await.unwrap().unwrap()
    }
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `topic` holds `count` records.
async fn holds(broker: &Broker, topic: &str, count: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let held = broker.records(topic).await.unwrap();
        if held >= count {
            return;
        }
        assert!(Instant::now() < deadline, "{topic} holds {held} records, not {count}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn insert(broker: &Broker, db: &DatabaseConnection, topic: &str) -> inserter::metrics::Metrics {
    crate::support::land_one_record_a_batch(broker, db, Routes::default().with_topic(BLUESKY_EVENTS.name, topic)).await
}

async fn rows(db: &DatabaseConnection, sql: &str) -> Vec<sea_orm::QueryResult> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap()
}

#[tokio::test]
async fn every_post_lands_once_across_a_disconnect_and_a_restart_and_the_replays_rewrite_nothing() {
    let pg = Postgres::start().await.unwrap();
    let db = pg.migrated_database::<Migrator>().await.unwrap().conn;
    let slot = unique_name("slot");
    cdc::create_slot(&db, &slot).await.unwrap();
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = (unique_name("bluesky"), unique_name("rejects"));
    broker.create_topic(&topic, 3).await.unwrap();
    broker.create_topic(&rejects, 1).await.unwrap();
    let server = Jetstream::start().await.unwrap();
    let timeline = Timeline { base: Utc::now().timestamp_micros() - 120_000_000 };

    // The first run: three posts, a drop, two posts made while it reconnects, a deletion and a take-down.
    let scraper = Scraper::start(&server, &broker, &topic, &rejects);
    until("the first subscription", || server.connections() == 1).await;
    for n in 0..3 {
        server.publish(&timeline.post(n));
    }
    holds(&broker, &topic, 3).await;
    server.drop_connections();
    for n in 3..5 {
        server.publish(&timeline.post(n));
    }
    until("the resumed subscription", || server.requests().len() == 2 && server.connections() == 1).await;
    server.publish(&timeline.delete(0, 5));
    server.publish(&timeline.takedown(6));
    // 3, then the rewind's replay of 0..2 with 3 and 4, then the deletion and the take-down.
    holds(&broker, &topic, 10).await;
    let outcome = scraper.stop().await;
    assert_eq!(outcome.forwarded.unacknowledged, 0);

    // Posts made while no scraper runs; then a new one resumes from what the topic says.
    for n in 7..10 {
        server.publish(&timeline.post(n));
    }
    let scraper = Scraper::start(&server, &broker, &topic, &rejects);
    until("the restarted subscription", || server.requests().len() == 3 && server.connections() == 1).await;
    holds(&broker, &topic, 13).await;
    scraper.stop().await;
    let requests = server.requests();
    assert_eq!(requests[0].cursor, None);
    assert_eq!(requests[1].cursor, Some(timeline.time(2) - 5_000_000), "the reconnect: the last event read, rewound");
    assert!(requests[2].cursor.is_some_and(|c| c <= timeline.time(6) - 5_000_000), "the restart: the topic's cursor");

    let inserted = insert(&broker, &db, &topic).await;
    assert!(inserted.records_consumed.total() >= 13, "the replayed records reached the inserter too");
    assert!(rows(&db, "SELECT 1 FROM ingest_errors").await.is_empty(), "no dead letter");

    let posts =
        rows(&db, "SELECT rkey, rkey_at, uri, text, hashtags, deleted_at, event_at FROM bluesky_posts ORDER BY rkey")
            .await;
    let made: Vec<i64> = (0..5).chain(7..10).collect();
    assert_eq!(posts.len(), made.len(), "one row a post");
    for (row, n) in posts.iter().zip(&made) {
        let rkey: String = row.try_get_by_index(0).unwrap();
        assert_eq!(rkey, timeline.rkey(*n));
        let rkey_at: DateTime<Utc> = row.try_get_by_index(1).unwrap();
        assert_eq!(rkey_at.timestamp_micros(), timeline.time(*n) - 500, "the TID's time");
        let uri: String = row.try_get_by_index(2).unwrap();
        assert_eq!(uri, format!("at://{DID}/app.bsky.feed.post/{rkey}"));
        let text: String = row.try_get_by_index(3).unwrap();
        assert_eq!(text, format!("post {n} #Kafka"));
        let hashtags: Vec<String> = row.try_get_by_index(4).unwrap();
        assert_eq!(hashtags, ["kafka"]);
        let deleted_at: Option<DateTime<Utc>> = row.try_get_by_index(5).unwrap();
        assert_eq!(deleted_at.map(|at| at.timestamp_micros()), (*n == 0).then(|| timeline.time(5)));
        let event_at: DateTime<Utc> = row.try_get_by_index(6).unwrap();
        assert_eq!(event_at.timestamp_micros(), timeline.time(*n));
    }
    let account = rows(&db, "SELECT status FROM bluesky_accounts").await;
    assert_eq!(account.len(), 1);
    assert_eq!(account[0].try_get_by_index::<Option<String>>(0).unwrap().as_deref(), Some("takendown"));

    let changes = cdc::peek_changes(&db, &slot, CDC_PUBLICATION).await.unwrap();
    let of = |table: &str, kind: ChangeKind| changes.iter().filter(|c| c.table == table && c.kind == kind).count();
    assert_eq!(of("bluesky_posts", ChangeKind::Insert), made.len(), "one insert a post: {changes:#?}");
    assert_eq!(of("bluesky_posts", ChangeKind::Update), 1, "only the deletion's mark: {changes:#?}");
    assert_eq!(of("bluesky_deletions", ChangeKind::Insert), 1);
    assert_eq!(of("bluesky_account_events", ChangeKind::Insert), 1);
    assert_eq!(changes.len(), made.len() + 3, "nothing else: {changes:#?}");
}
