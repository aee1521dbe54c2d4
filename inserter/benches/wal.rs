//! The byte costs a capacity model needs: WAL bytes per written row of `twitter_data`, and disk bytes per
//! stored row, through the inserter's own write path (`Batch::decode`, `writer::write`: what the binary runs
//! for every batch) with the scraper's synthetic X posts (`scraper::synthetic`), in batches as in production.
//!
//! ```text
//! cargo bench -p inserter --bench wal -- [--rows 200000] [--batch-size 10000]
//! ```
//!
//! One throwaway cluster with `wal_level=logical`, `full_page_writes` and `fsync` on (as production), no
//! replication slot, autovacuum off (so that nothing but the writes is in the WAL measured), `max_wal_size`
//! and `wal_keep_size` large (no checkpoint within a phase, and its WAL kept to be read). The same phases
//! run twice, each time in a freshly migrated database: once with `REPLICA IDENTITY FULL` on `twitter_data`
//! and `twitter_users` (what the migrations set), once with `DEFAULT` (the primary key):
//!
//! - insert: N new posts;
//! - update: the same N posts scraped again later with grown `public_metrics` (the guarded upsert rewrites
//!   every row);
//! - replay: the same records again (same `scraped_at`: the upsert skips every row);
//! - unchanged re-scrape: the same posts with a newer `scraped_at` and nothing else changed (skipped too).
//!
//! A `CHECKPOINT` precedes each phase, so every page's first change after it is logged whole (a full-page
//! write): the WAL of a phase is `pg_wal_lsn_diff` around its batches, and `pg_walinspect` splits it into
//! full-page images and the rest, and by relation (the table's heap, its TOAST, its indexes, `twitter_users`,
//! the rest: offsets, commits). Then disk per row: `pg_total_relation_size` and its parts after the insert.
//! `twitter_data` is partitioned: its heap, TOAST and indexes are those of all its partitions together.
//! Byte counts do not depend on the machine's load.

#[path = "../tests/it/support/mod.rs"]
mod support;

use inserter::batch::{Batch, Routes};
use inserter::writer;
use sea_orm::{ConnectionTrait, DatabaseConnection, QueryResult, Statement};
use serde_json::Value;
use testkit::Postgres;

/// The synthetic generator's seed: the same posts every run.
const SEED: u64 = 18;
const TOPIC: &str = contract::topic::TWEETS.default;
const GROUP: &str = "wal-bench";
const FIRST_SCRAPE: &str = "2026-01-01T01:00:00Z";
const SECOND_SCRAPE: &str = "2026-01-01T02:00:00Z";
const THIRD_SCRAPE: &str = "2026-01-01T03:00:00Z";

struct Args {
    rows: u64,
    batch_size: u64,
}

fn args() -> Option<Args> {
    // Test runners (`cargo nextest run --all-targets`) ask every bench target for its tests: it has none.
    if std::env::args().any(|arg| arg == "--list") {
        return None;
    }
    let mut args = Args { rows: 200_000, batch_size: 10_000 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut number =
            || it.next().and_then(|v| v.parse::<u64>().ok()).filter(|n| *n > 0).unwrap_or_else(|| panic!("{flag} N"));
        match flag.as_str() {
            "--rows" => args.rows = number(),
            "--batch-size" => args.batch_size = number(),
            "--bench" => {}
            other => panic!("unknown flag {other}; see the file's header"),
        }
    }
    Some(args)
}

/// A phase's posts: which scrape, and whether the counts grew since the first.
#[derive(Clone, Copy)]
struct Scrape {
    name: &'static str,
    scraped_at: &'static str,
    grown: bool,
}

const PHASES: [Scrape; 4] = [
    Scrape { name: "insert (new posts)", scraped_at: FIRST_SCRAPE, grown: false },
    Scrape { name: "update (counts grew)", scraped_at: SECOND_SCRAPE, grown: true },
    Scrape { name: "replay (identical records)", scraped_at: SECOND_SCRAPE, grown: true },
    Scrape { name: "re-scrape, nothing changed", scraped_at: THIRD_SCRAPE, grown: true },
];

