//! The change stream as users get it: the real Debezium Postgres connector in Kafka Connect, wired and
//! registered as compose does it (`testkit::connect`), behind the real binaries: scraper (replay) -> Kafka ->
//! inserter -> Postgres -> Debezium -> `postgres.public.twitter_data`.
//!
//! Each scenario ends with a sentinel: a post of a fresh id whose create event must come next. Debezium sends a
//! table's events in commit order on the topic's one partition, so "nothing arrived before the sentinel"
//! proves that a step made no event without waiting for a quiet period.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::Value;
use testkit::Process;
use testkit::connect::CONNECTOR;
use testkit::stack::{Role, Stack, StackOptions};

const CHANGES: &str = "postgres.public.twitter_data";
/// X's epoch (2010-11-04T01:42:54.657Z) in Unix milliseconds.
const X_EPOCH_MS: u64 = 1_288_834_974_657;

/// The id X gives a post created `days_ago` days before now, told apart by `n` in the sequence bits.
fn x_id(days_ago: u64, n: u64) -> u64 {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    ((now_ms - days_ago * 86_400_000 - X_EPOCH_MS) << 22) | n
}

/// One X stream line for post `id` with `likes` likes.
fn tweet_line(id: u64, likes: u64) -> String {
    serde_json::json!({
        "data": {
            "id": id.to_string(),
            "text": format!("post {id} about #kafka"),
            "author_id": "2244994945",
            "created_at": "2026-01-01T00:00:00.000Z",
            "lang": "en",
            "public_metrics": {"retweet_count": 1, "reply_count": 2, "like_count": likes, "quote_count": 0},
            "entities": {"hashtags": [{"start": 14, "end": 20, "tag": "kafka"}]}
        }
    })
    .to_string()
}

/// A Debezium change event, its schema envelopes taken off.
#[derive(Debug)]
struct Event {
    key: Value,
    /// `None` for a tombstone.
    value: Option<Value>,
}

impl Event {
    fn op(&self) -> &str {
        self.value.as_ref().and_then(|v| v["op"].as_str()).unwrap_or("tombstone")
    }

    fn tweet_id(&self) -> i64 {
        self.key["tweet_id"].as_i64().unwrap_or_else(|| panic!("no tweet_id in the key {:?}", self.key))
    }
}

/// The change topic, read from its start by a consumer of its own.
struct ChangeReader {
    consumer: StreamConsumer,
}

impl ChangeReader {
    fn new(bootstrap_servers: &str, topic: &str) -> Self {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap_servers)
            .set("group.id", testkit::unique_name("changes"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        Self { consumer }
    }

    /// The next events up to and including the create event of `sentinel`.
    async fn until_created(&self, sentinel: i64, timeout: Duration) -> Vec<Event> {
        let deadline = Instant::now() + timeout;
        let mut events = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = match tokio::time::timeout(left, self.consumer.recv()).await {
                Ok(Ok(message)) => message,
                // The connector creates the topic with the table's first event.
                Ok(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition))) => continue,
                Ok(Err(e)) => panic!("read {CHANGES}: {e}"),
                Err(_) => panic!("no create event of {sentinel} within {timeout:?}; got {events:#?}"),
            };
            let key: Value = serde_json::from_slice(message.key().expect("a keyed event")).unwrap();
            let value = message.payload().map(|v| serde_json::from_slice::<Value>(v).unwrap()["payload"].clone());
            let event = Event { key: key["payload"].clone(), value };
            let done = event.op() == "c" && event.tweet_id() == sentinel;
            events.push(event);
            if done {
                return events;
            }
        }
    }
}

/// Scrapes and inserts a post of a fresh id (`n` in its sequence bits) after everything before it has landed,
/// and returns the events that came before its create event: those of what was done since the last mark.
async fn events_until_mark(stack: &Stack, dir: &tempfile::TempDir, changes: &ChangeReader, n: u64) -> Vec<Event> {
    let sentinel = x_id(0, 1_000 + n);
    scrape_and_insert(stack, dir, &[tweet_line(sentinel, 0)]).await;
    let mut events = changes.until_created(sentinel as i64, Duration::from_secs(180)).await;
    events.pop();
    events
}

