//! Debezium's JDBC sink connector on Kafka Connect: what a data engineer who does not run the inserter would
//! land the topic with. It upserts the same records into `twitter_data_jdbc` (`LIKE twitter_data INCLUDING
//! ALL`: same primary key, indexes and checks), on the bench's broker and database, with the inserter's batch
//! (`batch.size` and `max.poll.records`), one task per partition, and `reWriteBatchedInserts=true`.
//!
//! The records are X stream lines, schemaless JSON, which the sink cannot take as they are: it needs a
//! Connect schema. They get one fixed schema (`JsonConverter`'s `schema.content`) naming the post's scalar
//! fields, and the smallest chain of Kafka's own SMTs that makes them a row of the table:
//! `Flatten` (`data.public_metrics.like_count` -> `data_public_metrics_like_count`), `ReplaceField` (keeps
//! and renames those fields to the columns), `Cast` (the ids, strings in X's JSON, to `int64`),
//! `TimestampConverter` (`created_at`), `InsertField` (`source` as a constant, `scraped_at` from the
//! record's timestamp).
//!
//! What it writes: `tweet_id`, `text`, `author_id`, `created_at`, `lang`, `conversation_id`,
//! `possibly_sensitive`, the six counts of `public_metrics`, `source` and `scraped_at`. What it cannot:
//! `raw` (the converter parses the line, and no SMT gives the text back; the column's `NOT NULL` is dropped
//! in its table), the arrays (`hashtags`, `mentions`, `urls`: `Flatten` does not reach into arrays of
//! objects), the references (`replied_to_id` and the others: a match on `referenced_tweets[].type`), the
//! authors in `includes.users` (another table), and the inserter's guard (its upsert overwrites every column
//! whatever the row holds).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sea_orm::ConnectionTrait;
use serde_json::json;
use testkit::connect::Connect;
use testkit::jvm::Install;

use crate::support::{self, Rig};
use crate::{Args, checkpoint};

const TABLE: &str = "twitter_data_jdbc";
const CONNECTOR: &str = "jdbc-sink-bench";

pub enum Sink {
    Ran {
        rate: f64,
        /// CPU µs a row: the Connect worker, Postgres.
        cpu_us: (f64, f64),
    },
    Skipped(String),
    Failed(String),
}

/// Runs the sink over the rig's topic into [`TABLE`] until it holds every record; rows/s is counted from the
/// first rows seen in the table to the last (`n_tup_ins`, which Postgres publishes at most a second late, at
/// both ends).
pub async fn run(rig: &Rig, args: &Args) -> Sink {
    let plugins = match Install::jdbc_sink_plugins() {
        Ok(plugins) => plugins,
        Err(e) => return Sink::Skipped(format!("{e:#}")),
    };
    match run_with(rig, args, plugins).await {
        Ok(sink) => sink,
        Err(e) => Sink::Failed(format!("{e:#}")),
    }
}

