//! The inserter against `COPY`, in one run: N synthetic X stream lines are produced to a real broker, the
//! release `inserter` binary drains them into `twitter_data`, and the same rows (mapped by the same code) are
//! loaded with `COPY` into an identical table (`LIKE twitter_data INCLUDING ALL`: same indexes, same checks).
//!
//!     cargo bench -p inserter --bench drain -- [--records 1000000] [--partitions 4] [--batch-size 10000]
//!         [--text-bytes N]
//!
//! `--text-bytes` pads each post's text to about N bytes (e.g. 400000: records near the scraper's 900 kB
//! limit), to see memory stay bounded by `BATCH_BYTES` whatever the records' sizes.
//!
//! Prints rows/s for both, their ratio, and the inserter's peak RSS.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use entity::twitter_data;
use inserter::batch::{Batch, Routes};
use inserter::mapping::twitter;
use inserter::record::ConsumedRecord;
use inserter::writer;
use sea_orm::sqlx::{Connection, postgres::PgConnection};
use sea_orm::{ActiveModelTrait, ActiveValue, ConnectionTrait, IdenStatic, Iterable, Statement, Value};
use support::Rig;
use testkit::unique_name;

struct Args {
    records: u64,
    partitions: i32,
    batch_size: u32,
    text_bytes: usize,
}

fn args() -> Option<Args> {
    // Test runners (`cargo nextest run --all-targets`) ask every bench target for its tests: it has none.
    if std::env::args().any(|arg| arg == "--list") {
        return None;
    }
    let mut args = Args { records: 1_000_000, partitions: 4, batch_size: 10_000, text_bytes: 0 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value =
            || it.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or_else(|| panic!("{flag} needs a number"));
        match flag.as_str() {
            "--records" => args.records = value(),
            "--partitions" => args.partitions = value() as i32,
            "--batch-size" => args.batch_size = value() as u32,
            "--text-bytes" => args.text_bytes = value() as usize,
            "--bench" => {}
            other => panic!("unknown flag {other}; see the file's header"),
        }
    }
    Some(args)
}

#[tokio::main]
async fn main() {
    let Some(args) = args() else { return };
    let rig = Rig::start(args.partitions).await;
    eprintln!("producing {} records to {} partitions...", args.records, args.partitions);
    let started = Instant::now();
    for chunk in (1..=args.records).collect::<Vec<_>>().chunks(100_000) {
        let messages = chunk.iter().map(|id| {
            let mut message = support::tweet_message(*id);
            message.value = Some(line(*id, args.text_bytes).into_bytes());
            message
        });
        rig.broker.produce(&rig.topic, messages).await.unwrap();
    }
    eprintln!("produced in {:.1?}", started.elapsed());

    let (inserter_rate, peak_rss_kib) = drain(&rig, &args).await;
    let copy_rate = copy_baseline(&rig, &args).await;
    let writer_rate = writer_alone(&rig, &args).await;

    println!("records:            {}", args.records);
    println!("inserter:           {inserter_rate:>10.0} rows/s (batch size {})", args.batch_size);
    println!(
        "writer alone:       {writer_rate:>10.0} rows/s (decode + write, no broker: {:.2}x COPY)",
        writer_rate / copy_rate
    );
    println!("COPY (same rows):   {copy_rate:>10.0} rows/s");
    println!("ratio:              {:>10.2}x COPY", inserter_rate / copy_rate);
    println!(
        "inserter peak RSS:  {:>10.1} MiB (BATCH_BYTES default; text of {} bytes)",
        peak_rss_kib as f64 / 1024.0,
        args.text_bytes
    );
}

