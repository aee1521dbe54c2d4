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
use testkit::connect::CONNECTOR;
use testkit::http::{HttpServer, Part, Reply};
use testkit::stack::{Role, Stack, StackOptions};
use testkit::{Process, TestMessage};

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

/// Change topics, read from their start by a consumer of its own.
struct ChangeReader {
    consumer: StreamConsumer,
    /// The next offset of each partition read: a topic the connector creates later makes the group rebalance,
    /// and the consumer (which commits nothing) starts its partitions over from the earliest offset.
    next: std::sync::Mutex<BTreeMap<(String, i32), i64>>,
    /// The highest `source.lsn` of the events read.
    last_lsn: std::sync::atomic::AtomicI64,
}

impl ChangeReader {
    fn new(bootstrap_servers: &str, topics: &[&str]) -> Self {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap_servers)
            .set("group.id", testkit::unique_name("changes"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .create()
            .unwrap();
        consumer.subscribe(topics).unwrap();
        Self { consumer, next: Default::default(), last_lsn: Default::default() }
    }

    /// The next event and its topic, or `None` once `deadline` passed.
    async fn next(&self, deadline: Instant) -> Option<(String, Event)> {
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let message = match tokio::time::timeout(left, self.consumer.recv()).await {
                Ok(Ok(message)) => message,
                // The connector creates a topic with its table's first event.
                Ok(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition))) => continue,
                Ok(Err(e)) => panic!("read the change topics: {e}"),
                Err(_) => return None,
            };
            let position = (message.topic().to_owned(), message.partition());
            let mut next = self.next.lock().unwrap();
            if next.get(&position).is_some_and(|&n| message.offset() < n) {
                continue;
            }
            next.insert(position, message.offset() + 1);
            drop(next);
            let key: Value = serde_json::from_slice(message.key().expect("a keyed event")).unwrap();
            let value = message.payload().map(|v| serde_json::from_slice::<Value>(v).unwrap()["payload"].clone());
            if let Some(lsn) = value.as_ref().and_then(|v| v["source"]["lsn"].as_i64()) {
                self.last_lsn.fetch_max(lsn, std::sync::atomic::Ordering::Relaxed);
            }
            return Some((message.topic().to_owned(), Event { key: key["payload"].clone(), value }));
        }
    }

    fn last_lsn(&self) -> i64 {
        self.last_lsn.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The next events up to and including the create event of post `sentinel` in `twitter_data`'s topic.
    async fn until_created(&self, sentinel: i64, timeout: Duration) -> Vec<Event> {
        let deadline = Instant::now() + timeout;
        let mut events = Vec::new();
        loop {
            let Some((_, event)) = self.next(deadline).await else {
                let got: Vec<(&str, i64)> = events.iter().map(|e: &Event| (e.op(), e.tweet_id())).collect();
                panic!("no create event of {sentinel} within {timeout:?}; got {} events: {got:?}", got.len())
            };
            let done = event.op() == "c" && event.tweet_id() == sentinel;
            events.push(event);
            if done {
                return events;
            }
        }
    }

    /// Every event, by topic, until `done` says the ones so far are all that is awaited; then whatever else
    /// arrives within `settle`.
    async fn until(
        &self,
        timeout: Duration,
        settle: Duration,
        done: impl Fn(&BTreeMap<String, Vec<Event>>) -> bool,
    ) -> BTreeMap<String, Vec<Event>> {
        let mut events: BTreeMap<String, Vec<Event>> = BTreeMap::new();
        let deadline = Instant::now() + timeout;
        while !done(&events) {
            let Some((topic, event)) = self.next(deadline).await else {
                panic!("not all the events awaited within {timeout:?}; got {events:#?}")
            };
            events.entry(topic).or_default().push(event);
        }
        let settled = Instant::now() + settle;
        while let Some((topic, event)) = self.next(settled).await {
            events.entry(topic).or_default().push(event);
        }
        events
    }
}

/// Scrapes and inserts `lines` and after them a post of a fresh id (`n` in its sequence bits), and returns the
/// events that came before the post's create event: those of what was done since the last mark. The topic
/// has one partition, so the post is stored after every line before it.
async fn marked(
    stack: &Stack,
    dir: &tempfile::TempDir,
    changes: &ChangeReader,
    lines: &[String],
    n: u64,
) -> Vec<Event> {
    let sentinel = x_id(0, 1_000 + n);
    let mut lines = lines.to_vec();
    lines.push(tweet_line(sentinel, 0));
    scrape_and_insert(stack, dir, &lines).await;
    let mut events = changes.until_created(sentinel as i64, Duration::from_secs(180)).await;
    events.pop();
    events
}

