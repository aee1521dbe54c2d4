//! The scraper against a plain producer, in one run: N synthetic X stream lines are written to a file; a bare
//! rdkafka producer with the scraper's producer settings produces them from the file (the limit); then the
//! release `scraper` binary reads the same file served as X's stream over HTTP, frames, validates and produces
//! it into the same broker.
//!
//!     cargo bench -p scraper --bench stream -- [--lines 1000000] [--partitions 6] [--queue-bytes N]
//!
//! Prints lines/s for both, their ratio, and the scraper's peak RSS; then, to tell where a gap comes from, the
//! CPU time per line of each side and of the broker, and how full the scraper's queue got.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

mod plain;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use testkit::{Broker, Process, unique_name};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The synthetic generator's seed: the same lines every run.
const SEED: u64 = 1;
/// Lines between two heartbeats (`\r\n`) in the file, as X sends them on a quiet stream.
const HEARTBEAT_EVERY: u64 = 10_000;
/// Bytes per HTTP chunk of the served stream.
const CHUNK: usize = 64 * 1024;
/// Delivery reports the baseline may leave unawaited: about what the scraper's 64 MiB queue holds.
const MAX_IN_FLIGHT: usize = 100_000;
/// A run slower than this is broken, not slow.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
const RATIO_GOAL: f64 = 0.7;
const RSS_GOAL_MIB: f64 = 200.0;

struct Args {
    lines: u64,
    partitions: i32,
    /// The scraper's `QUEUE_BYTES`; `None`: its default.
    queue_bytes: Option<u64>,
}

fn args() -> Option<Args> {
    // Test runners (`cargo nextest run --all-targets`) ask every bench target for its tests: it has none.
    if std::env::args().any(|arg| arg == "--list") {
        return None;
    }
    let mut args = Args { lines: 1_000_000, partitions: 6, queue_bytes: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value =
            || it.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or_else(|| panic!("{flag} needs a number"));
        match flag.as_str() {
            "--lines" => args.lines = value(),
            "--partitions" => args.partitions = value() as i32,
            "--queue-bytes" => args.queue_bytes = Some(value()),
            "--bench" => {}
            other => panic!("unknown flag {other}; see the file's header"),
        }
    }
    Some(args)
}

/// The file both sides read, and its size.
struct StreamFile {
    path: PathBuf,
    /// The whole file: lines, their `\r\n` and the heartbeats.
    bytes: u64,
    /// The lines alone: what ends up as record values.
    payload_bytes: u64,
}

#[tokio::main]
async fn main() {
    let Some(args) = args() else { return };
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let file = write_stream(&dir.path().join("stream.txt"), args.lines);
    eprintln!("wrote {} lines ({:.1} MB) in {:.1?}", args.lines, file.bytes as f64 / 1e6, started.elapsed());

    let broker = Broker::start().await.unwrap();
    let (baseline_topic, warm_up) = (unique_name("bench_baseline"), unique_name("bench_warm_up"));
    let (tweets, rejects) = (unique_name("bench_tweets"), unique_name("bench_rejects"));
    for topic in [&baseline_topic, &warm_up, &tweets, &rejects] {
        broker.create_topic(topic, args.partitions).await.unwrap();
    }

    eprintln!("baseline: producing the file with a plain producer...");
    let (bench_cpu, broker_cpu) = (cpu_time("self"), broker_cpu_time(&broker));
    let baseline = produce_file(&broker, &baseline_topic, &warm_up, &file.path).await;
    let baseline_cpu = (cpu_time("self") - bench_cpu, broker_cpu_time(&broker) - broker_cpu);
    eprintln!("baseline done in {baseline:.1?}; scraper: serving the file as X's stream...");
    let scraper = run_scraper(&broker, &tweets, &rejects, &file, &args, dir.path()).await;

    // A bench that measured a run which lost records would be a lie.
    for (topic, expected) in [(&baseline_topic, args.lines), (&tweets, args.lines), (&rejects, 0)] {
        let (count, keys) = messages_in(&broker, topic);
        assert_eq!((count, keys as u64), (expected, expected), "records and distinct keys in {topic}");
    }

    let rate = |took: Duration| args.lines as f64 / took.as_secs_f64();
    let mb_rate = |took: Duration| file.payload_bytes as f64 / 1e6 / took.as_secs_f64();
    let ratio = rate(scraper.took) / rate(baseline);
    let rss_mib = scraper.peak_rss_kib as f64 / 1024.0;
    let verdict = |pass: bool| if pass { "pass" } else { "miss" };
    println!(
        "lines:              {:>10} ({:.1} MB file, {} B a line on average, {} partitions)",
        args.lines,
        file.bytes as f64 / 1e6,
        file.payload_bytes / args.lines.max(1),
        args.partitions
    );
    println!(
        "plain producer:     {:>10.0} lines/s {:>7.1} MB/s  (file -> rdkafka, keyed by line number)",
        rate(baseline),
        mb_rate(baseline)
    );
    println!(
        "scraper:            {:>10.0} lines/s {:>7.1} MB/s  (HTTP stream -> framing -> validation -> rdkafka)",
        rate(scraper.took),
        mb_rate(scraper.took)
    );
    let (first_ack, acked) = scraper.first_ack;
    // Meaningless when the whole run fits in the queue: the first sample already sees every line acknowledged.
    if acked < args.lines {
        let steady = (args.lines - acked) as f64 / (scraper.took - first_ack).as_secs_f64();
        println!(
            "  from its first ack:{steady:>10.0} lines/s              ({:.2}x plain producer)",
            steady / rate(baseline)
        );
    }
    println!(
        "ratio:              {ratio:>10.2}x plain producer   goal >= {RATIO_GOAL}x: {}",
        verdict(ratio >= RATIO_GOAL)
    );
    println!(
        "scraper peak RSS:   {rss_mib:>10.1} MiB                goal < {RSS_GOAL_MIB} MiB: {}",
        verdict(rss_mib < RSS_GOAL_MIB)
    );
    let per_line = |cpu: Duration| cpu.as_secs_f64() * 1e6 / args.lines as f64;
    println!(
        "CPU per line:       plain producer {:.1} us + broker {:.1} us; scraper {:.1} us + broker {:.1} us",
        per_line(baseline_cpu.0),
        per_line(baseline_cpu.1),
        per_line(scraper.cpu),
        per_line(scraper.broker_cpu)
    );
    println!(
        "scraper queue:      first ack after {:.1?}; stream read in {:.1?} of {:.1?}; up to {:.1} MiB queued; \
         waited for room {} times",
        scraper.first_ack.0,
        scraper.read,
        scraper.took,
        scraper.peak_queued_bytes as f64 / (1 << 20) as f64,
        scraper.queue_full
    );
}

