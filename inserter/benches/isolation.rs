//! The cost of isolating a poison record, in one run: batches of N new X posts written by the real writer
//! into a real Postgres, clean ones against ones holding a single record the database refuses, measured
//! alternately so both see the same server state.
//!
//!     cargo bench -p inserter --bench isolation -- [--records 10000] [--rounds 7] [--fsync-off]
//!
//! Two poisons, both refused by a CHECK in `twitter_data`: one by an author other posts of the batch share
//! (its author row lands from another record), one by an author of its own (its author row must not land).
//! Either way the batch's records are split in halves, each part decoded and written on its own, until the
//! poison stands alone. Postgres runs with fsync on, as users run it, unless `--fsync-off`. Prints the median
//! time of each kind and its ratio to the clean batch.

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use inserter::batch::{Batch, Routes};
use inserter::record::ConsumedRecord;
use inserter::writer;
use migration::Migrator;
use testkit::Postgres;

struct Args {
    records: u64,
    rounds: u32,
    fsync: bool,
}

fn args() -> Option<Args> {
    // Test runners (`cargo nextest run --all-targets`) ask every bench target for its tests: it has none.
    if std::env::args().any(|arg| arg == "--list") {
        return None;
    }
    let mut args = Args { records: 10_000, rounds: 7, fsync: true };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value =
            || it.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or_else(|| panic!("{flag} needs a number"));
        match flag.as_str() {
            "--records" => args.records = value(),
            "--rounds" => args.rounds = value() as u32,
            "--fsync-off" => args.fsync = false,
            "--bench" => {}
            other => panic!("unknown flag {other}; see the file's header"),
        }
    }
    Some(args)
}

#[derive(Clone, Copy, Debug)]
enum Poison {
    None,
    /// A post with a negative like count, its author shared with clean posts.
    Check,
    /// The same, by an author no other post has.
    CheckWithOwnAuthor,
}

fn record(offset: i64, payload: String) -> ConsumedRecord {
    ConsumedRecord {
        topic: "twitter.tweets".into(),
        partition: 0,
        offset,
        key: None,
        payload: Some(payload.into_bytes()),
        headers: vec![
            ("source".into(), Some(b"x.sample".to_vec())),
            ("scraped_at".into(), Some(b"2025-06-01T12:00:05Z".to_vec())),
        ],
        timestamp: None,
    }
}

/// `records` new posts starting at id `first`, with `poison` in the middle.
fn batch(first: u64, records: u64, poison: Poison) -> Batch {
    let middle = first + records / 2;
    let lines = (first..first + records).map(|id| {
        let line = support::tweet_line(id);
        match poison {
            _ if id != middle => line,
            Poison::None => line,
            Poison::Check => line.replacen(r#""like_count":"#, r#""like_count":-"#, 1),
            Poison::CheckWithOwnAuthor => line
                .replacen(r#""like_count":"#, r#""like_count":-"#, 1)
                .replace(&format!("\"{}\"", 1_000 + id % 50), "\"999999\""),
        }
    });
    Batch::decode(lines.enumerate().map(|(i, line)| record((first as i64) + i as i64, line)), &Routes::default())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::main]
async fn main() {
    let Some(args) = args() else { return };
    // A cluster that does not force fsync off on its command line, which `ALTER SYSTEM` cannot override.
    let pg = Postgres::start_durable().await.unwrap();
    let migrated = pg.migrated_database::<Migrator>().await.unwrap();
    support::set_durability(&migrated.conn, &migrated.url, args.fsync).await;
    let db = migrated.conn;
    let durability = if args.fsync { "on" } else { "off" };

    let kinds = [Poison::None, Poison::Check, Poison::CheckWithOwnAuthor];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); kinds.len()];
    let mut next_id = 1;
    // Round 0 warms the server and is not counted.
    for round in 0..=args.rounds {
        for (kind, poison) in kinds.iter().enumerate() {
            let mut batch = batch(next_id, args.records, *poison);
            next_id += args.records;
            let started = Instant::now();
            let written = writer::write(&db, "bench", &mut batch).await.unwrap();
            let elapsed = started.elapsed();
            let expected = usize::from(!matches!(poison, Poison::None));
            assert_eq!(written.dead_letters(), expected, "{poison:?}");
            if round > 0 {
                times[kind].push(elapsed);
            }
        }
    }
    let clean = median(times[0].clone());
    println!("batches of {} new posts, fsync {durability}, median of {} rounds:", args.records, args.rounds);
    println!("  clean:                               {:>8.1?}", clean);
    for (kind, label) in [(1, "one poison, shared author"), (2, "one poison, own author")] {
        let poisoned = median(times[kind].clone());
        println!(
            "  {label:<36} {:>8.1?}  {:.2}x the clean batch",
            poisoned,
            poisoned.as_secs_f64() / clean.as_secs_f64()
        );
    }
}
