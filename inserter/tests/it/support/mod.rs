//! What the inserter's process-level tests share: a rig of real services (Postgres with the schema, a broker
//! with a topic), X-format and Mastodon-format records to produce, and the `inserter` binary run as a process
//! against them.

#![allow(dead_code, unused_imports)] // each test file and bench uses its own part of the rig

use std::process::Command;
use std::time::{Duration, Instant};

use inserter::record::ConsumedRecord;
use migration::Migrator;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
pub use testkit::free_addr;
use testkit::{Broker, Postgres, Process, TestDatabase, TestMessage, unique_name};

/// The state the rig's database starts in.
pub enum Schema {
    Migrated,
    Empty,
}

pub struct Rig {
    pub pg: Postgres,
    pub db: TestDatabase,
    pub broker: Broker,
    pub topic: String,
    /// The Mastodon statuses topic: named, but created only by the tests that need it.
    pub statuses_topic: String,
    /// The Instagram topics: named, but created only by the tests that need them.
    pub instagram_profiles_topic: String,
    pub instagram_media_topic: String,
    logs: tempfile::TempDir,
}

impl Rig {
    pub async fn start(partitions: i32) -> Self {
        Self::start_with(partitions, Schema::Migrated).await
    }

    /// A rig on the shared broker, its database in `schema`.
    pub async fn start_with(partitions: i32, schema: Schema) -> Self {
        let broker = Broker::shared().await.unwrap();
        Self::start_in(Postgres::start().await.unwrap(), partitions, schema, broker).await
    }

    /// A rig on the cluster `pg` (e.g. one from [`Postgres::start_durable`]) and `broker` (one of the test's
    /// own, [`Broker::start`], for a test that kills it).
    pub async fn start_in(pg: Postgres, partitions: i32, schema: Schema, broker: Broker) -> Self {
        let db = match schema {
            Schema::Migrated => pg.migrated_database::<Migrator>().await.unwrap(),
            Schema::Empty => {
                let (name, url) = pg.create_database().await.unwrap();
                TestDatabase { name, conn: Database::connect(&url).await.unwrap(), url }
            }
        };
        let topic = unique_name("tweets");
        if partitions > 0 {
            broker.create_topic(&topic, partitions).await.unwrap();
        }
        let statuses_topic = unique_name("statuses");
        let instagram_profiles_topic = unique_name("instagram-profiles");
        let instagram_media_topic = unique_name("instagram-media");
        let logs = tempfile::tempdir().unwrap();
        Self { pg, db, broker, topic, statuses_topic, instagram_profiles_topic, instagram_media_topic, logs }
    }

    pub fn conn(&self) -> &DatabaseConnection {
        &self.db.conn
    }

    /// The `inserter` binary in consumer group `group`, pointed at the rig, with `args` added.
    pub fn inserter(&self, group: &str, args: &[&str]) -> Process {
        self.inserter_with(group, &[], args)
    }

    /// [`Rig::inserter`] with the variables `env` set after the rig's.
    pub fn inserter_with(&self, group: &str, env: &[(&str, &str)], args: &[&str]) -> Process {
        let mut command = self.inserter_command(group, args);
        command.envs(env.iter().copied());
        self.spawn("inserter", command)
    }

