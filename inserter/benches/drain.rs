//! The inserter against `COPY`, a Python peer and Debezium's JDBC sink, in one run, on the same N synthetic X
//! stream lines produced once to a real broker, all into the same Postgres database, each into its own table:
//!
//! 0. The broker's read ceiling: one rdkafka consumer reading every record and discarding it, no database.
//!    No end-to-end figure can pass it, so it says how much of a gap to `COPY` is the broker's.
//! 1. The COPY limit: the rows, mapped by the inserter's own code and rendered as COPY text before the clock
//!    starts, loaded with one `COPY` into `twitter_data_copy` (`LIKE twitter_data INCLUDING ALL`: same
//!    indexes, same checks).
//! 2. The release `inserter` binary draining the topic into `twitter_data`, timed from its first committed
//!    batch to its last, so that process start and the group join are not counted. Its RSS is sampled every
//!    second over the drain, and its peak (`VmHWM`) is read too.
//! 3. The Python peer (`--peer PATH`, by default `../shared/peers/copy_inserter.py` from the workspace root):
//!    confluent-kafka batches, `COPY` into a staging table, `INSERT .. SELECT .. ON CONFLICT` into
//!    `twitter_data_peer`. It reads the same topic in a consumer group of its own, and times itself from the
//!    first record it consumes. It is skipped, with a message, when the file is absent or when `python3`
//!    cannot import `confluent_kafka` and `psycopg` (`scripts/bench-peer.sh` installs them).
//! 4. Debezium's JDBC sink connector on Kafka Connect, upserting the same records into `twitter_data_jdbc`
//!    (`inserter/benches/drain/jdbc_sink.rs` says how, and what it writes); skipped, with a message, until
//!    `scripts/bench-peer.sh` has installed it.
//!
//! 5. With `--members 1,2,4` (instead of 2, 3 and 4): for each member count N, N release `inserter` processes in
//!    one new consumer group drain the topic into a fresh database, timed from the group's first committed
//!    batch to its last. Each member's rows are its `inserter_rows_written_total{table="twitter_data"}`.
//!    CPU seconds over each drain are read from `/proc/PID/stat` (utime + stime) for the inserters, Postgres
//!    (the postmaster, its children, and those it reaped), the broker and this process, and from
//!    `/proc/stat` for the whole machine, so that the figures say which of them runs out of cores first.
//!    Before them, one inserter drains the topic into a database whose `twitter_data` is a plain table (the
//!    partitioning migration undone): the partitioned table's upsert against the plain one's, in one run.
//!
//! Post ids are snowflakes of the last minutes, as X's are, so the rows land in their day's partition.
//!
//! ```text
//! cargo bench -p inserter --bench drain -- [--records 1000000] [--partitions 4] [--batch-size N]
//!     [--text-bytes N] [--fsync-off] [--peer PATH] [--writer-alone] [--members 1,2,4]
//! ```
//!
//! Postgres runs with `fsync`, `full_page_writes` and `synchronous_commit` on, as users run it; `--fsync-off`
//! turns `fsync` and `full_page_writes` off (the test clusters' setting). A `CHECKPOINT` precedes each timed
//! run, so that none pays for the previous one's dirty pages.
//!
//! The broker is Apache Kafka (one KRaft node of the bench's own, as `scripts/install-kafka.sh` installs it),
//! and the records are produced in batches, as the scraper produces them.
//!
//! Without `--batch-size` the inserter runs with its own batching defaults (`BATCH_SIZE`, `BATCH_BYTES`,
//! `BATCH_TIMEOUT`, or those set in the environment). `--text-bytes` pads each post's text to about N bytes
//! (e.g. 400000: records near the scraper's 900 kB limit), to see memory stay bounded by `BATCH_BYTES`
//! whatever the records' sizes. `--writer-alone` also times the inserter's decode and write path (the next batch decoded beside the write) in this
//! process, with no broker and no consumer, into a database of its own.
//!
//! Prints rows/s of each, the ratios to COPY, inserter / peer and inserter / JDBC sink, and the inserter's
//! memory: its peak RSS and its RSS over the drain, with the min and max after the first 10 % of it.