/// User and system CPU time of a process (`self` or a pid) so far.
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces: utime and stime are
    // the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks: u64 = fields.get(11..13).map_or(0, |f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum());
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}

fn broker_cpu_time(broker: &Broker) -> Duration {
    cpu_time(&broker.pid().expect("the broker runs").to_string())
}

/// Writes `lines` synthetic posts in X's wire format: `\r\n` after each, and a heartbeat every
/// [`HEARTBEAT_EVERY`] lines.
fn write_stream(path: &Path, lines: u64) -> StreamFile {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let (mut bytes, mut payload_bytes) = (0, 0);
    for n in 1..=lines {
        let line = scraper::synthetic::line(SEED, n);
        out.write_all(&line).unwrap();
        out.write_all(b"\r\n").unwrap();
        payload_bytes += line.len() as u64;
        bytes += line.len() as u64 + 2;
        if n % HEARTBEAT_EVERY == 0 {
            out.write_all(b"\r\n").unwrap();
            bytes += 2;
        }
    }
    out.flush().unwrap();
    StreamFile { path: path.to_owned(), bytes, payload_bytes }
}

/// The limit: the file's lines produced by a bare producer with the scraper's settings (`KafkaSink::new`), no
/// parsing, no headers. Timed from the first send to the last acknowledgement, once the producer is connected
/// (as the scraper's is when its stream connects): a record to `warm_up` gets its producer id and connections.
async fn produce_file(broker: &Broker, topic: &str, warm_up: &str, file: &Path) -> Duration {
    let producer = plain::producer(broker, warm_up, topic).await;
    let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(file).unwrap());
    let mut in_flight = FuturesUnordered::new();
    let mut line = Vec::new();
    let mut number = 0u64;
    let started = Instant::now();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).unwrap() == 0 {
            break;
        }
        let payload = line.strip_suffix(b"\n").unwrap_or(&line);
        let payload = payload.strip_suffix(b"\r").unwrap_or(payload);
        if payload.is_empty() {
            continue;
        }
        number += 1;
        let key = number.to_string();
        let mut record = FutureRecord::<str, [u8]>::to(topic).key(&key).payload(payload);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => break in_flight.push(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((e, _)) => panic!("produce line {number}: {e}"),
            }
        }
        while in_flight.len() >= MAX_IN_FLIGHT {
            settle(in_flight.next().await);
        }
    }
    while let Some(delivery) = in_flight.next().await {
        settle(Some(delivery));
    }
    started.elapsed()
}