/// Runs the scraper over `lines` (a replay file) and then the inserter until the topic is idle.
async fn scrape_and_insert(stack: &Stack, dir: &tempfile::TempDir, lines: &[String]) {
    let file = dir.path().join(testkit::unique_name("replay"));
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let mut scraper = stack.scraper();
    scraper
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KAFKA_BOOTSTRAP_SERVERS", stack.broker.bootstrap_servers())
        .env("SCRAPER_SOURCES", "replay")
        .env("REPLAY_FILE", &file)
        .env("REPLAY_RATE", "0")
        .env("SCRAPER_METRICS_ADDR", "127.0.0.1:0");
    run(scraper, dir, "scraper").await;
    insert(stack, dir, "ingest").await;
}

/// The inserter in consumer group `group`, until the topics are idle.
async fn insert(stack: &Stack, dir: &tempfile::TempDir, group: &str) {
    let mut inserter = stack.inserter();
    inserter
        .args(["--exit-when-idle", "3s"])
        .env("INSERTER_GROUP", group)
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("BATCH_TIMEOUT", "100ms");
    run(inserter, dir, "inserter").await;
}

async fn run(command: Command, dir: &tempfile::TempDir, name: &str) {
    let log = dir.path().join(format!("{}.log", testkit::unique_name(name)));
    let mut process = Process::spawn(command, &log).unwrap();
    let status = process.wait(Duration::from_secs(120)).await.unwrap();
    assert!(status.success(), "{name} failed:\n{}", process.log());
}

async fn query(db: &DatabaseConnection, sql: &str) -> Vec<sea_orm::QueryResult> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap()
}

/// `twitter_data`'s rows as JSON objects by `tweet_id`, and each column's type.
async fn stored_rows(db: &DatabaseConnection) -> (BTreeMap<i64, Value>, BTreeMap<String, String>) {
    let rows = query(db, "SELECT to_jsonb(t)::text FROM twitter_data t").await;
    let rows = rows
        .iter()
        .map(|row| {
            let row: Value = serde_json::from_str(&row.try_get_by_index::<String>(0).unwrap()).unwrap();
            (row["tweet_id"].as_i64().unwrap(), row)
        })
        .collect();
    let types = query(
        db,
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name = 'twitter_data'",
    )
    .await;
    let types = types.iter().map(|r| (r.try_get_by_index(0).unwrap(), r.try_get_by_index(1).unwrap())).collect();
    (rows, types)
}

/// Asserts that Debezium's `after` holds every column of `row`, as the connector encodes each type.
fn assert_same_row(after: &Value, row: &Value, types: &BTreeMap<String, String>) {
    for (column, data_type) in types {
        let (sent, stored) = (&after[column], &row[column]);
        match data_type.as_str() {
            // io.debezium.time.ZonedTimestamp: ISO-8601 text in UTC.
            "timestamp with time zone" => {
                let parse = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
                assert_eq!(parse(sent), parse(stored), "{column}");
            }
            // io.debezium.data.Json: the document as text.
            "jsonb" => {
                let sent: Value = serde_json::from_str(sent.as_str().unwrap()).unwrap();
                assert_eq!(&sent, stored, "{column}");
            }
            _ => assert_eq!(sent, stored, "{column} ({data_type})"),
        }
    }
    let sent_columns = after.as_object().unwrap().len();
    assert_eq!(sent_columns, types.len(), "the event carries every column and no other: {after}");
}

