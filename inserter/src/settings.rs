//! The inserter's configuration: flags, each also read from the environment (and `.env`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use common::telemetry::LogFormat;

use crate::mapping::MappingTopics;
use crate::partitions::Maintenance;

#[derive(Clone, Parser)]
#[command(name = "inserter", version, about = "Lands the scraper's Kafka records in Postgres.")]
pub struct Settings {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Postgres URL, e.g. postgres://inserter:PASSWORD@localhost:5432/ingest
    ///
    /// Never logged; errors name the host without the password.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Apply pending migrations at start-up (needs a role that may create tables)
    #[arg(long, env = "RUN_MIGRATIONS", default_value_t = false)]
    pub run_migrations: bool,

    /// Kafka bootstrap servers (other librdkafka properties: KAFKA_<PROPERTY>, e.g. KAFKA_SECURITY_PROTOCOL)
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", default_value = "localhost:9092", help_heading = "Kafka")]
    pub bootstrap_servers: String,

    /// Consumer group: inserters in one group share the partitions; the group's offsets live in
    /// `kafka_offsets`, written with the rows
    #[arg(long, env = "INSERTER_GROUP", default_value = "inserter")]
    pub group: String,

    /// A batch closes at this many records (1 to 1,000,000), at BATCH_BYTES or at BATCH_TIMEOUT, whichever
    /// comes first
    #[arg(long, env = "BATCH_SIZE", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub batch_size: u32,

    /// A batch closes at this many bytes of records (key, value and headers; e.g. 4MiB, 512KiB), which bounds
    /// the inserter's memory whatever the records' sizes
    ///
    /// Units: B, KiB, MiB, GiB, kB, MB, GB; a batch holds at least one record whatever its size. The consumer
    /// pauses when the next batch is this full while one is decoded and another written, so at most three
    /// batches are held.
    #[arg(long, env = "BATCH_BYTES", default_value = "4MiB", value_parser = parse_bytes)]
    pub batch_bytes: usize,

    /// A batch closes this long after its first record, unless BATCH_SIZE or BATCH_BYTES closed it first
    #[arg(long, env = "BATCH_TIMEOUT", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub batch_timeout: Duration,

    /// Exit once no record has arrived for this long (e.g. 30s) and the broker holds none beyond what was
    /// read, for backfills and scripted runs; by default the inserter runs until stopped
    ///
    /// A broker that is slow to send is not idle: while its high watermarks show records beyond what was read, the
    /// inserter waits (and logs `no new record, but the broker holds more`).
    #[arg(long, env = "EXIT_WHEN_IDLE", value_parser = humantime::parse_duration)]
    pub exit_when_idle: Option<Duration>,

    /// Where to serve /metrics and /healthz (the old name METRICS_ADDR still works, with a warning)
    ///
    /// The default answers on this machine only: for Prometheus or probes from elsewhere, e.g. `0.0.0.0:9102`.
    #[arg(long, env = "INSERTER_METRICS_ADDR", default_value = "127.0.0.1:9102")]
    pub metrics_addr: SocketAddr,

    /// How often to log a progress line
    #[arg(long, env = "PROGRESS_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub progress_interval: Duration,

    /// Log format
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, help_heading = "Logging")]
    pub log_format: LogFormat,

    /// Each mapping's topic (`--topic-tweets`, `--topic-mastodon-statuses`, ...: one flag per mapping)
    #[command(flatten)]
    pub topics: Topics,

    /// How often the partitioned tables get their coming partitions and the retention their owner set. This
    /// and the topics come last: a flattened group's help heading holds for the flags after it.
    #[command(flatten)]
    pub partition_maintenance: Maintenance,
}

/// What to do instead of consuming.
#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Run dead letters (ingest_errors) through today's mappings again, e.g. after a mapping fix: each batch
    /// writes its rows and deletes the dead letters it re-drove in one transaction; what still fails stays,
    /// with its new reason. The topic flags say which mapping reads which topic, as when consuming.
    Redrive(RedriveArgs),
}

#[derive(Clone, Debug, Args)]
pub struct RedriveArgs {
    /// Only dead letters of this topic (repeat for several; default: all)
    #[arg(long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,

    /// Only dead letters whose reason matches this regular expression (case-insensitive), e.g. 'SQLSTATE 54000'
    #[arg(long, value_name = "REGEX")]
    pub reason: Option<String>,

    /// Count the dead letters selected and how many decode now; write nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Dead letters per transaction
    #[arg(long = "batch-size", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub batch_size: u64,
}

impl std::fmt::Debug for Settings {
    // The database URL may carry a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("command", &self.command)
            .field("database_url", &"<redacted>")
            .field("run_migrations", &self.run_migrations)
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("group", &self.group)
            .field("topics", &self.topics)
            .field("partition_maintenance", &self.partition_maintenance)
            .field("batch_size", &self.batch_size)
            .field("batch_bytes", &self.batch_bytes)
            .field("batch_timeout", &self.batch_timeout)
            .field("exit_when_idle", &self.exit_when_idle)
            .field("metrics_addr", &self.metrics_addr)
            .field("progress_interval", &self.progress_interval)
            .field("log_format", &self.log_format)
            .finish()
    }
}