    /// [`Rig::inserter`] batching as the inserter does by default: without the rig's small `BATCH_SIZE` and
    /// `BATCH_TIMEOUT` (those of this process's environment are passed on, if set). For benchmarks.
    pub fn inserter_with_batch_defaults(&self, group: &str, args: &[&str]) -> Process {
        let mut command = self.inserter_command(group, args);
        for name in ["BATCH_SIZE", "BATCH_TIMEOUT"] {
            match std::env::var_os(name) {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        self.spawn("inserter", command)
    }

    /// `command` run as a [`Process`], its output in a log file of the rig's named after `name`.
    pub fn spawn(&self, name: &str, command: Command) -> Process {
        Process::spawn(command, &self.logs.path().join(format!("{}.log", unique_name(name)))).unwrap()
    }

    fn inserter_command(&self, group: &str, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_inserter"));
        command
            .args(args)
            .env("DATABASE_URL", &self.db.url)
            .env("KAFKA_BOOTSTRAP_SERVERS", self.broker.bootstrap_servers())
            .env("INSERTER_GROUP", group)
            .env("TOPIC_TWEETS", &self.topic)
            .env("TOPIC_MASTODON_STATUSES", &self.statuses_topic)
            .env("TOPIC_INSTAGRAM_PROFILES", &self.instagram_profiles_topic)
            .env("TOPIC_INSTAGRAM_MEDIA", &self.instagram_media_topic)
            .env("INSERTER_METRICS_ADDR", "127.0.0.1:0")
            .env("BATCH_SIZE", "500")
            .env("BATCH_TIMEOUT", "100ms")
            // A killed member's partitions move after this long, not after the default 45 s.
            .env("KAFKA_SESSION_TIMEOUT_MS", "6000")
            .env("KAFKA_HEARTBEAT_INTERVAL_MS", "500")
            // Also the rebalance timeout: how long the group waits for a killed member to rejoin.
            .env("KAFKA_MAX_POLL_INTERVAL_MS", "10000")
            .env("RUST_LOG", "info,librdkafka=warn,rdkafka=warn")
            .env_remove("LOG_FORMAT")
            .env_remove("RUN_MIGRATIONS");
        command
    }

    /// Produces tweets `ids` (one record each, keyed by id).
    pub async fn produce_tweets(&self, ids: impl IntoIterator<Item = u64>) {
        self.broker.produce(&self.topic, ids.into_iter().map(tweet_message)).await.unwrap();
    }

    pub async fn count(&self, sql: &str) -> i64 {
        count(self.conn(), sql).await
    }

    /// Waits until `sql` (a `SELECT count(*)`) reaches `expected`; panics with `process`'s log if it does not.
    pub async fn wait_for_count(&self, sql: &str, expected: i64, timeout: Duration, process: &Process) {
        let deadline = Instant::now() + timeout;
        loop {
            let now = count(self.conn(), sql).await;
            if now >= expected {
                return;
            }
            assert!(Instant::now() < deadline, "{sql}: {now} of {expected} after {timeout:?}; log:\n{}", process.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A GET of `path` from an HTTP server at `addr` (the inserter's /metrics and /healthz): the whole response.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// The value of `series` (a metric's name, with its labels if it has any, as scraped) in a /metrics response.
pub fn metric(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The `inserter_consumer_lag_records` series of `topic` in a /metrics response: partition -> lag.
pub fn lag_by_partition(metrics: &str, topic: &str) -> std::collections::BTreeMap<i32, i64> {
    let prefix = format!("inserter_consumer_lag_records{{topic=\"{topic}\",partition=\"");
    metrics
        .lines()
        .filter_map(|line| {
            let (partition, value) = line.strip_prefix(&prefix)?.split_once("\"} ")?;
            Some((partition.parse().ok()?, value.trim().parse().ok()?))
        })
        .collect()
}

/// Sets the cluster of `db` to `fsync` and `full_page_writes` on (as users run Postgres) or off, with
/// `synchronous_commit` at its default (on), through `ALTER SYSTEM` and a reload; returns once a new session
/// sees them. The cluster must not set them on its command line (see [`Postgres::start_durable`]).
pub async fn set_durability(db: &DatabaseConnection, url: &str, fsync: bool) {
    let setting = if fsync { "on" } else { "off" };
    for sql in [
        format!("ALTER SYSTEM SET fsync = {setting}"),
        format!("ALTER SYSTEM SET full_page_writes = {setting}"),
        "ALTER SYSTEM RESET synchronous_commit".to_owned(),
        "SELECT pg_reload_conf()".to_owned(),
    ] {
        db.execute_unprepared(&sql).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let session = Database::connect(url).await.unwrap();
        let sql = "SELECT current_setting('fsync'), current_setting('full_page_writes'), \
                   current_setting('synchronous_commit')";
        let row = session.query_one_raw(Statement::from_string(session.get_database_backend(), sql)).await.unwrap();
        let row = row.unwrap();
        let now: [String; 3] = std::array::from_fn(|i| row.try_get_by_index(i).unwrap());
        session.close().await.unwrap();
        if now == [setting, setting, "on"] {
            return;
        }
        assert!(Instant::now() < deadline, "fsync, full_page_writes, synchronous_commit: {now:?}, not {setting}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// The id X gives a post created `ago_ms` milliseconds before now: milliseconds since X's epoch
/// (2010-11-04T01:42:54.657Z), shifted past the worker and sequence bits. Such posts land in the partition
/// of their day, as real ones do.
pub fn x_id_ago(ago_ms: u64) -> u64 {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    (now_ms - ago_ms - 1_288_834_974_657) << 22
}

/// An X API v2 stream line for tweet `id`, by one of 50 authors, with the author in `includes.users`.
pub fn tweet_line(id: u64) -> String {
    let author = 1_000 + id % 50;
    format!(
        r#"{{"data":{{"id":"{id}","text":"post {id} #rust","author_id":"{author}","created_at":"2025-06-01T12:00:00.000Z","lang":"en","public_metrics":{{"retweet_count":{},"reply_count":0,"like_count":{},"quote_count":0}},"entities":{{"hashtags":[{{"start":10,"end":15,"tag":"rust"}}]}}}},"includes":{{"users":[{{"id":"{author}","name":"Author {author}","username":"author{author}","created_at":"2020-01-01T00:00:00.000Z","public_metrics":{{"followers_count":10,"following_count":5,"tweet_count":100,"listed_count":0}}}}]}}}}"#,
        id % 7,
        id % 13
    )
}

pub fn tweet_message(id: u64) -> TestMessage {
    TestMessage {
        key: Some(id.to_string().into_bytes()),
        value: Some(tweet_line(id).into_bytes()),
        headers: vec![
            ("source".into(), b"x.sample".to_vec()),
            ("scraped_at".into(), b"2025-06-01T12:00:05Z".to_vec()),
            ("content_type".into(), b"application/json".to_vec()),
        ],
        partition: None,
    }
}

/// X stream line `payload` as the inserter consumes it from `topic` at `offset` (partition 0), keyed by `key`,
/// with the scraper's `source` (`x.sample`) and `scraped_at` headers: for benches that drive the writer
/// without a broker.
pub fn consumed_tweet(topic: &str, offset: i64, key: String, payload: Vec<u8>, scraped_at: &str) -> ConsumedRecord {
    ConsumedRecord {
        topic: topic.to_owned(),
        partition: 0,
        offset,
        key: Some(key.into_bytes()),
        payload: Some(payload),
        headers: vec![
            ("source".into(), Some(b"x.sample".to_vec())),
            ("scraped_at".into(), Some(scraped_at.as_bytes().to_vec())),
        ],
        timestamp: None,
    }
}

/// A Mastodon status record as the scraper produces it: keyed by the status id, with its headers.
pub fn status_message(status: &serde_json::Value, scraped_at: &str) -> TestMessage {
    TestMessage {
        key: status["id"].as_str().map(|id| id.as_bytes().to_vec()),
        value: Some(status.to_string().into_bytes()),
        headers: vec![
            ("source".into(), b"sse.mastodon".to_vec()),
            ("scraped_at".into(), scraped_at.as_bytes().to_vec()),
            ("content_type".into(), b"application/json".to_vec()),
            ("scraper_version".into(), b"0.1.0".to_vec()),
        ],
        partition: None,
    }
}

/// An Instagram record as the scraper produces it: keyed by the object's id, with `source`, `scraped_at` and
/// the Instagram headers given.
pub fn instagram_message(value: &serde_json::Value, scraped_at: &str, headers: &[(&str, &str)]) -> TestMessage {
    TestMessage::instagram(value, scraped_at, headers)
}

/// A JSON fixture from `tests/fixtures/<path>`.
pub fn fixture_json(path: &str) -> serde_json::Value {
    let bytes = std::fs::read(format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// A process's parent and CPU ticks, from `/proc/PID/stat`.
pub struct ProcStat {
    pub ppid: u32,
    /// utime + stime, in clock ticks.
    pub own: u64,
    /// cutime + cstime: of the children it reaped.
    pub children: u64,
}

/// `/proc/PID/stat`'s parent and CPU ticks; `None` once the process is gone.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After "pid (comm) ": state ppid ... utime (14th field) stime cutime cstime.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let n = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    Some(ProcStat { ppid: n(4) as u32, own: n(14) + n(15), children: n(16) + n(17) })
}

/// A throwaway Postgres and a database migrated to the current schema. Dropping the `Postgres` stops it.
pub async fn migrated() -> (Postgres, TestDatabase) {
    let pg = Postgres::start().await.unwrap();
    let db = pg.migrated_database::<Migrator>().await.unwrap();
    (pg, db)
}

/// [`migrated`], for a test that needs only the connection.
pub async fn setup() -> (Postgres, DatabaseConnection) {
    let (pg, db) = migrated().await;
    (pg, db.conn)
}

/// `records` decoded as the inserter decodes a batch, each topic read by the mapping of its default name.
pub fn batch(records: Vec<ConsumedRecord>) -> inserter::batch::Batch {
    inserter::batch::Batch::decode(records, &inserter::batch::Routes::default())
}