#[tokio::test]
async fn every_change_of_twitter_data_reaches_its_topic_through_the_real_connector() {
    let mut stack = Stack::start(&StackOptions::new().unwrap()).await.unwrap();
    stack.migrate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let owner = stack.connect(Role::Owner).await.unwrap();
    // Partitions for the last ten days, so that old posts land in daily partitions retention can drop.
    query(&owner, "SELECT ingest_partition_create('twitter_data', now() - interval '10 days', now())").await;
    let connect = stack.start_debezium().await.unwrap();
    let changes = ChangeReader::new(&stack.broker.bootstrap_servers(), CHANGES);

    // Posts of today and of eight days ago, each in its day's partition: every one arrives as one create
    // event keyed by tweet_id with the values the table holds, under the table's topic.
    let posts: Vec<u64> = (1..=20).map(|n| x_id(0, n)).chain((21..=30).map(|n| x_id(8, n))).collect();
    let lines: Vec<String> = posts.iter().map(|&id| tweet_line(id, 3)).collect();
    scrape_and_insert(&stack, &dir, &lines).await;
    let events = events_until_mark(&stack, &dir, &changes, 1).await;
    assert_eq!(events.len(), posts.len(), "one event a post: {events:#?}");
    let (rows, types) = stored_rows(&owner).await;
    assert_eq!(rows.len(), posts.len() + 1, "the posts and the mark");
    for event in &events {
        assert_eq!(event.op(), "c", "{event:?}");
        let value = event.value.as_ref().unwrap();
        assert!(value["before"].is_null(), "{event:?}");
        assert_eq!(value["source"]["table"], "twitter_data", "the partition root's name, not a partition's");
        assert_same_row(&value["after"], &rows[&event.tweet_id()], &types);
    }
    let partitions: Vec<String> = query(&owner, "SELECT DISTINCT tableoid::regclass::text FROM twitter_data")
        .await
        .iter()
        .map(|r| r.try_get_by_index(0).unwrap())
        .collect();
    assert!(partitions.len() >= 2 && partitions.iter().all(|p| p != "twitter_data_default"), "{partitions:?}");
    let topics = topics(&stack.broker.bootstrap_servers());
    assert!(topics.contains(&CHANGES.to_owned()), "{topics:?}");
    assert!(
        !topics.iter().any(|t| t.starts_with("postgres.public.twitter_data_")),
        "no partition has a topic of its own: {topics:?}"
    );

    // A re-scrape with new counts: one update each, with the old row and the new.
    let rescraped = &posts[..5];
    let lines: Vec<String> = rescraped.iter().map(|&id| tweet_line(id, 7)).collect();
    scrape_and_insert(&stack, &dir, &lines).await;
    let mut events = events_until_mark(&stack, &dir, &changes, 2).await;
    assert_eq!(events.len(), rescraped.len(), "{events:#?}");
    events.sort_by_key(Event::tweet_id);
    let (rows, _) = stored_rows(&owner).await;
    for (event, &id) in events.iter().zip(rescraped) {
        assert_eq!((event.op(), event.tweet_id()), ("u", id as i64), "{event:?}");
        let value = event.value.as_ref().unwrap();
        assert_eq!(value["before"]["like_count"], 3, "the old row: {value}");
        assert_eq!(value["after"]["like_count"], 7, "the new row: {value}");
        assert_same_row(&value["after"], &rows[&(id as i64)], &types);
    }

    // The whole tweets topic replayed by a new consumer group: every row is offered again, none changes.
    insert(&stack, &dir, "replay-everything").await;
    // Retention drops the partitions older than five days: their posts go without a change event.
    let retention = stack
        .command("migration")
        .args(["retention", "--twitter-retention", "5d"])
        .env("DATABASE_URL", stack.url(Role::Owner))
        .output()
        .unwrap();
    assert!(retention.status.success(), "{}", String::from_utf8_lossy(&retention.stderr));
    let dropped = query(&owner, "SELECT dropped FROM ingest_partition_maintenance('twitter_data')").await;
    assert!(dropped[0].try_get_by_index::<i32>(0).unwrap() >= 1, "retention dropped the old partition");
    let left = query(&owner, "SELECT count(*) FROM twitter_data").await[0].try_get_by_index::<i64>(0).unwrap();
    assert_eq!(left, 22, "the eight-day-old posts are gone");
    let events = events_until_mark(&stack, &dir, &changes, 3).await;
    assert!(events.is_empty(), "neither the replay nor the retention made an event: {events:#?}");

    // Postgres restarts under the connector: its task stays RUNNING and resumes from its slot.
    stack.pg.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stack.pg.restart().await.unwrap();
    let updated = posts[5];
    scrape_and_insert(&stack, &dir, &[tweet_line(updated, 9)]).await;
    let events = events_until_mark(&stack, &dir, &changes, 4).await;
    eprintln!("events after the restart: {:?}", events.iter().map(|e| (e.op(), e.tweet_id())).collect::<Vec<_>>());
    let updates: Vec<&Event> = events.iter().filter(|e| e.op() == "u").collect();
    assert_eq!(updates.len(), 1, "the change made after the restart arrives: {events:#?}");
    assert_eq!(updates[0].tweet_id(), updated as i64);
    assert_eq!(connect.states().await.unwrap(), ["RUNNING", "RUNNING"], "{}", connect.log());
    let status = connect.status().await.unwrap();
    assert_eq!(status["name"], CONNECTOR);
}

/// The broker's topic names.
fn topics(bootstrap_servers: &str) -> Vec<String> {
    let consumer: rdkafka::consumer::BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", bootstrap_servers).create().unwrap();
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(10)).unwrap();
    metadata.topics().iter().map(|t| t.name().to_owned()).collect()
}