#[path = "drain/jdbc_sink.rs"]
mod jdbc_sink;
#[path = "../tests/it/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use entity::twitter_data;
use inserter::mapping::twitter;
use rdkafka::ClientConfig;
use sea_orm::sqlx::{Connection, postgres::PgConnection};
use sea_orm::{ActiveModelTrait, ActiveValue, ConnectionTrait, IdenStatic, Iterable, Value};
use support::{Rig, Schema};
use testkit::{Broker, Postgres, TestDatabase, TestMessage, unique_name};

struct Args {
    records: u64,
    partitions: i32,
    /// `None`: the inserter's own default.
    batch_size: Option<u32>,
    text_bytes: usize,
    fsync: bool,
    peer: PathBuf,
    writer_alone: bool,
    /// `--members 1,2,4`: the member counts of the group runs; empty: the single-inserter comparison.
    members: Vec<usize>,
}

fn args() -> Option<Args> {
    // Test runners (`cargo nextest run --all-targets`) ask every bench target for its tests: it has none.
    if std::env::args().any(|arg| arg == "--list") {
        return None;
    }
    let mut args = Args {
        records: 1_000_000,
        partitions: 4,
        batch_size: None,
        text_bytes: 0,
        fsync: true,
        // `../shared/peers/copy_inserter.py` from the workspace root.
        peer: Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().join("shared/peers/copy_inserter.py"),
        writer_alone: false,
        members: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let number = |value: String| value.parse::<u64>().unwrap_or_else(|_| panic!("{flag} needs a number"));
        match flag.as_str() {
            "--records" => args.records = number(value()),
            "--partitions" => args.partitions = number(value()) as i32,
            "--batch-size" => args.batch_size = Some(number(value()) as u32),
            "--text-bytes" => args.text_bytes = number(value()) as usize,
            "--fsync-off" => args.fsync = false,
            "--peer" => args.peer = PathBuf::from(value()),
            "--writer-alone" => args.writer_alone = true,
            "--members" => {
                args.members = value().split(',').map(|n| number(n.trim().to_owned()) as usize).collect();
            }
            "--bench" => {}
            other => panic!("unknown flag {other}; see the file's header"),
        }
    }
    let most = args.members.iter().copied().max().unwrap_or(0);
    assert!(most as i32 <= args.partitions, "--members {most} needs --partitions {most} or more");
    Some(args)
}

