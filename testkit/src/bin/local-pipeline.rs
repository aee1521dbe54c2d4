//! `local-pipeline`: the whole pipeline on a machine without a container engine, as compose runs it. Starts
//! Postgres (`wal_level=logical`) with compose's roles and the migrated `ingest` database, Apache Kafka (one
//! KRaft node), Kafka Connect with the Debezium connector registered, with `--prometheus` Debian's Prometheus
//! scraping the two binaries, then the scraper and the inserter; prints where to look; on Ctrl-C or SIGTERM
//! stops the scraper, then the inserter, then the services. Exits non-zero when a child fails.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use testkit::Process;
use testkit::connect::Connect;
use testkit::prometheus::{Prometheus, PrometheusOptions};
use testkit::stack::{DATABASE, Role, Stack, StackOptions};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Parser)]
#[command(
    name = "local-pipeline",
    about = "Runs scraper → Kafka → inserter → Postgres → Debezium locally, without containers.",
    long_about = "Runs scraper → Kafka → inserter → Postgres → Debezium locally, without containers.\n\n\
                  The scraper and the inserter get this process's environment, so X_BEARER_TOKEN, SSE_URL, \
                  REPLAY_RATE, RUST_LOG and the like work as documented for them. Ctrl-C stops everything in \
                  order; the data is thrown away."
)]
struct Args {
    /// Postgres port on 127.0.0.1 (0: a free one)
    #[arg(long, default_value_t = 0)]
    pg_port: u16,

    /// Kafka's port on 127.0.0.1 (0: a free one)
    #[arg(long, default_value_t = 0)]
    kafka_port: u16,

    /// Kafka Connect's REST port on 127.0.0.1 (0: a free one)
    #[arg(long, default_value_t = 0)]
    connect_port: u16,

    /// The scraper's /metrics and /healthz port on 127.0.0.1 (0: a free one)
    #[arg(long, default_value_t = 0)]
    scraper_metrics_port: u16,

    /// The inserter's /metrics and /healthz port on 127.0.0.1 (0: a free one)
    #[arg(long, default_value_t = 0)]
    inserter_metrics_port: u16,

    /// Where the scraper's and inserter's logs are written (they are also printed, prefixed)
    #[arg(long, default_value = "target/local-pipeline")]
    log_dir: PathBuf,

    /// Also run Prometheus (Debian's `prometheus`) with the compose stack's jobs and alert rules
    /// (docker/prometheus), scraping the scraper and the inserter
    #[arg(long)]
    prometheus: bool,

    /// Prometheus's port on 127.0.0.1 with --prometheus (0: a free one)
    #[arg(long, default_value_t = 0)]
    prometheus_port: u16,

    /// The roles script compose applies at the database's first start
    #[arg(long, default_value_os_t = testkit::stack::repository_root().join("docker/postgres/roles.sql"))]
    roles_sql: PathBuf,
}