fn settle<T, E: std::fmt::Debug, C: std::fmt::Debug>(delivery: Option<Result<Result<T, E>, C>>) {
    match delivery {
        Some(Ok(Ok(_))) => {}
        other => panic!("a baseline record was not acknowledged: {:?}", other.map(|d| d.map(|r| r.err()))),
    }
}

/// What the scraper's run measured.
struct ScraperRun {
    /// From the stream connection to the broker's acknowledgement of the last line.
    took: Duration,
    /// From the stream connection to the last byte of the file written to it.
    read: Duration,
    peak_rss_kib: u64,
    /// CPU time the scraper used from the stream connection on, and the broker meanwhile.
    cpu: Duration,
    broker_cpu: Duration,
    /// From the stream connection to the first acknowledged lines (sampled every 50 ms), and how many.
    first_ack: (Duration, u64),
    /// The most `scraper_queued_bytes` showed (sampled every 50 ms), and `scraper_queue_full_total` at the end.
    peak_queued_bytes: u64,
    queue_full: u64,
}

/// Runs the release scraper against the file served as X's sample stream, until its metrics count every line
/// as acknowledged; then stops it with SIGTERM, as an operator would.
async fn run_scraper(
    broker: &Broker,
    tweets: &str,
    rejects: &str,
    file: &StreamFile,
    args: &Args,
    dir: &Path,
) -> ScraperRun {
    let server = StreamServer::start(file.path.clone()).await;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_scraper"));
    command
        // A flag, not a variable: the variable's name is still in flux.
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
        // Its own directory, so that no `.env` of the checkout is read.
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap_servers())
        .env("X_BEARER_TOKEN", "bench")
        .env("X_API_BASE_URL", format!("http://{}", server.addr))
        .env("TOPIC_TWEETS", tweets)
        .env("TOPIC_REJECTS", rejects)
        .env("TOPIC_PARTITIONS", args.partitions.to_string())
        .env("RUST_LOG", "warn");
    if let Some(bytes) = args.queue_bytes {
        command.env("QUEUE_BYTES", bytes.to_string());
    }
    let mut scraper = Process::spawn(command, &dir.join("scraper.log")).unwrap();
    let deadline = Instant::now() + RUN_TIMEOUT;
    let mut next_report = Instant::now() + Duration::from_secs(5);
    let pid = scraper.pid().to_string();
    let mut cpu_at_connection = None;
    let mut peak_queued_bytes = 0;
    let mut first_ack = None;
    let queue_full = loop {
        if cpu_at_connection.is_none() && server.connected.get().is_some() {
            cpu_at_connection = Some((cpu_time(&pid), broker_cpu_time(broker)));
        }
        let metrics = scraped(metrics_port).await;
        peak_queued_bytes = peak_queued_bytes.max(metrics.queued_bytes);
        if first_ack.is_none() && metrics.accepted > 0 {
            first_ack = server.connected.get().map(|connected| (connected.elapsed(), metrics.accepted));
        }
        let produced = metrics.accepted;
        if produced >= args.lines {
            break metrics.queue_full;
        }
        if Instant::now() > next_report {
            eprintln!("  ...{produced} lines acknowledged");
            next_report += Duration::from_secs(5);
        }
        if let Ok(status) = scraper.wait(Duration::ZERO).await {
            panic!("the scraper exited early with {status}:\n{}", scraper.log());
        }
        assert!(Instant::now() < deadline, "the scraper did not finish within {RUN_TIMEOUT:?}:\n{}", scraper.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let connected = *server.connected.get().expect("the scraper connected");
    let took = connected.elapsed();
    let peak_rss_kib = peak_rss_kib(scraper.pid());
    let (cpu, broker_cpu) = cpu_at_connection.unwrap_or_default();
    let (cpu, broker_cpu) = (cpu_time(&pid) - cpu, broker_cpu_time(broker) - broker_cpu);
    let read = server.served.get().map_or(took, |served| served.duration_since(connected));
    scraper.signal(libc::SIGTERM);
    let status = scraper.wait(Duration::from_secs(60)).await.unwrap();
    assert!(status.success(), "the scraper failed to stop cleanly:\n{}", scraper.log());
    server.done.cancel();
    ScraperRun {
        took,
        read,
        first_ack: first_ack.unwrap_or((took, args.lines)),
        peak_rss_kib,
        cpu,
        broker_cpu,
        peak_queued_bytes,
        queue_full,
    }
}

/// The scraper's metrics this bench reads; all 0 while the endpoint is not up.
#[derive(Clone, Copy, Debug, Default)]
struct Scraped {
    /// `scraper_records_produced_total{outcome="accepted"}`, over the topics (the bench writes one).
    accepted: u64,
    /// `scraper_queue_full_total`: times reading waited for room in the queue to Kafka.
    queue_full: u64,
    /// `scraper_queued_bytes`: read but not yet acknowledged.
    queued_bytes: u64,
}

async fn scraped(port: u16) -> Scraped {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else { return Scraped::default() };
    let request = b"GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n";
    let mut response = String::new();
    if stream.write_all(request).await.is_err() || stream.read_to_string(&mut response).await.is_err() {
        return Scraped::default();
    }
    let value = |name: &str| {
        response
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0)
    };
    let accepted = response
        .lines()
        .filter_map(|line| line.strip_prefix("scraper_records_produced_total{outcome=\"accepted\","))
        .filter_map(|rest| rest.split_once("} ")?.1.trim().parse::<u64>().ok())
        .sum();
    Scraped { accepted, queue_full: value("scraper_queue_full_total"), queued_bytes: value("scraper_queued_bytes") }
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Records in `topic` and how many distinct keys they have, read back from the beginning.
fn messages_in(broker: &Broker, topic: &str) -> (u64, usize) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", unique_name("bench_count"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let timeout = Duration::from_secs(30);
    let metadata = consumer.fetch_metadata(Some(topic), timeout).unwrap();
    let mut partitions = TopicPartitionList::new();
    for partition in metadata.topics()[0].partitions() {
        partitions.add_partition_offset(topic, partition.id(), Offset::Beginning).unwrap();
    }
    consumer.assign(&partitions).unwrap();
    let (mut count, mut keys) = (0, HashSet::new());
    // Until nothing more arrives for a while: a record too many is as wrong as one too few.
    while let Some(message) = consumer.poll(Duration::from_secs(3)) {
        let message = message.unwrap();
        count += 1;
        keys.insert(message.key().unwrap_or_default().to_vec());
    }
    (count, keys.len())
}

