//! The scraper's configuration: flags, each also read from the environment (and `.env`). The flags every
//! source shares are here; each source's own, and when it runs, are in its module (`registry::SOURCES`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use common::telemetry::LogFormat;

use crate::registry::{Shared, SourceArgs, Topics};
use crate::source::Source;

/// The `--help` heading of the flags that bound the scraper's memory and say how it runs.
const LIMITS: &str = "Limits and operation";

#[derive(Clone, Debug, Parser)]
#[command(name = "scraper", version, about = "Scrapes social-media sources into Kafka.")]
pub struct Settings {
    /// Kafka bootstrap servers (other librdkafka properties: KAFKA_<PROPERTY>, e.g. KAFKA_SECURITY_PROTOCOL)
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", default_value = "localhost:9092", help_heading = "Kafka")]
    pub bootstrap_servers: String,

    /// Partitions for topics the scraper creates (existing topics are left as they are); at least 1
    #[arg(long, env = "TOPIC_PARTITIONS", default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..), help_heading = "Topics")]
    pub partitions: i32,

    /// Longest line or event accepted, in bytes; a longer one goes to the rejects topic (its first KiB). The
    /// default leaves room for the key and headers under Kafka's default 1 MB message limit
    ///
    /// An Instagram Graph page that does not parse goes to the rejects topic the same way, each
    /// `access_token=` value replaced by `REDACTED`.
    #[arg(long, env = "MAX_RECORD_BYTES", default_value_t = 900_000, help_heading = LIMITS)]
    pub max_record_bytes: usize,

    /// Memory for records between reading and the broker's acknowledgement (each counts twice its size plus
    /// 512 bytes: our copy and librdkafka's); when spent, reading waits
    ///
    /// The default is 64 MiB; at least 1 MiB (1048576).
    #[arg(long, env = "QUEUE_BYTES", default_value_t = 64 << 20, value_parser = clap::value_parser!(u32).range(1 << 20..), help_heading = LIMITS)]
    pub queue_bytes: u32,

    /// After SIGTERM, how long the broker gets to acknowledge what was read before the scraper gives up
    #[arg(long, env = "FLUSH_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration, help_heading = LIMITS)]
    pub flush_timeout: Duration,

    /// Where to serve /metrics and /healthz
    ///
    /// The default answers on this machine only: for Prometheus or probes from elsewhere, e.g. `0.0.0.0:9101`.
    #[arg(long, env = "SCRAPER_METRICS_ADDR", default_value = "127.0.0.1:9101", help_heading = LIMITS)]
    pub metrics_addr: SocketAddr,

    /// How often to log a progress line
    #[arg(long, env = "PROGRESS_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration, help_heading = LIMITS)]
    pub progress_interval: Duration,

    /// Log format
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, help_heading = "Logging")]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub topics: Topics,

    /// `--source`, and each source's flags under its own heading
    #[command(flatten)]
    pub sources: SourceArgs,
}

impl Settings {
    /// The sources to run, validated: a source that is asked for but not configured is an error here, before
    /// anything connects.
    pub fn sources(&self) -> anyhow::Result<Vec<Box<dyn Source>>> {
        self.sources_with(&self.kafka_config(std::iter::empty()))
    }

    /// The sources to run, as [`Settings::sources`], reading their topics' ends (where a restarted source
    /// resumes) through the Kafka client `kafka`.
    pub fn sources_with(&self, kafka: &rdkafka::ClientConfig) -> anyhow::Result<Vec<Box<dyn Source>>> {
        self.sources.build(&Shared { topics: &self.topics, max_record_bytes: self.max_record_bytes, kafka })
    }