/// The WAL of one phase, in bytes.
#[derive(Default)]
struct Wal {
    /// `pg_wal_lsn_diff` around the phase.
    total: i64,
    /// Full-page images in it.
    fpi: i64,
    /// Record bytes (FPIs included) by part: heap, toast, indexes, twitter_users, other.
    parts: [i64; 5],
}

const PARTS: [&str; 5] = ["heap", "toast", "indexes", "users", "other"];

#[tokio::main]
async fn main() {
    let Some(args) = args() else { return };
    let pg = Postgres::start_durable().await.unwrap();
    let admin = pg.migrated_database::<migration::Migrator>().await.unwrap();
    // No checkpoint inside a phase (it would add full-page images) and no WAL removed before it is read.
    for sql in [
        "ALTER SYSTEM SET autovacuum = off",
        "ALTER SYSTEM SET max_wal_size = '16GB'",
        "ALTER SYSTEM SET wal_keep_size = '16GB'",
        "SELECT pg_reload_conf()",
    ] {
        admin.conn.execute_unprepared(sql).await.unwrap();
    }
    let settings = text(
        &admin.conn,
        "SELECT format('wal_level %s, full_page_writes %s, wal_compression %s, fsync %s, %s replication slots', \
         current_setting('wal_level'), current_setting('full_page_writes'), current_setting('wal_compression'), \
         current_setting('fsync'), (SELECT count(*) FROM pg_replication_slots))",
    )
    .await;

    let mut results = Vec::new();
    let mut disk = None;
    for identity in ["FULL", "DEFAULT"] {
        let db = pg.migrated_database::<migration::Migrator>().await.unwrap();
        let conn = &db.conn;
        conn.execute_unprepared(&format!(
            "CREATE EXTENSION pg_walinspect; \
             ALTER TABLE twitter_data REPLICA IDENTITY {identity}; \
             SELECT ingest_partition_replica_identity('twitter_data'); \
             ALTER TABLE twitter_users REPLICA IDENTITY {identity};"
        ))
        .await
        .unwrap();
        for (n, scrape) in PHASES.iter().enumerate() {
            eprintln!("{identity}: {}...", scrape.name);
            let wal = phase(conn, &args, *scrape, n as i64).await;
            // The insert and the update leave every row with their scrape time; a replay and an unchanged
            // re-scrape leave the rows as they were.
            let at = format!("SELECT count(*) FROM twitter_data WHERE scraped_at = '{}'", scrape.scraped_at);
            let expected = if n == 3 { 0 } else { args.rows as i64 };
            assert_eq!(support::count(conn, &at).await, expected, "{identity} {}: rows of its scrape", scrape.name);
            results.push((identity, scrape.name, wal));
            if n == 0 && disk.is_none() {
                disk = Some(Disk::of(conn).await);
            }
        }
    }

    println!();
    println!("{} posts of scraper::synthetic (seed {SEED}), batches of {}; {settings}", args.rows, args.batch_size);
    println!();
    println!("WAL bytes per post, after a CHECKPOINT (so each page's first change is a full-page image):");
    println!(
        "| replica identity | phase | WAL/post | FPI/post | WAL/post without FPI | twitter_data heap | toast | indexes | \
         twitter_users | other |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let per = |bytes: i64| bytes as f64 / args.rows as f64;
    for (identity, name, wal) in &results {
        let parts: Vec<String> = wal.parts.iter().map(|b| format!("{:.0}", per(*b))).collect();
        println!(
            "| {identity} | {name} | {:.0} | {:.0} | {:.0} | {} |",
            per(wal.total),
            per(wal.fpi),
            per(wal.total - wal.fpi),
            parts.join(" | ")
        );
    }
    println!(
        "(parts: record bytes, FPIs included, by the relation of each record's first block; other = offsets, commits, ...)"
    );
    println!();
    let disk = disk.expect("measured");
    disk.print(args.rows);
}

/// Writes `args.rows` posts of `scrape` through the inserter's write path after a `CHECKPOINT`; the WAL it
/// took.
async fn phase(conn: &DatabaseConnection, args: &Args, scrape: Scrape, n: i64) -> Wal {
    let routes = Routes::default();
    conn.execute_unprepared("CHECKPOINT").await.unwrap();
    let start = text(conn, "SELECT pg_current_wal_lsn()::text").await;
    let mut next = 0;
    while next < args.rows {
        let end = (next + args.batch_size).min(args.rows);
        let records = (next..end).map(|i| {
            let line = scraper::synthetic::line(SEED, i);
            let mut post: Value = serde_json::from_slice(&line).unwrap();
            if scrape.grown {
                grow(&mut post["data"]["public_metrics"], i);
            }
            let key = post["data"]["id"].as_str().unwrap().to_owned();
            let offset = n * args.rows as i64 + i as i64;
            support::consumed_tweet(TOPIC, offset, key, serde_json::to_vec(&post).unwrap(), scrape.scraped_at)
        });
        let mut batch = Batch::decode(records, &routes);
        assert!(batch.dead_letters().is_empty(), "{:?}", &batch.dead_letters()[..1]);
        writer::write(conn, GROUP, &mut batch).await.unwrap();
        next = end;
    }
    let end = text(conn, "SELECT pg_current_wal_lsn()::text").await;
    let mut wal = Wal {
        total: support::count(conn, &format!("SELECT pg_wal_lsn_diff('{end}', '{start}')::bigint")).await,
        ..Wal::default()
    };
    let parts =
        conn.query_all_raw(Statement::from_string(conn.get_database_backend(), split_sql(&start, &end))).await.unwrap();
    for row in parts {
        let part: String = row.try_get_by_index(0).unwrap();
        let i = PARTS.iter().position(|p| *p == part).unwrap();
        wal.parts[i] = row.try_get_by_index(1).unwrap();
        wal.fpi += row.try_get_by_index::<i64>(2).unwrap();
    }
    wal
}

/// A re-scrape's counts: more likes, reposts, replies, views.
fn grow(metrics: &mut Value, i: u64) {
    for (name, by) in
        [("like_count", 3 + i % 40), ("retweet_count", 1), ("reply_count", i % 2), ("impression_count", 250)]
    {
        metrics[name] = (metrics[name].as_u64().unwrap() + by).into();
    }
}

/// Record bytes and FPI bytes between `start` and `end`, by the part of `twitter_data` (or other relation)
/// each record's first block is in.
fn split_sql(start: &str, end: &str) -> String {
    format!(
        "WITH heaps AS (SELECT relid AS oid FROM pg_partition_tree('twitter_data') WHERE isleaf), \
         toasts AS (SELECT reltoastrelid AS oid FROM pg_class WHERE oid IN (SELECT oid FROM heaps) AND reltoastrelid <> 0), \
         rels AS ( \
           SELECT c.relfilenode, CASE \
             WHEN c.oid IN (SELECT oid FROM heaps) THEN 'heap' \
             WHEN c.oid IN (SELECT oid FROM toasts) \
               OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN (SELECT oid FROM toasts)) THEN 'toast' \
             WHEN c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN (SELECT oid FROM heaps)) THEN 'indexes' \
             WHEN c.oid = 'twitter_users'::regclass \
               OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'twitter_users'::regclass) \
               OR c.oid = (SELECT reltoastrelid FROM pg_class WHERE oid = 'twitter_users'::regclass) THEN 'users' \
             ELSE 'other' END AS part \
           FROM pg_class c WHERE c.relfilenode <> 0), \
         recs AS ( \
           SELECT record_length, fpi_length, regexp_match(block_ref, 'rel \\d+/(\\d+)/(\\d+)') AS m \
           FROM pg_get_wal_records_info('{start}', '{end}')) \
         SELECT coalesce(rels.part, 'other'), sum(record_length)::bigint, sum(fpi_length)::bigint \
         FROM recs LEFT JOIN rels ON recs.m[2]::oid = rels.relfilenode \
           AND recs.m[1]::oid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         GROUP BY 1"
    )
}

/// `twitter_data`'s size on disk, by part, after the insert.
struct Disk {
    rows: i64,
    total: i64,
    heap: i64,
    toast: i64,
    indexes: i64,
    /// (index, bytes)
    each_index: Vec<(String, i64)>,
    /// Average of the stored `raw` (`pg_column_size`, after compression) and of its JSON text.
    raw_stored: f64,
    raw_text: f64,
    users: i64,
    user_rows: i64,
}

impl Disk {
    async fn of(conn: &DatabaseConnection) -> Self {
        let row = one(
            conn,
            "WITH leaves AS (SELECT relid FROM pg_partition_tree('twitter_data') WHERE isleaf) \
             SELECT (SELECT count(*) FROM twitter_data), \
             (SELECT sum(pg_total_relation_size(relid))::bigint FROM leaves), \
             (SELECT sum(pg_relation_size(relid))::bigint FROM leaves), \
             (SELECT coalesce(sum(pg_total_relation_size(NULLIF(reltoastrelid, 0))), 0)::bigint \
                FROM pg_class WHERE oid IN (SELECT relid FROM leaves)), \
             (SELECT sum(pg_indexes_size(relid))::bigint FROM leaves), \
             (SELECT avg(pg_column_size(raw))::float8 FROM twitter_data), \
             (SELECT avg(octet_length(raw::text))::float8 FROM twitter_data), \
             pg_total_relation_size('twitter_users'), (SELECT count(*) FROM twitter_users)",
        )
        .await;
        let each = conn
            .query_all_raw(Statement::from_string(
                conn.get_database_backend(),
                "SELECT indexrelid::regclass::text, \
                        (SELECT sum(pg_relation_size(relid))::bigint FROM pg_partition_tree(indexrelid)) \
                   FROM pg_index WHERE indrelid = 'twitter_data'::regclass ORDER BY 2 DESC",
            ))
            .await
            .unwrap();
        let get = |i| row.try_get_by_index::<i64>(i).unwrap();
        Self {
            rows: get(0),
            total: get(1),
            heap: get(2),
            toast: get(3),
            indexes: get(4),
            each_index: each.iter().map(|r| (r.try_get_by_index(0).unwrap(), r.try_get_by_index(1).unwrap())).collect(),
            raw_stored: row.try_get_by_index(5).unwrap(),
            raw_text: row.try_get_by_index(6).unwrap(),
            users: get(7),
            user_rows: get(8),
        }
    }

    fn print(&self, posts: u64) {
        assert_eq!(self.rows as u64, posts);
        let per = |bytes: i64| bytes as f64 / self.rows as f64;
        println!("Disk bytes per post after the insert ({} rows, before any update):", self.rows);
        println!("| part | bytes/post |");
        println!("|---|---|");
        println!("| twitter_data total (pg_total_relation_size) | {:.0} |", per(self.total));
        // The free-space and visibility maps are the rest of the total.
        let maps = self.total - self.heap - self.toast - self.indexes;
        println!("| heap (main fork) | {:.0} |", per(self.heap));
        println!("| TOAST (with its index) | {:.0} |", per(self.toast));
        println!("| free-space and visibility maps | {:.0} |", per(maps));
        println!("| all indexes (pg_indexes_size) | {:.0} |", per(self.indexes));
        for (index, bytes) in &self.each_index {
            println!("| - {index} | {:.0} |", per(*bytes));
        }
        println!("| `raw` stored (avg pg_column_size) | {:.0} |", self.raw_stored);
        println!("| `raw` as JSON text (avg octet_length) | {:.0} |", self.raw_text);
        println!(
            "twitter_users: {} authors in {} bytes ({:.0} per author; it grows with authors, not posts)",
            self.user_rows,
            self.users,
            self.users as f64 / self.user_rows.max(1) as f64
        );
    }
}

async fn one(conn: &DatabaseConnection, sql: &str) -> QueryResult {
    conn.query_one_raw(Statement::from_string(conn.get_database_backend(), sql)).await.unwrap().unwrap()
}

async fn text(conn: &DatabaseConnection, sql: &str) -> String {
    one(conn, sql).await.try_get_by_index(0).unwrap()
}