async fn run_with(rig: &Rig, args: &Args, plugins: PathBuf) -> anyhow::Result<Sink> {
    let db = rig.conn();
    db.execute_unprepared(&format!(
        "CREATE TABLE {TABLE} (LIKE twitter_data INCLUDING ALL); ALTER TABLE {TABLE} ALTER raw DROP NOT NULL;"
    ))
    .await?;
    let connect = Connect::start_with_plugins(&rig.broker.bootstrap_servers(), "unused", 0, &[plugins]).await?;
    checkpoint(rig).await;
    let config = config(rig, args);
    connect.put(&format!("/connectors/{CONNECTOR}/config"), &config).await?;
    let inserted = format!("SELECT coalesce(max(n_tup_ins), 0) FROM pg_stat_user_tables WHERE relname = '{TABLE}'");
    let total = args.records as i64;
    let mut first: Option<(Instant, i64, (u64, u64))> = None;
    let mut progress = (Instant::now(), 0);
    let ticks = || (support::proc_stat(connect.pid().unwrap_or(0)).map_or(0, |s| s.own), crate::postgres_ticks(rig));
    loop {
        let now = support::count(db, &inserted).await;
        if now > 0 && first.is_none() {
            first = Some((Instant::now(), now, ticks()));
        }
        if now >= total {
            break;
        }
        if now > progress.1 {
            progress = (Instant::now(), now);
        } else if progress.0.elapsed() > Duration::from_secs(120) {
            let status = connect.get(&format!("/connectors/{CONNECTOR}/status")).await.unwrap_or_default();
            return Ok(Sink::Failed(format!(
                "no progress for 2 min at {now} of {total} rows; status {status}; worker log:\n{}",
                connect.log()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (t0, n0, (connect0, postgres0)) = first.expect("rows seen");
    let seconds = t0.elapsed().as_secs_f64();
    let (connect1, postgres1) = ticks();
    let rows = support::count(db, &format!("SELECT count(*) FROM {TABLE}")).await;
    anyhow::ensure!(rows == total, "{TABLE} holds {rows} rows for {total} records");
    // The columns it fills hold what the inserter's do (it ran first, on the same records).
    let same = support::count(
        db,
        &format!(
            "SELECT count(*) FROM {TABLE} j JOIN twitter_data t USING (tweet_id) WHERE (j.text, j.author_id, \
             j.created_at, j.lang, j.conversation_id, j.like_count, j.retweet_count, j.source) \
             IS NOT DISTINCT FROM (t.text, t.author_id, t.created_at, t.lang, t.conversation_id, t.like_count, \
             t.retweet_count, t.source)"
        ),
    )
    .await;
    anyhow::ensure!(same == total, "{same} of {TABLE}'s {total} rows match the inserter's twitter_data");
    let per_row = |now: u64, then: u64| crate::seconds_between(then, now) / (total - n0) as f64 * 1e6;
    Ok(Sink::Ran {
        rate: (total - n0) as f64 / seconds,
        cpu_us: (per_row(connect1, connect0), per_row(postgres1, postgres0)),
    })
}

/// The connector's configuration: the inserter's batch and one task per partition, the schema and the SMTs
/// described at the top of this file.
fn config(rig: &Rig, args: &Args) -> serde_json::Value {
    let batch = args.batch_size.unwrap_or(10_000).to_string();
    let counts = ["retweet_count", "reply_count", "like_count", "quote_count", "bookmark_count", "impression_count"];
    let field = |name: &str, kind: &str| json!({"field": name, "type": kind, "optional": true});
    let schema = json!({
        "type": "struct",
        "fields": [{
            "field": "data",
            "type": "struct",
            "optional": false,
            "fields": [
                {"field": "id", "type": "string", "optional": false},
                {"field": "text", "type": "string", "optional": false},
                field("author_id", "string"),
                field("created_at", "string"),
                field("lang", "string"),
                field("conversation_id", "string"),
                field("possibly_sensitive", "boolean"),
                {
                    "field": "public_metrics",
                    "type": "struct",
                    "optional": true,
                    "fields": counts.iter().map(|c| field(c, "int64")).collect::<Vec<_>>(),
                },
            ],
        }],
    });
    let scalars = ["id:tweet_id", "text:text", "author_id:author_id", "created_at:created_at", "lang:lang"];
    let scalars =
        scalars.into_iter().chain(["conversation_id:conversation_id", "possibly_sensitive:possibly_sensitive"]);
    let mut renames: Vec<String> = scalars.map(|pair| format!("data_{pair}")).collect();
    renames.extend(counts.iter().map(|c| format!("data_public_metrics_{c}:{c}")));
    let kept: Vec<&str> = renames.iter().map(|pair| pair.split(':').next().unwrap()).collect();
    let url = format!("jdbc:postgresql://127.0.0.1:{}/{}?reWriteBatchedInserts=true", rig.pg.port(), rig.db.name);
    json!({
        "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
        "tasks.max": args.partitions.to_string(),
        "topics": rig.topic,
        "connection.url": url,
        "connection.username": "postgres",
        "connection.password": "",
        "insert.mode": "upsert",
        "primary.key.mode": "record_value",
        "primary.key.fields": "tweet_id",
        "schema.evolution": "none",
        "collection.name.format": TABLE,
        "batch.size": batch,
        "consumer.override.max.poll.records": batch,
        "consumer.override.auto.offset.reset": "earliest",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "true",
        "value.converter.schema.content": schema.to_string(),
        "transforms": "flatten,columns,ids,created,constants",
        "transforms.flatten.type": "org.apache.kafka.connect.transforms.Flatten$Value",
        "transforms.flatten.delimiter": "_",
        "transforms.columns.type": "org.apache.kafka.connect.transforms.ReplaceField$Value",
        "transforms.columns.include": kept.join(","),
        "transforms.columns.renames": renames.join(","),
        "transforms.ids.type": "org.apache.kafka.connect.transforms.Cast$Value",
        "transforms.ids.spec": "tweet_id:int64,author_id:int64,conversation_id:int64",
        "transforms.created.type": "org.apache.kafka.connect.transforms.TimestampConverter$Value",
        "transforms.created.field": "created_at",
        "transforms.created.target.type": "Timestamp",
        "transforms.created.format": "yyyy-MM-dd'T'HH:mm:ss.SSSX",
        "transforms.constants.type": "org.apache.kafka.connect.transforms.InsertField$Value",
        "transforms.constants.static.field": "source",
        "transforms.constants.static.value": "x.sample",
        "transforms.constants.timestamp.field": "scraped_at",
    })
}