/// Runs the scraper over `lines` (a replay file) and then the inserter until the topic is idle.
async fn scrape_and_insert(stack: &Stack, dir: &tempfile::TempDir, lines: &[String]) {
    let file = dir.path().join(testkit::unique_name("replay"));
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let mut scraper = scraper(stack);
    scraper
        .env("SCRAPER_SOURCES", "replay")
        .env("REPLAY_FILE", &file)
        .env("REPLAY_RATE", "0")
        .env("TOPIC_PARTITIONS", "1");
    run(scraper, dir, "scraper").await;
    insert(stack, dir, "ingest").await;
}

/// The scraper binary with no setting of the developer's environment.
fn scraper(stack: &Stack) -> Command {
    let mut scraper = stack.scraper();
    scraper
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KAFKA_BOOTSTRAP_SERVERS", stack.broker.bootstrap_servers())
        .env("SCRAPER_METRICS_ADDR", "127.0.0.1:0");
    scraper
}

/// The inserter in consumer group `group`, until the topics are idle.
async fn insert(stack: &Stack, dir: &tempfile::TempDir, group: &str) {
    let mut inserter = stack.inserter();
    inserter
        .args(["--exit-when-idle", "1s"])
        .env("INSERTER_GROUP", group)
        .env("INSERTER_METRICS_ADDR", "127.0.0.1:0")
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
    let connect = stack.start_debezium(0).await.unwrap();
    let changes = ChangeReader::new(&stack.broker.bootstrap_servers(), &[CHANGES]);

    // Posts of today and of eight days ago, each in its day's partition: every one arrives as one create
    // event keyed by tweet_id with the values the table holds, under the table's topic.
    let posts: Vec<u64> = (1..=20).map(|n| x_id(0, n)).chain((21..=30).map(|n| x_id(8, n))).collect();
    let lines: Vec<String> = posts.iter().map(|&id| tweet_line(id, 3)).collect();
    let events = marked(&stack, &dir, &changes, &lines, 1).await;
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
    let mut events = marked(&stack, &dir, &changes, &lines, 2).await;
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
    let events = marked(&stack, &dir, &changes, &[], 3).await;
    assert!(events.is_empty(), "neither the replay nor the retention made an event: {events:#?}");

    // Postgres restarts under the connector: its task stays RUNNING and resumes from its slot. Connect
    // stores the connector's position every offset.flush.interval.ms (compose's OFFSET_FLUSH_INTERVAL_MS);
    // once it holds the last event's, the restart re-sends nothing.
    let last = changes.last_lsn();
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored_lsn(&connect).await < last {
        assert!(
            Instant::now() < deadline,
            "Connect never stored the position {last}: {:?}",
            connect.get(OFFSETS).await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stack.pg.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stack.pg.restart().await.unwrap();
    let updated = posts[5];
    let events = marked(&stack, &dir, &changes, &[tweet_line(updated, 9)], 4).await;
    let ops: Vec<(&str, i64)> = events.iter().map(|e| (e.op(), e.tweet_id())).collect();
    assert_eq!(ops, [("u", updated as i64)], "the change made after the restart, once, and nothing again");
    assert_eq!(events[0].value.as_ref().unwrap()["after"]["like_count"], 9);
    assert_eq!(connect.states().await.unwrap(), ["RUNNING", "RUNNING"], "{}", connect.log());
    let status = connect.status().await.unwrap();
    assert_eq!(status["name"], CONNECTOR);
}

const OFFSETS: &str = "/connectors/ingest-postgres/offsets";

/// The LSN of the last event whose position Connect has stored for the connector (0 before any).
async fn stored_lsn(connect: &testkit::connect::Connect) -> i64 {
    let offsets = connect.get(OFFSETS).await.unwrap();
    offsets["offsets"].as_array().into_iter().flatten().filter_map(|o| o["offset"]["lsn"].as_i64()).max().unwrap_or(0)
}

/// The broker's topic names.
fn topics(bootstrap_servers: &str) -> Vec<String> {
    let consumer: rdkafka::consumer::BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", bootstrap_servers).create().unwrap();
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(10)).unwrap();
    metadata.topics().iter().map(|t| t.name().to_owned()).collect()
}

/// Mastodon's streaming API, one connection each: the status, then its deletion.
async fn mastodon_stream(status: &Value) -> HttpServer {
    let stream = |event: String| {
        let mut reply = Reply::stream(vec![Part::Chunk(event.into_bytes()), Part::Hang]);
        reply.headers.retain(|(name, _)| name != "content-type");
        reply.header("content-type", "text/event-stream")
    };
    let id = status["id"].as_str().unwrap();
    let replies =
        vec![stream(format!("event: update\ndata: {status}\n\n")), stream(format!("event: delete\ndata: {id}\n\n"))];
    HttpServer::scripted(replies, stream(String::new())).await.unwrap()
}

/// Runs the scraper on `server`'s stream until `records` records are in `topic` in all, then stops it.
async fn scrape_stream(stack: &Stack, dir: &tempfile::TempDir, server: &HttpServer, topic: &str, records: i64) {
    let mut command = scraper(stack);
    command.env("SSE_URL", format!("{}/api/v1/streaming/public", server.url()));
    let log = dir.path().join(testkit::unique_name("scraper.log"));
    let mut scraper = Process::spawn(command, &log).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while records_in(&stack.broker.bootstrap_servers(), topic) < records {
        assert!(Instant::now() < deadline, "{records} records in {topic}? {}", scraper.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    scraper.signal(libc::SIGTERM);
    assert!(scraper.wait(Duration::from_secs(30)).await.unwrap().success(), "{}", scraper.log());
}

/// The records in `topic` (its partitions' high watermarks; none while it does not exist).
fn records_in(bootstrap_servers: &str, topic: &str) -> i64 {
    let consumer: rdkafka::consumer::BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", bootstrap_servers).create().unwrap();
    let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) else { return 0 };
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    partitions
        .iter()
        .filter_map(|&p| consumer.fetch_watermarks(topic, p, Duration::from_secs(5)).ok())
        .map(|(low, high)| high - low)
        .sum()
}

/// An Instagram fixture of the inserter's tests, with `changes` applied.
fn instagram(name: &str, changes: Value) -> Value {
    let path = testkit::stack::repository_root().join("inserter/tests/fixtures/instagram").join(name);
    let mut value: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    for (key, new) in changes.as_object().unwrap() {
        value[key] = new.clone();
    }
    value
}

/// An Instagram record as the scraper produces it, scraped now.
fn instagram_message(value: &Value, headers: &[(&str, &str)]) -> TestMessage {
    TestMessage::instagram(value, &chrono::Utc::now().to_rfc3339(), headers)
}

const GRAPH: &[(&str, &str)] = &[("source", "instagram.graph.business_discovery")];
const BLUEBOTTLE_GRAPH: i64 = 17841405309211844;
const BLUEBOTTLE_WEB: i64 = 1620131;

fn ops(events: &[Event]) -> Vec<&str> {
    events.iter().map(Event::op).collect()
}

#[tokio::test]
async fn a_mastodon_deletion_and_an_instagram_merge_reach_the_change_topics_as_the_changes_they_make() {
    let stack = Stack::start(&StackOptions::new().unwrap()).await.unwrap();
    stack.migrate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let connect = stack.start_debezium(0).await.unwrap();
    let statuses = "postgres.public.mastodon_statuses";
    let deletions = "postgres.public.mastodon_status_deletions";
    let (profiles, posts) = ("postgres.public.instagram_profiles", "postgres.public.instagram_posts");
    let snapshots = "postgres.public.instagram_profile_snapshots";
    let changes =
        ChangeReader::new(&stack.broker.bootstrap_servers(), &[statuses, deletions, profiles, posts, snapshots]);

    // A Mastodon status, then its deletion, each scraped from the stream by the binary and inserted.
    let id_ms = chrono::Utc::now().timestamp_millis() as u64;
    let path = testkit::stack::repository_root().join("inserter/tests/fixtures/mastodon/minimal.json");
    let mut status: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    status["id"] = (id_ms << 16).to_string().into();
    status["created_at"] = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true).into();
    status["content"] = "<p>hello</p>".into();
    let server = mastodon_stream(&status).await;
    scrape_stream(&stack, &dir, &server, "mastodon.statuses", 1).await;
    insert(&stack, &dir, "ingest").await;
    let owner = stack.connect(Role::Owner).await.unwrap();
    let stored = query(&owner, "SELECT count(*) FROM mastodon_statuses").await[0].try_get_by_index::<i64>(0).unwrap();
    let errors = query(&owner, "SELECT coalesce(string_agg(error, '; '), '') FROM ingest_errors").await;
    assert_eq!(stored, 1, "dead letters: {}", errors[0].try_get_by_index::<String>(0).unwrap());
    let created = changes.until(Duration::from_secs(120), Duration::ZERO, |e| e.contains_key(statuses)).await;
    assert_eq!(ops(&created[statuses]), ["c"], "{created:#?}");
    let after = &created[statuses][0].value.as_ref().unwrap()["after"];
    assert!(after["deleted_at"].is_null(), "{after}");

    scrape_stream(&stack, &dir, &server, "mastodon.statuses", 2).await;
    insert(&stack, &dir, "ingest").await;
    let deleted = changes
        .until(Duration::from_secs(120), Duration::from_secs(3), |e| {
            e.contains_key(statuses) && e.contains_key(deletions)
        })
        .await;
    assert_eq!(ops(&deleted[deletions]), ["c"], "the deletion is recorded: {deleted:#?}");
    assert_eq!(ops(&deleted[statuses]), ["u"], "the status is updated, not deleted: {deleted:#?}");
    let update = deleted[statuses][0].value.as_ref().unwrap();
    assert!(update["before"]["deleted_at"].is_null(), "{update}");
    assert!(update["after"]["deleted_at"].is_string(), "{update}");
    let without_deleted_at = |row: &Value| {
        let mut row = row.as_object().unwrap().clone();
        row.remove("deleted_at");
        row
    };
    assert_eq!(without_deleted_at(&update["before"]), without_deleted_at(&update["after"]), "only deleted_at changes");

    // Instagram: a Graph scrape that does not name the web id, and a web scrape of the same account: two
    // rows. Then a Graph scrape naming both ids merges them.
    let web_profile = instagram(
        "web_profile.json",
        serde_json::json!({"id": "1620131", "username": "bluebottle", "full_name": "Blue Bottle Coffee"}),
    );
    let media_headers = [("source", "instagram.graph.business_discovery"), ("instagram_owner_id", "17841405309211844")];
    stack
        .broker
        .produce(
            "instagram.profiles",
            [
                instagram_message(&instagram("graph_profile.json", serde_json::json!({})), GRAPH),
                instagram_message(&web_profile, &[("source", "instagram.web.profile")]),
            ],
        )
        .await
        .unwrap();
    stack
        .broker
        .produce(
            "instagram.media",
            [instagram_message(&instagram("graph_media.json", serde_json::json!({})), &media_headers)],
        )
        .await
        .unwrap();
    insert(&stack, &dir, "ingest").await;
    let before = changes
        .until(Duration::from_secs(120), Duration::from_secs(3), |e| {
            e.get(profiles).is_some_and(|v| v.len() >= 2) && e.contains_key(posts)
        })
        .await;
    assert_eq!(ops(&before[profiles]), ["c", "c"], "{before:#?}");

    stack
        .broker
        .produce(
            "instagram.profiles",
            [instagram_message(&instagram("graph_profile_ig_id.json", serde_json::json!({})), GRAPH)],
        )
        .await
        .unwrap();
    insert(&stack, &dir, "ingest").await;
    let merged = changes
        .until(Duration::from_secs(120), Duration::from_secs(5), |e| {
            e.get(profiles).is_some_and(|v| v.iter().any(|e| e.op() == "d")) && e.contains_key(posts)
        })
        .await;
    let key = |e: &Event| e.key["user_id"].as_i64().unwrap();
    let graph_row: Vec<&str> = merged[profiles].iter().filter(|e| key(e) == BLUEBOTTLE_GRAPH).map(Event::op).collect();
    assert_eq!(graph_row, ["d", "tombstone"], "the Graph-id row is deleted: {merged:#?}");
    let web_row: Vec<&Event> = merged[profiles].iter().filter(|e| key(e) == BLUEBOTTLE_WEB).collect();
    assert!(!web_row.is_empty() && web_row.iter().all(|e| e.op() == "u"), "{merged:#?}");
    let last = web_row.last().unwrap().value.as_ref().unwrap();
    assert_eq!(last["after"]["graph_user_id"], BLUEBOTTLE_GRAPH, "the account row learns the Graph id: {last}");
    assert_eq!(ops(&merged[posts]), ["u"], "{merged:#?}");
    let moved = merged[posts][0].value.as_ref().unwrap();
    assert_eq!(
        (&moved["before"]["owner_id"], &moved["after"]["owner_id"]),
        (&Value::from(BLUEBOTTLE_GRAPH), &Value::from(BLUEBOTTLE_WEB)),
        "the post moves to the account row: {moved}"
    );
    // A snapshot's user_id is part of its key: Debezium sends the move as a delete (and its tombstone) under
    // the old key and a create under the new one, beside the merge scrape's own new snapshot.
    let moved: Vec<(i64, &str)> = merged[snapshots].iter().map(|e| (key(e), e.op())).collect();
    assert_eq!(
        moved,
        [(BLUEBOTTLE_GRAPH, "d"), (BLUEBOTTLE_GRAPH, "tombstone"), (BLUEBOTTLE_WEB, "c"), (BLUEBOTTLE_WEB, "c")],
        "{merged:#?}"
    );
    assert_eq!(connect.states().await.unwrap(), ["RUNNING", "RUNNING"], "{}", connect.log());
}