/// X's stream, played from a file: the first connection gets the whole file, as fast as it reads, then a
/// heartbeat every few seconds until the bench is done (so that the scraper neither reconnects nor stops on
/// its own before it is measured); any later connection gets X's 401, so that a scraper that lost its
/// connection stops instead of reading the file twice.
struct StreamServer {
    addr: std::net::SocketAddr,
    /// When the first connection was accepted: where the scraper's clock starts.
    connected: Arc<OnceLock<Instant>>,
    /// When the last byte of the file was written.
    served: Arc<OnceLock<Instant>>,
    done: CancellationToken,
}

impl StreamServer {
    async fn start(file: PathBuf) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Self {
            addr: listener.local_addr().unwrap(),
            connected: Arc::default(),
            served: Arc::default(),
            done: CancellationToken::new(),
        };
        let (connected, served, done) = (server.connected.clone(), server.served.clone(), server.done.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = done.cancelled() => return,
                    accepted = listener.accept() => accepted.unwrap(),
                };
                let first = connected.set(Instant::now()).is_ok();
                let (file, served, done) = (file.clone(), served.clone(), done.clone());
                tokio::spawn(async move {
                    // The client may be gone (SIGTERM) before the server: a failed write ends the connection.
                    let _ = if first { stream_file(stream, &file, &served, &done).await } else { refuse(stream).await };
                });
            }
        });
        server
    }
}

async fn stream_file(
    mut stream: TcpStream,
    file: &Path,
    served: &OnceLock<Instant>,
    done: &CancellationToken,
) -> std::io::Result<()> {
    read_request_head(&mut stream).await?;
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
        .await?;
    let mut file = tokio::fs::File::open(file).await?;
    let mut buffer = vec![0; CHUNK];
    loop {
        let read = file.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        write_chunk(&mut stream, &buffer[..read]).await?;
    }
    let _ = served.set(Instant::now());
    loop {
        tokio::select! {
            _ = done.cancelled() => return stream.write_all(b"0\r\n\r\n").await,
            _ = tokio::time::sleep(Duration::from_secs(5)) => write_chunk(&mut stream, b"\r\n").await?,
        }
    }
}

async fn refuse(mut stream: TcpStream) -> std::io::Result<()> {
    read_request_head(&mut stream).await?;
    let body = r#"{"title":"Unauthorized","detail":"Unauthorized","status":401}"#;
    let head = format!(
        "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await
}

/// Reads up to the end of the request head; a GET has no body.
async fn read_request_head(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buffer = [0; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await?;
        if read == 0 || head.len() > 64 * 1024 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        head.extend_from_slice(&buffer[..read]);
    }
    Ok(())
}

async fn write_chunk(stream: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    let mut chunk = Vec::with_capacity(data.len() + 16);
    chunk.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    chunk.extend_from_slice(data);
    chunk.extend_from_slice(b"\r\n");
    stream.write_all(&chunk).await
}