#[tokio::main]
async fn main() {
    let Some(args) = args() else { return };
    let pg = Postgres::start_durable().await.unwrap();
    let broker = Broker::start().await.unwrap();
    let rig = Rig::start_in(pg, args.partitions, Schema::Migrated, broker).await;
    partitions_for_the_posts(&rig.db).await;
    support::set_durability(rig.conn(), &rig.db.url, args.fsync).await;
    let fsync = if args.fsync { "on (synchronous_commit on)" } else { "off (full_page_writes off)" };

    eprintln!("producing {} records to {} partitions...", args.records, args.partitions);
    let started = Instant::now();
    produce(&rig, &args).await;
    eprintln!("produced in {:.1?}", started.elapsed());
    eprintln!("broker read limit...");
    let read_rate = broker_read(&rig, &args).await;

    eprintln!("COPY limit...");
    let copy_rate = copy_baseline(&rig, &args).await;
    if !args.members.is_empty() {
        return scale(&rig, &args, fsync, copy_rate, read_rate).await;
    }
    eprintln!("inserter...");
    let drained = drain(&rig, &args, &rig.db, 1).await;
    eprintln!("python peer...");
    let peer = peer(&rig, &args).await;
    eprintln!("Debezium JDBC sink...");
    let sink = jdbc_sink::run(&rig, &args).await;
    let writer_rate = if args.writer_alone {
        eprintln!("writer alone...");
        Some(writer_alone(&rig, &args).await)
    } else {
        None
    };

    let mib = |kib: u64| kib as f64 / 1024.0;
    let batch = match args.batch_size {
        Some(n) => format!("--batch-size {n}"),
        None => "the inserter's default batching".to_owned(),
    };
    let text = if args.text_bytes > 0 { format!(", text of {} bytes", args.text_bytes) } else { String::new() };
    println!();
    println!(
        "records {}, partitions {}, fsync {fsync}, Apache Kafka (one KRaft node), {batch}{text}",
        args.records, args.partitions
    );
    println!("COPY limit       {copy_rate:>8.0} rows/s  1.00x");
    println!(
        "broker read      {read_rate:>8.0} rows/s  {:.2}x COPY  (one rdkafka consumer, no database: the broker's ceiling)",
        read_rate / copy_rate
    );
    println!("inserter         {:>8.0} rows/s  {:.2}x COPY", drained.rate, drained.rate / copy_rate);
    match &peer {
        Peer::Ran { rate, peak_rss_kib } => {
            println!(
                "python peer      {rate:>8.0} rows/s  {:.2}x COPY  (peak RSS {:.1} MiB)",
                rate / copy_rate,
                mib(*peak_rss_kib)
            );
            println!("inserter / peer                  {:.2}x", drained.rate / rate);
        }
        Peer::Skipped(why) => println!("python peer      skipped: {why}"),
        Peer::Failed(why) => println!("python peer      FAILED: {why}"),
    }
    match &sink {
        jdbc_sink::Sink::Ran { rate, cpu_us: (connect, postgres) } => {
            println!(
                "JDBC sink        {rate:>8.0} rows/s  {:.2}x COPY  (Debezium, upsert; CPU a row: Connect {connect:.0} us, \
                 postgres {postgres:.0} us)",
                rate / copy_rate
            );
            println!("inserter / JDBC sink             {:.2}x", drained.rate / rate);
        }
        jdbc_sink::Sink::Skipped(why) => println!("JDBC sink        skipped: {why}"),
        jdbc_sink::Sink::Failed(why) => println!("JDBC sink        FAILED: {why}"),
    }
    if let Some(rate) = writer_rate {
        println!(
            "writer alone     {rate:>8.0} rows/s  {:.2}x COPY  (the next batch decoded beside the write, as in the inserter; no broker)",
            rate / copy_rate
        );
    }
    println!("inserter peak RSS {:.1} MiB; {}", mib(drained.peak_rss_kib), rss_series(&drained.rss));
}