impl Settings {
    /// The flags and the environment, as [`Parser::parse`] reads them, then the variables' old names where the
    /// new ones are unset. Returns what to warn about once logging is set up.
    pub fn parse_with_old_names() -> (Self, Vec<String>) {
        let matches = <Self as clap::CommandFactory>::command().get_matches();
        let mut settings =
            <Self as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
        let warnings = settings
            .apply_old_names(&matches, |name| std::env::var(name).ok())
            .unwrap_or_else(|error| clap::Error::raw(clap::error::ErrorKind::ValueValidation, error).exit());
        (settings, warnings)
    }

    /// Reads `METRICS_ADDR` (the name before `INSERTER_METRICS_ADDR`, beside the scraper's
    /// `SCRAPER_METRICS_ADDR`) when neither the flag nor the new name is set.
    fn apply_old_names(
        &mut self,
        matches: &clap::ArgMatches,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<String>, String> {
        const OLD: &str = "METRICS_ADDR";
        const NEW: &str = "INSERTER_METRICS_ADDR";
        let Some(old) = env(OLD) else { return Ok(Vec::new()) };
        if matches.value_source("metrics_addr") != Some(clap::parser::ValueSource::DefaultValue) {
            return Ok(vec![format!("{OLD} is ignored: {NEW} (or --metrics-addr) is set; remove {OLD}")]);
        }
        self.metrics_addr = old.parse().map_err(|e| format!("invalid value '{old}' for {OLD}: {e}\n"))?;
        Ok(vec![format!("{OLD} is deprecated: rename it {NEW}")])
    }
}

/// Each mapping's topic, read from the contract's flag, variable and default (`--topic-tweets`,
/// `TOPIC_TWEETS`, ...), the same the scraper writes it by.
pub type Topics = contract::Topics<MappingTopics>;

/// `8MiB`, `512KiB`, `1GiB`, `64kB`, `2MB` or a plain number of bytes.
fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let multiplier: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("unknown unit `{other}` (use B, KiB, MiB, GiB, kB, MB or GB)")),
    };
    let number: usize = digits.parse().map_err(|_| format!("`{text}` is not a size such as 8MiB"))?;
    match number.checked_mul(multiplier) {
        Some(0) => Err("must be at least 1 byte".into()),
        Some(bytes) => Ok(bytes),
        None => Err(format!("`{text}` is too large")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Settings, parse_bytes};

    #[test]
    fn byte_sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_bytes("8MiB"), Ok(8 << 20));
        assert_eq!(parse_bytes("512KiB"), Ok(512 << 10));
        assert_eq!(parse_bytes("2MB"), Ok(2_000_000));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert_eq!(parse_bytes("3 GiB"), Ok(3 << 30));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("8 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse_bytes("MiB").is_err());
        assert!(parse_bytes("99999999999999999999GiB").is_err());
    }

    #[test]
    fn the_old_metrics_address_name_applies_when_the_new_one_is_unset_and_says_so() {
        use clap::{CommandFactory, FromArgMatches};
        let apply = |args: &[&str], old: Option<&str>| {
            let base = ["inserter", "--database-url", "postgres://localhost/ingest"];
            let matches = Settings::command().try_get_matches_from(base.iter().chain(args)).unwrap();
            let mut settings = Settings::from_arg_matches(&matches).unwrap();
            let said = settings.apply_old_names(&matches, |_| old.map(str::to_owned));
            said.map(|warnings| (settings.metrics_addr.to_string(), warnings))
        };
        assert_eq!(apply(&[], None).unwrap(), ("127.0.0.1:9102".to_owned(), vec![]));
        let (addr, warnings) = apply(&[], Some("0.0.0.0:9999")).unwrap();
        assert_eq!(addr, "0.0.0.0:9999");
        assert_eq!(warnings, ["METRICS_ADDR is deprecated: rename it INSERTER_METRICS_ADDR"]);
        let (addr, warnings) = apply(&["--metrics-addr", "127.0.0.1:1"], Some("0.0.0.0:9999")).unwrap();
        assert_eq!(addr, "127.0.0.1:1");
        assert!(warnings[0].contains("METRICS_ADDR is ignored"), "{warnings:?}");
        assert!(apply(&[], Some("nine")).unwrap_err().contains("invalid value 'nine' for METRICS_ADDR"));
    }

    #[test]
    fn the_mastodon_topic_has_a_default_and_a_flag() {
        let parse = |args: &[&str]| {
            let base = ["inserter", "--database-url", "postgres://localhost/ingest"];
            Settings::try_parse_from(base.iter().chain(args))
                .unwrap()
                .topics
                .find("mastodon-statuses")
                .unwrap()
                .to_owned()
        };
        assert_eq!(parse(&[]), "mastodon.statuses");
        assert_eq!(parse(&["--topic-mastodon-statuses", "fedi.statuses"]), "fedi.statuses");
    }

    #[test]
    fn the_instagram_topics_have_defaults_and_flags() {
        let parse = |args: &[&str]| {
            let base = ["inserter", "--database-url", "postgres://localhost/ingest"];
            let settings = Settings::try_parse_from(base.iter().chain(args)).unwrap();
            let topic = |name| settings.topics.find(name).unwrap().to_owned();
            (topic("instagram-profiles"), topic("instagram-media"))
        };
        assert_eq!(parse(&[]), ("instagram.profiles".into(), "instagram.media".into()));
        let flags = ["--topic-instagram-profiles", "ig.p", "--topic-instagram-media", "ig.m"];
        assert_eq!(parse(&flags), ("ig.p".into(), "ig.m".into()));
    }
}