/// How long each child gets to exit after SIGTERM: the scraper's default FLUSH_TIMEOUT is 30 s.
const STOP_GRACE: Duration = Duration::from_secs(45);

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            say(&format!("error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<ExitCode> {
    let mut options = StackOptions::new()?;
    options.pg_port = args.pg_port;
    options.kafka_port = args.kafka_port;
    options.roles_sql = args.roles_sql;
    say(&format!("starting Postgres and Kafka (binaries from {})", options.bin_dir.display()));
    let mut stack = Stack::start(&options).await?;
    say(&format!(
        "applied {} to database {DATABASE}; running `migration up` as {}",
        options.roles_sql.display(),
        Role::Owner.name()
    ));
    for line in stack.migrate()?.lines() {
        println!("[migration] {line}");
    }
    say("starting Kafka Connect and registering the Debezium connector (docker/debezium/register.sh)");
    let mut connect = stack.start_debezium(args.connect_port).await?;

    std::fs::create_dir_all(&args.log_dir).with_context(|| format!("create {}", args.log_dir.display()))?;
    let log_dir = args.log_dir.canonicalize()?;
    let scraper_metrics = metrics_addr(args.scraper_metrics_port)?;
    let inserter_metrics = metrics_addr(args.inserter_metrics_port)?;
    let mut prometheus = if args.prometheus {
        let targets = BTreeMap::from([
            ("scraper".to_owned(), scraper_metrics.to_string()),
            ("inserter".to_owned(), inserter_metrics.to_string()),
        ]);
        let mut options = PrometheusOptions::new(targets);
        options.port = args.prometheus_port;
        options.log = Some(log_dir.join("prometheus.log"));
        say(&format!("starting Prometheus with {}", options.config.display()));
        Some(Prometheus::start(&options).await?)
    } else {
        None
    };

    let mut scraper_command = stack.scraper();
    scraper_command.env("SCRAPER_METRICS_ADDR", scraper_metrics.to_string());
    let scraper = Child::spawn("scraper", scraper_command, &log_dir)?;
    let mut inserter_command = stack.inserter();
    inserter_command.env("INSERTER_METRICS_ADDR", inserter_metrics.to_string());
    let inserter = Child::spawn("inserter", inserter_command, &log_dir)?;

    print_where_to_look(&stack, &connect, scraper_metrics, inserter_metrics, prometheus.as_ref(), &log_dir);

    let mut children = [scraper, inserter];
    let failed = supervise(&mut children).await?;

    // The scraper first (it flushes to the broker), then the inserter (it commits its batch), then the services.
    let mut code = if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS };
    for child in &mut children {
        if !child.stop().await {
            code = ExitCode::FAILURE;
        }
    }
    if let Some(prometheus) = prometheus.as_mut() {
        say("stopping Prometheus");
        prometheus.stop();
    }
    say("stopping Kafka Connect, the broker and Postgres");
    connect.stop();
    stack.broker.shutdown();
    stack.pg.stop();
    say("stopped");
    Ok(code)
}

/// Forwards the children's logs until Ctrl-C or SIGTERM (returns false) or until a child fails (returns true).
/// A child that exits successfully (the scraper after REPLAY_COUNT, the inserter with EXIT_WHEN_IDLE) is
/// reported and left exited; when both have, the run is over.
async fn supervise(children: &mut [Child]) -> Result<bool> {
    let mut terminate = signal(SignalKind::terminate()).context("listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listen for SIGINT")?;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = terminate.recv() => { say("SIGTERM: stopping"); return Ok(false) }
            _ = interrupt.recv() => { say("Ctrl-C: stopping"); return Ok(false) }
            _ = tick.tick() => {}
        }
        for child in children.iter_mut() {
            child.forward_log();
            if child.check_exit()? == Some(false) {
                return Ok(true);
            }
        }
        if children.iter().all(|child| child.exited) {
            say("every child exited");
            return Ok(false);
        }
    }
}

/// A child process whose log is printed, each line prefixed with its name.
struct Child {
    name: &'static str,
    process: Process,
    /// How much of the log has been printed.
    printed: u64,
    exited: bool,
}

impl Child {
    fn spawn(name: &'static str, command: std::process::Command, log_dir: &Path) -> Result<Self> {
        let log = log_dir.join(format!("{name}.log"));
        // A fresh log per run: Process appends.
        std::fs::write(&log, b"")?;
        let process = Process::spawn(command, &log)?;
        Ok(Self { name, process, printed: 0, exited: false })
    }

    /// Prints the complete lines written since the last call.
    fn forward_log(&mut self) {
        let Ok(mut file) = std::fs::File::open(self.process.log_path()) else { return };
        if file.seek(SeekFrom::Start(self.printed)).is_err() {
            return;
        }
        let mut fresh = Vec::new();
        if file.read_to_end(&mut fresh).is_err() {
            return;
        }
        let complete = fresh.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        for line in String::from_utf8_lossy(&fresh[..complete]).lines() {
            println!("[{}] {line}", self.name);
        }
        self.printed += complete as u64;
    }