/// `--members`: for each member count, that many inserters in one new group drain the topic into a fresh
/// database; prints rows/s in total and by member, the ratio to the first count's total, and the CPU seconds
/// of the inserters, of Postgres, of the broker and of the whole machine over each drain.
async fn scale(rig: &Rig, args: &Args, fsync: &str, copy_rate: f64, read_rate: f64) {
    let load_average = || {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap();
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    };
    // The baseline of the partitioned table: one inserter into `twitter_data` as a plain table (every
    // migration, then the `down` of the partitioning and of those after it), the same rows and indexes.
    eprintln!("1 inserter into the unpartitioned table (load average {})...", load_average());
    let plain = rig.pg.migrated_database::<migration::Migrator>().await.unwrap();
    let names: Vec<String> =
        <migration::Migrator as migration::MigratorTrait>::migrations().iter().map(|m| m.name().to_owned()).collect();
    let partitioning = names.iter().position(|name| name == "m20261201_000010_partitioned_posts").unwrap();
    let undone = &names[partitioning..];
    <migration::Migrator as migration::MigratorTrait>::down(&plain.conn, Some(undone.len() as u32)).await.unwrap();
    // Recorded as applied again, or the inserter would refuse a schema migrations behind. Its partition
    // maintenance then fails (the function went with the partitioning) and logs so; nothing else changes.
    for version in undone {
        let applied = format!(
            "INSERT INTO seaql_migrations (version, applied_at) VALUES ('{version}', extract(epoch FROM now())::bigint)"
        );
        plain.conn.execute_unprepared(&applied).await.unwrap();
    }
    let unpartitioned = drain(rig, args, &plain, 1).await;
    let mut runs = Vec::new();
    for &members in &args.members {
        let load = load_average();
        eprintln!("{members} inserter(s) in one group (load average {load})...");
        let db = rig.pg.migrated_database::<migration::Migrator>().await.unwrap();
        partitions_for_the_posts(&db).await;
        runs.push((members, load, drain(rig, args, &db, members).await));
    }
    let records = args.records as f64;
    let us = |seconds: f64| seconds * 1e6 / records;
    println!();
    println!(
        "records {}, partitions {}, fsync {fsync}, Apache Kafka (one KRaft node), {}",
        args.records,
        args.partitions,
        match args.batch_size {
            Some(n) => format!("--batch-size {n}"),
            None => "the inserter's default batching".to_owned(),
        }
    );
    println!("COPY limit   {copy_rate:>8.0} rows/s (one backend, into an unpartitioned copy of the table)");
    println!(
        "unpartitioned, 1 member {:>8.0} rows/s; partitioned ({} member(s)) / unpartitioned (1): {:.2}x",
        unpartitioned.rate,
        runs[0].0,
        runs[0].2.rate / unpartitioned.rate
    );
    println!("broker read  {read_rate:>8.0} rows/s (one rdkafka consumer, no database)");
    println!(
        "members | total rows/s | x 1st | x COPY | per member rows/s | wall s | all writing after s \
         | CPU s (µs/row): inserters | postgres | broker | bench | machine, busy cores | load before"
    );
    let base = runs[0].2.rate;
    for (members, load, run) in &runs {
        let per: Vec<String> =
            run.member_rows.iter().map(|rows| format!("{:.0}", *rows as f64 / run.seconds)).collect();
        let written: u64 = run.member_rows.iter().sum();
        let inserters: f64 = run.cpu.inserters.iter().sum();
        let cpu = |s: f64| format!("{s:.1} ({:.0})", us(s));
        println!(
            "{members} | {:.0} | {:.2} | {:.2} | {} (rows {written}) | {:.1} | {:.1} | {} [{}] | {} | {} | {} | {}, {:.2} | {load}",
            run.rate,
            run.rate / base,
            run.rate / copy_rate,
            per.join(" "),
            run.seconds,
            run.all_writing_after,
            cpu(inserters),
            run.cpu.inserters.iter().map(|s| format!("{s:.1}")).collect::<Vec<_>>().join(" "),
            cpu(run.cpu.postgres),
            cpu(run.cpu.broker),
            cpu(run.cpu.bench),
            cpu(run.cpu.machine),
            run.cpu.machine / run.seconds,
        );
    }
}

/// Produces the N lines to the rig's topic, keyed by post id, in batches as the scraper does.
async fn produce(rig: &Rig, args: &Args) {
    let ids = post_ids(args.records);
    for chunk in ids.chunks(100_000) {
        let messages = chunk.iter().map(|id| TestMessage {
            value: Some(line(*id, args.text_bytes).into_bytes()),
            ..support::tweet_message(*id)
        });
        rig.broker.produce(&rig.topic, messages).await.unwrap();
    }
}

/// The broker's read ceiling: one rdkafka consumer, in a group of its own, reading every record and
/// discarding it, timed from its first record to its last.
async fn broker_read(rig: &Rig, args: &Args) -> f64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", rig.broker.bootstrap_servers())
        .set("group.id", unique_name("read"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[&rig.topic]).unwrap();
    let total = args.records;
    tokio::task::spawn_blocking(move || {
        let mut read = 0;
        let mut first = None;
        let mut last_progress = Instant::now();
        while read < total {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(_)) => {
                    first.get_or_insert_with(Instant::now);
                    read += 1;
                    last_progress = Instant::now();
                }
                Some(Err(e)) => panic!("broker read: {e}"),
                None => assert!(last_progress.elapsed() < Duration::from_secs(120), "broker read: {read} of {total}"),
            }
        }
        (total - 1) as f64 / first.expect("a record").elapsed().as_secs_f64()
    })
    .await
    .unwrap()
}