    /// The Kafka client settings: the bootstrap servers and each `KAFKA_*` property of `vars`.
    pub fn kafka_config(&self, vars: impl IntoIterator<Item = (String, String)>) -> rdkafka::ClientConfig {
        common::kafka::client_config(&self.bootstrap_servers, vars)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Settings;

    fn source_names(args: &[&str]) -> anyhow::Result<Vec<String>> {
        let settings = Settings::try_parse_from(std::iter::once("scraper").chain(args.iter().copied()))?;
        Ok(settings.sources()?.iter().map(|source| source.name()).collect())
    }

    #[test]
    fn instagram_accounts_add_the_web_source_and_a_token_makes_it_the_graph_source() {
        let accounts = ["--instagram-usernames", "@nasa,natgeo"];
        assert_eq!(source_names(&accounts).unwrap(), ["instagram.web.profile"]);
        let graph =
            [&accounts[..], &["--instagram-access-token", "EAAG", "--instagram-user-id", "17841400000000001"]].concat();
        assert_eq!(source_names(&graph).unwrap(), ["instagram.graph"]);
        let hashtags_only =
            ["--instagram-hashtags", "coffee", "--instagram-access-token", "EAAG", "--instagram-user-id", "1"];
        assert_eq!(source_names(&hashtags_only).unwrap(), ["instagram.graph"]);
    }

    #[test]
    fn an_instagram_source_asked_for_without_what_it_needs_says_what_is_missing() {
        let error = source_names(&["--source", "instagram-graph", "--instagram-usernames", "nasa"]).unwrap_err();
        assert!(error.to_string().contains("INSTAGRAM_ACCESS_TOKEN"), "{error}");
        let error = source_names(&[
            "--source",
            "instagram-graph",
            "--instagram-access-token",
            "EAAG",
            "--instagram-usernames",
            "nasa",
        ])
        .unwrap_err();
        assert!(error.to_string().contains("INSTAGRAM_USER_ID"), "{error}");
        let error = source_names(&["--source", "instagram-web"]).unwrap_err();
        assert!(error.to_string().contains("INSTAGRAM_USERNAMES"), "{error}");
        let error = source_names(&["--source", "instagram-web", "--instagram-usernames", "bad)name"]).unwrap_err();
        assert!(error.to_string().contains("INSTAGRAM_USERNAMES"), "a list of only invalid names is none: {error}");
    }

    #[test]
    fn the_replay_runs_by_default_only_where_no_other_source_is_configured() {
        assert_eq!(source_names(&[]).unwrap(), ["replay"]);
        assert_eq!(source_names(&["--replay-file", "posts.ndjson"]).unwrap(), ["replay"]);
        assert_eq!(source_names(&["--x-bearer-token", "AAAA"]).unwrap(), ["x.sample"]);
        // A stack that reads Mastodon or Instagram for real gets no made-up X posts unless it asks for them.
        let sse = ["--sse-url", "http://localhost:1/api/v1/streaming/public"];
        assert_eq!(source_names(&sse).unwrap(), ["sse.mastodon"]);
        assert_eq!(source_names(&["--instagram-usernames", "nasa"]).unwrap(), ["instagram.web.profile"]);
        let named = [&sse[..], &["--source", "sse,replay"]].concat();
        assert_eq!(source_names(&named).unwrap(), ["sse.mastodon", "replay"]);
        let both = [&sse[..], &["--x-bearer-token", "AAAA", "--x-stream", "sample10"]].concat();
        assert_eq!(source_names(&both).unwrap(), ["x.sample10.p1", "sse.mastodon"]);
        // The generator's records say they are made up; a replayed file's keep the replay's marking.
        let record_source = |args: &[&str]| {
            let settings = Settings::try_parse_from(std::iter::once("scraper").chain(args.iter().copied())).unwrap();
            settings.sources().unwrap()[0].record_source()
        };
        assert_eq!(record_source(&[]), contract::source::REPLAY_SYNTHETIC);
        assert_eq!(record_source(&["--replay-file", "posts.ndjson"]), contract::source::REPLAY);
        // Given sources run in the registry's order, each once.
        let given = ["--source", "replay,x", "--source", "replay", "--x-bearer-token", "AAAA"];
        assert_eq!(source_names(&given).unwrap(), ["x.sample", "replay"]);
        let error = source_names(&["--source", "x"]).unwrap_err();
        assert!(error.to_string().contains("X_BEARER_TOKEN"), "{error}");
        let error = source_names(&["--source", "telegram"]).unwrap_err();
        assert!(error.to_string().contains("instagram-web"), "the possible values are listed: {error}");
    }

    #[test]
    fn each_sample10_partition_is_a_source_of_its_own_whose_records_are_x_sample10() {
        let sample10 = ["--x-bearer-token", "AAAA", "--x-stream", "sample10"];
        let settings = |extra: &[&str]| {
            Settings::try_parse_from(std::iter::once("scraper").chain(sample10).chain(extra.iter().copied()))
        };
        let sources = settings(&["--x-stream-partitions", "1-3,7"]).unwrap().sources().unwrap();
        let names: Vec<String> = sources.iter().map(|source| source.name()).collect();
        assert_eq!(names, ["x.sample10.p1", "x.sample10.p2", "x.sample10.p3", "x.sample10.p7"]);
        assert!(sources.iter().all(|source| source.record_source() == contract::source::X_SAMPLE10));

        let one = [&sample10[..], &["--x-stream-partition", "7"]].concat();
        assert_eq!(source_names(&one).unwrap(), ["x.sample10.p7"], "the one-partition flag still works");
        let both = [&sample10[..], &["--x-stream-partitions", "1-2", "--x-stream-partition", "3"]].concat();
        assert!(source_names(&both).unwrap_err().to_string().contains("not both"));
        let error = settings(&["--x-stream-partitions", "0-4"]).unwrap_err();
        assert!(error.to_string().contains("1 to 20"), "{error}");
        let error = source_names(&["--x-bearer-token", "AAAA", "--x-stream-partitions", "1-2"]).unwrap_err();
        assert!(error.to_string().contains("X_STREAM=sample10"), "{error}");
    }

    #[test]
    fn backfill_minutes_are_0_to_5() {
        let backfill = |minutes: &str| {
            Settings::try_parse_from(["scraper", "--x-bearer-token", "AAAA", "--x-backfill-minutes", minutes])
        };
        assert!(backfill("5").is_ok());
        assert!(backfill("0").is_ok());
        let error = backfill("6").unwrap_err().to_string();
        assert!(error.contains("0..=5"), "{error}");
    }

    #[test]
    fn an_sse_source_name_the_inserter_would_not_map_is_refused_at_start_up() {
        let sse = ["--sse-url", "http://localhost:1/stream", "--sse-source-name", "mastodon.social"];
        let error = source_names(&sse).unwrap_err();
        assert!(error.to_string().contains("SSE_SOURCE_NAME must start with `sse`"), "{error}");
    }

    #[test]
    fn help_groups_the_flags_by_source_and_names_every_topic_flag() {
        use clap::CommandFactory;
        let help = Settings::command().render_long_help().to_string();
        let headings = ["Topics:", "Sources:", "X stream (--source x):", "Server-sent events (--source sse):"];
        let mut at = 0;
        for heading in headings
            .iter()
            .chain(&["Replay (--source replay):", "Instagram (--source instagram-graph, instagram-web):"])
        {
            let found = help[at..].find(heading).unwrap_or_else(|| panic!("no {heading:?} after byte {at} in\n{help}"));
            at += found;
        }
        let x = help.find("X stream (--source x):").unwrap();
        let sse = help.find("Server-sent events").unwrap();
        let token = help.find("--x-bearer-token").unwrap();
        assert!(x < token && token < sse, "an X flag under the X heading");
        for flag in [
            "--topic-tweets",
            "--topic-mastodon-statuses",
            "--topic-instagram-profiles",
            "--topic-instagram-media",
            "--topic-rejects",
        ] {
            assert!(help.contains(flag), "{flag}");
        }
    }

    #[test]
    fn each_sse_url_is_a_stream_of_its_own_named_by_its_instance() {
        let two =
            ["--sse-url", "https://mastodon.social/api/v1/streaming/public,http://127.0.0.1:4000/api/v1/streaming"];
        assert_eq!(source_names(&two).unwrap(), ["sse.mastodon@mastodon.social", "sse.mastodon@127.0.0.1:4000"]);
        let tokens = [&two[..], &["--sse-bearer-token", "a,b,c"]].concat();
        let error = source_names(&tokens).unwrap_err();
        assert!(error.to_string().contains("3 tokens for 2 SSE_URLs"), "{error}");
        let twice = ["--sse-url", "https://a.example/stream,https://A.example:443/other"];
        let error = source_names(&twice).unwrap_err();
        assert!(error.to_string().contains("instance a.example twice"), "{error}");
    }
}