/// Runs the release inserter until every record's offset is stored; rows/s is measured from its first
/// committed batch to its last, so that process start and group join are not counted.
async fn drain(rig: &Rig, args: &Args) -> (f64, u64) {
    let group = unique_name("bench");
    let batch_size = args.batch_size.to_string();
    let mut inserter =
        rig.inserter(&group, &["--exit-when-idle", "3s", "--batch-size", &batch_size, "--batch-timeout", "1s"]);
    let stored =
        format!("SELECT coalesce(sum(next_offset), 0)::bigint FROM kafka_offsets WHERE consumer_group = '{group}'");
    let mut first: Option<(Instant, i64)> = None;
    let mut peak_rss = 0;
    let total = args.records as i64;
    loop {
        peak_rss = peak_rss.max(peak_rss_kib(inserter.pid()));
        let now = support::count(rig.conn(), &stored).await;
        if now > 0 && first.is_none() {
            first = Some((Instant::now(), now));
        }
        if now >= total {
            break;
        }
        assert!(inserter.log().len() < 50_000_000, "runaway log");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (t0, s0) = first.expect("some batch committed");
    let rate = (total - s0) as f64 / t0.elapsed().as_secs_f64();
    let status = inserter.wait(Duration::from_secs(60)).await.unwrap();
    assert!(status.success(), "{}", inserter.log());
    assert_eq!(support::count(rig.conn(), "SELECT count(*) FROM twitter_data").await, total);
    (rate, peak_rss)
}

/// The inserter's decode and write path on its own, batch after batch in this process, into a fresh
/// database: what the end-to-end figure would be if the broker and the consumer cost nothing.
async fn writer_alone(rig: &Rig, args: &Args) -> f64 {
    let db = rig.pg.migrated_database::<migration::Migrator>().await.unwrap();
    let routes = Routes { tweets_topic: rig.topic.clone(), ..Routes::default() };
    let started = Instant::now();
    let ids: Vec<u64> = (1..=args.records).collect();
    for (n, chunk) in ids.chunks(args.batch_size as usize).enumerate() {
        let records = chunk.iter().map(|id| ConsumedRecord {
            topic: rig.topic.clone(),
            partition: 0,
            offset: *id as i64,
            key: Some(id.to_string().into_bytes()),
            payload: Some(line(*id, args.text_bytes).into_bytes()),
            headers: vec![
                ("source".into(), Some(b"x.sample".to_vec())),
                ("scraped_at".into(), Some(b"2025-06-01T12:00:05Z".to_vec())),
            ],
            timestamp: None,
        });
        let mut batch = Batch::decode(records.collect::<Vec<_>>(), &routes);
        writer::write(&db.conn, "bench", &mut batch).await.unwrap_or_else(|e| panic!("batch {n}: {e}"));
    }
    let rate = args.records as f64 / started.elapsed().as_secs_f64();
    assert_eq!(support::count(&db.conn, "SELECT count(*) FROM twitter_data").await, args.records as i64);
    rate
}

/// Post `id`'s stream line, its text padded to about `text_bytes`.
fn line(id: u64, text_bytes: usize) -> String {
    let line = support::tweet_line(id);
    if text_bytes == 0 {
        return line;
    }
    line.replacen(&format!("\"text\":\"post {id} "), &format!("\"text\":\"post {id} {} ", "x".repeat(text_bytes)), 1)
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Maps the same lines with the inserter's own mapping, renders them as COPY text before the clock starts,
/// and times only the `COPY` into an identical table.
async fn copy_baseline(rig: &Rig, args: &Args) -> f64 {
    let db = rig.conn();
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        "CREATE TABLE twitter_data_copy (LIKE twitter_data INCLUDING ALL)",
    ))
    .await
    .unwrap();
    let scraped_at = chrono::DateTime::parse_from_rfc3339("2025-06-01T12:00:05Z").unwrap().to_utc();
    let mut columns: Vec<twitter_data::Column> = Vec::new();
    let mut text = String::new();
    for id in 1..=args.records {
        let row = twitter::map(line(id, args.text_bytes).as_bytes(), "x.sample", scraped_at).unwrap().tweet;
        if columns.is_empty() {
            columns = twitter_data::Column::iter().filter(|c| !matches!(row.get(*c), ActiveValue::NotSet)).collect();
        }
        let fields: Vec<String> = columns
            .iter()
            .map(|c| match row.get(*c) {
                ActiveValue::Set(v) | ActiveValue::Unchanged(v) => copy_field(&v),
                ActiveValue::NotSet => r"\N".into(),
            })
            .collect();
        text.push_str(&fields.join("\t"));
        text.push('\n');
    }
    let names: Vec<&str> = columns.iter().map(|c| c.as_str()).collect();
    let mut conn = PgConnection::connect(&rig.db.url).await.unwrap();
    let started = Instant::now();
    let mut copy =
        conn.copy_in_raw(&format!("COPY twitter_data_copy ({}) FROM STDIN", names.join(", "))).await.unwrap();
    for chunk in text.as_bytes().chunks(1 << 20) {
        copy.send(chunk).await.unwrap();
    }
    let copied = copy.finish().await.unwrap();
    let rate = copied as f64 / started.elapsed().as_secs_f64();
    assert_eq!(copied, args.records);
    rate
}

/// One value in COPY's text format.
fn copy_field(value: &Value) -> String {
    let text = match value {
        Value::Bool(Some(b)) => b.to_string(),
        Value::Int(Some(n)) => n.to_string(),
        Value::BigInt(Some(n)) => n.to_string(),
        Value::String(Some(s)) => s.clone(),
        Value::ChronoDateTimeUtc(Some(t)) => t.to_rfc3339(),
        Value::Json(Some(j)) => j.to_string(),
        Value::Array(_, Some(items)) => {
            let items: Vec<String> = items
                .iter()
                .map(|item| match item {
                    Value::String(Some(s)) => format!("\"{}\"", s.replace('\\', r"\\").replace('"', "\\\"")),
                    other => panic!("unexpected array item {other:?}"),
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
        // A value equal to its own null is a null of its type.
        other if *other == other.as_null() => return r"\N".into(),
        other => panic!("no COPY rendering for {other:?}"),
    };
    text.replace('\\', r"\\").replace('\t', r"\t").replace('\n', r"\n").replace('\r', r"\r")
}