/// A run of the inserter (one member or several in one group): rows/s in total, each member's rows, CPU
/// over the drain, and the RSS of the first member: its peak, and samples (progress from 0 to 1, KiB).
struct Drained {
    rate: f64,
    /// The drain's wall time, from the first committed batch to the last.
    seconds: f64,
    /// Each member's `inserter_rows_written_total{table="twitter_data"}` at the end.
    member_rows: Vec<u64>,
    /// Seconds from the first committed batch until every member had written rows.
    all_writing_after: f64,
    cpu: Cpu,
    peak_rss_kib: u64,
    rss: Vec<(f64, u64)>,
}

/// Runs the release inserter as `members` processes in one new consumer group into `db`, until every
/// record's offset is stored there; rows/s is measured from the first committed batch to the last, so that
/// process start and group join are not counted. Then each member is stopped with SIGTERM.
async fn drain(rig: &Rig, args: &Args, db: &TestDatabase, members: usize) -> Drained {
    checkpoint(rig).await;
    let group = unique_name("bench");
    let batch_size = args.batch_size.map(|n| n.to_string());
    let addrs: Vec<String> = (0..members).map(|_| support::free_addr().to_string()).collect();
    let mut inserters: Vec<_> = addrs
        .iter()
        .map(|addr| {
            let mut flags = vec!["--database-url", &db.url, "--metrics-addr", addr];
            if let Some(n) = &batch_size {
                flags.extend(["--batch-size", n]);
            }
            rig.inserter_with_batch_defaults(&group, &flags)
        })
        .collect();
    let logs = |inserters: &[testkit::Process]| inserters.iter().map(|p| p.log()).collect::<Vec<_>>().join("\n");
    let rows = |addr: &str| {
        let metrics = support::http_get(addr, "/metrics");
        support::metric(&metrics, "inserter_rows_written_total{table=\"twitter_data\"}").unwrap_or(0.0) as u64
    };
    let stored =
        format!("SELECT coalesce(sum(next_offset), 0)::bigint FROM kafka_offsets WHERE consumer_group = '{group}'");
    let total = args.records as i64;
    let mut first: Option<(Instant, i64, CpuTicks)> = None;
    let mut all_writing_after = None;
    let mut next_look = Instant::now();
    let mut peak_rss_kib = 0;
    let mut rss = Vec::new();
    let mut next_sample = Instant::now();
    let mut progress = (Instant::now(), 0);
    let pids: Vec<u32> = inserters.iter().map(|p| p.pid()).collect();
    loop {
        peak_rss_kib = peak_rss_kib.max(proc_status_kib(pids[0], "VmHWM:"));
        let now = support::count(&db.conn, &stored).await;
        if now > 0 && first.is_none() {
            first = Some((Instant::now(), now, CpuTicks::now(rig, &pids)));
        }
        if now >= total {
            break;
        }
        if let Some((t0, ..)) = first {
            if all_writing_after.is_none() && Instant::now() >= next_look {
                if addrs.iter().all(|addr| rows(addr) > 0) {
                    all_writing_after = Some(t0.elapsed().as_secs_f64());
                }
                next_look = Instant::now() + Duration::from_millis(250);
            }
            if Instant::now() >= next_sample {
                rss.push((now as f64 / total as f64, proc_status_kib(pids[0], "VmRSS:")));
                next_sample = Instant::now() + Duration::from_secs(1);
            }
        }
        if now > progress.1 {
            progress = (Instant::now(), now);
        }
        for inserter in &mut inserters {
            if let Some(status) = inserter.try_wait().unwrap() {
                panic!("an inserter exited ({status}) with {now} of {total} offsets stored:\n{}", inserter.log());
            }
        }
        assert!(progress.0.elapsed() < Duration::from_secs(120), "no progress for 2 min:\n{}", logs(&inserters));
        assert!(inserters.iter().all(|p| p.log().len() < 50_000_000), "runaway log");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (t0, s0, ticks0) = first.expect("some batch committed");
    let seconds = t0.elapsed().as_secs_f64();
    let cpu = CpuTicks::now(rig, &pids).since(&ticks0);
    let rate = (total - s0) as f64 / seconds;
    let member_rows = addrs.iter().map(|addr| rows(addr)).collect();
    for inserter in &mut inserters {
        inserter.signal(libc::SIGTERM);
    }
    for inserter in &mut inserters {
        let status = inserter.wait(Duration::from_secs(60)).await.unwrap();
        assert!(status.success(), "{}", inserter.log());
    }
    assert_eq!(support::count(&db.conn, "SELECT count(*) FROM twitter_data").await, total);
    Drained {
        rate,
        seconds,
        member_rows,
        all_writing_after: all_writing_after.unwrap_or(seconds),
        cpu,
        peak_rss_kib,
        rss,
    }
}

/// CPU clock ticks used so far, by process: the inserters, Postgres (the postmaster and its children, those
/// reaped included), the broker, this process; and the whole machine's busy ticks (`/proc/stat`).
struct CpuTicks {
    inserters: Vec<u64>,
    postgres: u64,
    broker: u64,
    bench: u64,
    machine: u64,
}

/// CPU clock ticks Postgres used so far: the postmaster and its children, those it reaped included.
fn postgres_ticks(rig: &Rig) -> u64 {
    let postmaster = rig.pg.server_pid().expect("postgres runs");
    let mut postgres = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
        if let Some(stat) = support::proc_stat(pid)
            && (pid == postmaster || stat.ppid == postmaster)
        {
            postgres += stat.own;
            if pid == postmaster {
                postgres += stat.children;
            }
        }
    }
    postgres
}