    /// `Some(success)` the first time the child is seen to have exited.
    fn check_exit(&mut self) -> Result<Option<bool>> {
        if self.exited {
            return Ok(None);
        }
        let Some(status) = self.process.try_wait()? else { return Ok(None) };
        self.exited = true;
        self.forward_log();
        say(&format!("{} exited: {status}", self.name));
        Ok(Some(status.success()))
    }

    /// SIGTERM and wait; true if it exited successfully (or had already exited).
    async fn stop(&mut self) -> bool {
        if self.exited {
            return true;
        }
        say(&format!("stopping the {} (SIGTERM)", self.name));
        self.process.signal(libc::SIGTERM);
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        loop {
            self.forward_log();
            match self.process.try_wait() {
                Ok(Some(status)) => {
                    self.exited = true;
                    self.forward_log();
                    say(&format!("{} exited: {status}", self.name));
                    return status.success();
                }
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                _ => {
                    say(&format!("the {} did not exit within {STOP_GRACE:?}: killing it", self.name));
                    self.process.kill();
                    self.exited = true;
                    return false;
                }
            }
        }
    }
}

fn print_where_to_look(
    stack: &Stack,
    connect: &Connect,
    scraper_metrics: SocketAddr,
    inserter_metrics: SocketAddr,
    prometheus: Option<&Prometheus>,
    logs: &Path,
) {
    let broker = stack.broker.bootstrap_servers();
    // The contract's defaults, unless the environment renames them, as the scraper and the inserter read them.
    let topic = |topic: &contract::topic::Topic| std::env::var(topic.env).unwrap_or_else(|_| topic.default.to_owned());
    let tweets = topic(&contract::topic::TWEETS);
    let statuses = topic(&contract::topic::MASTODON_STATUSES);
    let rejects = topic(&contract::topic::REJECTS);
    let prometheus_log =
        if prometheus.is_some() { format!(", {}/prometheus.log", logs.display()) } else { String::new() };
    let prometheus = match prometheus {
        Some(prometheus) => {
            let dashboard = testkit::stack::repository_root().join("docker/grafana/dashboards/ingest-pipeline.json");
            format!(
                "prometheus: {url}  (alerts: {url}/alerts, targets: {url}/targets)\n\
                 \x20           dashboard: {dashboard} imports into any Grafana whose Prometheus data source\n\
                 \x20           has the uid `prometheus` and points at {url}\n",
                url = prometheus.url(),
                dashboard = dashboard.display(),
            )
        }
        None => String::new(),
    };
    println!(
        "\n\
         ─── the pipeline is running; Ctrl-C stops it ───\n\
         rows:       psql '{analyst}' -c 'SELECT tweet_id, text FROM public.twitter_data LIMIT 10'\n\
         superuser:  psql '{superuser}'\n\
         broker:     {broker}  topics: {tweets}, {statuses}, {rejects}\n\
         \x20           kcat -C -b {broker} -t {tweets} -c 5\n\
         connect:    {connect_url}  (connector: {connect_url}/connectors/{connector}/status, log: {connect_log})\n\
         changes:    kcat -C -b {broker} -t postgres.public.twitter_data -o beginning -f '%k %s\\n'\n\
         metrics:    scraper  http://{scraper_metrics}/metrics  (/healthz)\n\
         \x20           inserter http://{inserter_metrics}/metrics  (/healthz)\n\
         {prometheus}\
         logs:       {logs}/scraper.log, {logs}/inserter.log (also below, prefixed){prometheus_log}\n",
        analyst = stack.url(Role::Analyst),
        superuser = stack.pg.url(DATABASE),
        logs = logs.display(),
        connect_url = connect.url(),
        connector = testkit::connect::CONNECTOR,
        connect_log = connect.log_path().display(),
    );
}

/// 127.0.0.1:`port`, or a free port when `port` is 0.
fn metrics_addr(port: u16) -> Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", port)).with_context(|| format!("bind 127.0.0.1:{port}"))?;
    Ok(listener.local_addr()?)
}

fn say(message: &str) {
    println!("[local-pipeline] {message}");
}