/// CPU seconds from `then` to `now`, two readings of clock ticks (`/proc/PID/stat`).
fn seconds_between(then: u64, now: u64) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    now.saturating_sub(then) as f64 / hz
}

/// CPU seconds over a drain, from two [`CpuTicks`].
struct Cpu {
    inserters: Vec<f64>,
    postgres: f64,
    broker: f64,
    bench: f64,
    /// Every process of the machine, these and any other.
    machine: f64,
}

impl CpuTicks {
    fn now(rig: &Rig, inserters: &[u32]) -> Self {
        let own = |pid: u32| support::proc_stat(pid).map_or(0, |stat| stat.own);
        let machine = std::fs::read_to_string("/proc/stat").unwrap();
        // cpu  user nice system idle iowait irq softirq steal ...: all but idle and iowait.
        let fields: Vec<u64> =
            machine.lines().next().unwrap().split_whitespace().skip(1).map(|n| n.parse().unwrap()).collect();
        Self {
            inserters: inserters.iter().map(|pid| own(*pid)).collect(),
            postgres: postgres_ticks(rig),
            broker: own(rig.broker.pid().expect("the broker runs")),
            bench: own(std::process::id()),
            machine: fields.iter().take(8).sum::<u64>() - fields[3] - fields[4],
        }
    }

    fn since(&self, earlier: &Self) -> Cpu {
        let s = |now: u64, then: u64| seconds_between(then, now);
        Cpu {
            inserters: self.inserters.iter().zip(&earlier.inserters).map(|(now, then)| s(*now, *then)).collect(),
            postgres: s(self.postgres, earlier.postgres),
            broker: s(self.broker, earlier.broker),
            bench: s(self.bench, earlier.bench),
            machine: s(self.machine, earlier.machine),
        }
    }
}

/// "RSS over the drain (MiB): 95 120 131 ..., after the first 10 %: min .., max .." from `samples`, one a
/// second, folded to the max of every k seconds when there are more than 60.
fn rss_series(samples: &[(f64, u64)]) -> String {
    if samples.is_empty() {
        return "no RSS sample (the drain took under a second)".to_owned();
    }
    let per = samples.len().div_ceil(60);
    let folded: Vec<String> = samples
        .chunks(per)
        .map(|chunk| format!("{:.0}", chunk.iter().map(|s| s.1).max().unwrap() as f64 / 1024.0))
        .collect();
    let every = if per == 1 { "every 1 s".to_owned() } else { format!("max of every {per} s") };
    let later: Vec<u64> = samples.iter().filter(|s| s.0 >= 0.1).map(|s| s.1).collect();
    let spread = match (later.iter().min(), later.iter().max()) {
        (Some(min), Some(max)) => {
            format!("after the first 10 %: min {:.1}, max {:.1} MiB", *min as f64 / 1024.0, *max as f64 / 1024.0)
        }
        _ => "no sample after the first 10 %".to_owned(),
    };
    format!("RSS over the drain (MiB, {every}): {}; {spread}", folded.join(" "))
}

enum Peer {
    Ran { rate: f64, peak_rss_kib: u64 },
    Skipped(String),
    Failed(String),
}

const PEER_TABLE: &str = "twitter_data_peer";

/// Runs the Python peer on the rig's topic in a group of its own, into `twitter_data_peer` next to the
/// inserter's table; its rate is the one it prints.
async fn peer(rig: &Rig, args: &Args) -> Peer {
    if !args.peer.is_file() {
        return Peer::Skipped(format!("{} not found (--peer PATH)", args.peer.display()));
    }
    let import = Command::new("python3").args(["-c", "import confluent_kafka, psycopg"]).output();
    if !import.is_ok_and(|output| output.status.success()) {
        return Peer::Skipped(
            "python3 cannot import confluent_kafka and psycopg; install them with scripts/bench-peer.sh".to_owned(),
        );
    }
    let db = rig.conn();
    db.execute_unprepared(&format!(
        "CREATE TABLE {PEER_TABLE} (LIKE twitter_data INCLUDING ALL); \
         ALTER TABLE {PEER_TABLE} ALTER scraped_at SET DEFAULT now();"
    ))
    .await
    .unwrap();
    checkpoint(rig).await;
    let mut command = Command::new("python3");
    command.arg(&args.peer).args([
        &rig.broker.bootstrap_servers(),
        &rig.topic,
        &unique_name("peer"),
        &rig.db.url,
        &args.records.to_string(),
        PEER_TABLE,
    ]);
    let mut process = rig.spawn("peer", command);
    let inserted =
        format!("SELECT coalesce(max(n_tup_ins), 0) FROM pg_stat_user_tables WHERE relname = '{PEER_TABLE}'");
    let mut peak_rss_kib = 0;
    let mut progress = (Instant::now(), 0);
    let status = loop {
        peak_rss_kib = peak_rss_kib.max(proc_status_kib(process.pid(), "VmHWM:"));
        if let Some(status) = process.try_wait().unwrap() {
            break status;
        }
        let now = support::count(db, &inserted).await;
        if now > progress.1 {
            progress = (Instant::now(), now);
        } else if progress.0.elapsed() > Duration::from_secs(120) {
            process.kill();
            return Peer::Failed(format!("no progress for 2 min at {now} rows; its output:\n{}", process.log()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let output = process.log();
    let rows = support::count(db, &format!("SELECT count(*) FROM {PEER_TABLE}")).await;
    // "copy_inserter: N rows in S s = R rows/s"
    let rate = output
        .lines()
        .find_map(|line| line.strip_prefix("copy_inserter: "))
        .and_then(|rest| rest.split(" = ").nth(1)?.strip_suffix(" rows/s")?.parse::<f64>().ok());
    match rate {
        Some(rate) if status.success() && rows == args.records as i64 => Peer::Ran { rate, peak_rss_kib },
        _ => Peer::Failed(format!("exited {status} with {rows} of {} rows; its output:\n{output}", args.records)),
    }
}

/// The inserter's decode and write path on its own, batch after batch in this process, into a fresh
/// database: what the end-to-end figure would be if the broker and the consumer cost nothing. Batches of
/// `--batch-size`, or of the inserter's default `BATCH_SIZE` (10,000), by count only.
///
/// Uses the inserter's internal API (`Batch::decode`, `writer::write`), which is why it is behind
/// `--writer-alone` and all in this one function.
async fn writer_alone(rig: &Rig, args: &Args) -> f64 {
    use inserter::batch::{Batch, Routes};
    use inserter::record::ConsumedRecord;
    use inserter::writer;

    let db = rig.pg.migrated_database::<migration::Migrator>().await.unwrap();
    checkpoint(rig).await;
    let routes = Routes::default().with_topic("tweets", rig.topic.clone());
    // The records are made before the clock starts; then, as in the inserter, the next batch is decoded on
    // a blocking thread while the current one is written.
    let batch_size = args.batch_size.unwrap_or(10_000) as usize;
    let mut batches: Vec<Vec<ConsumedRecord>> = (1..=args.records)
        .collect::<Vec<_>>()
        .chunks(batch_size)
        .map(|chunk| {
            chunk
                .iter()
                .map(|id| {
                    let payload = line(*id, args.text_bytes).into_bytes();
                    support::consumed_tweet(&rig.topic, *id as i64, id.to_string(), payload, "2025-06-01T12:00:05Z")
                })
                .collect()
        })
        .collect();
    batches.reverse();
    let decode = |records: Vec<ConsumedRecord>| {
        let routes = routes.clone();
        tokio::task::spawn_blocking(move || Batch::decode(records, &routes))
    };
    let started = Instant::now();
    let mut next = batches.pop().map(decode);
    let mut n = 0;
    while let Some(decoding) = next.take() {
        let mut batch = decoding.await.unwrap();
        next = batches.pop().map(decode);
        writer::write(&db.conn, "bench", &mut batch).await.unwrap_or_else(|e| panic!("batch {n}: {e}"));
        n += 1;
    }
    let rate = args.records as f64 / started.elapsed().as_secs_f64();
    assert_eq!(support::count(&db.conn, "SELECT count(*) FROM twitter_data").await, args.records as i64);
    rate
}

/// `records` post ids as X gives them: snowflakes of the last moments, 2 ms apart, ending now. So the posts land
/// in the partition of their day (today's, or yesterday's, which [`partitions_for_the_posts`] makes), as real
/// ones do, not in the default partition that ids from 1 would fill.
fn post_ids(records: u64) -> Vec<u64> {
    let first = support::x_id_ago(2 * records);
    (0..records).map(|i| first + ((2 * i) << 22)).collect()
}

/// Makes yesterday's `twitter_data` partition, which a fresh database lacks (its partitions start today) and
/// posts of the last minutes may belong to.
async fn partitions_for_the_posts(db: &TestDatabase) {
    let sql = "SELECT ingest_partition_create('twitter_data', now() - interval '1 day', now())";
    db.conn.execute_unprepared(sql).await.unwrap();
}

/// Post `id`'s stream line, its text padded to about `text_bytes`.
fn line(id: u64, text_bytes: usize) -> String {
    let line = support::tweet_line(id);
    if text_bytes == 0 {
        return line;
    }
    line.replacen(&format!("\"text\":\"post {id} "), &format!("\"text\":\"post {id} {} ", "x".repeat(text_bytes)), 1)
}

/// A `/proc/PID/status` figure in KiB (`VmHWM:`, the peak RSS; `VmRSS:`, the RSS now); 0 once it exited.
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Flushes the dirty pages of the previous run, so that the next one does not pay for them.
async fn checkpoint(rig: &Rig) {
    rig.conn().execute_unprepared("CHECKPOINT").await.unwrap();
}

/// Maps the same lines with the inserter's own mapping, renders them as COPY text before the clock starts,
/// and times only the `COPY` into an identical table.
async fn copy_baseline(rig: &Rig, args: &Args) -> f64 {
    let db = rig.conn();
    db.execute_unprepared("CREATE TABLE twitter_data_copy (LIKE twitter_data INCLUDING ALL)").await.unwrap();
    let scraped_at = chrono::DateTime::parse_from_rfc3339("2025-06-01T12:00:05Z").unwrap().to_utc();
    let mut columns: Vec<twitter_data::Column> = Vec::new();
    let mut text = String::new();
    for id in 1..=args.records {
        let mapped = twitter::map(line(id, args.text_bytes).as_bytes(), "x.sample", scraped_at).unwrap();
        let row = mapped.tweet.into_model();
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
    checkpoint(rig).await;
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
