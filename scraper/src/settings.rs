//! The scraper's configuration: flags, each also read from the environment (and `.env`).

use clap::Parser;
use common::telemetry::LogFormat;

use crate::topics::Topics;

#[derive(Clone, Debug, Parser)]
#[command(name = "scraper", version, about = "Scrapes social-media sources into Kafka.")]
pub struct Settings {
    /// Kafka bootstrap servers; other librdkafka properties pass through as KAFKA_<PROPERTY> variables
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", default_value = "localhost:9092")]
    pub bootstrap_servers: String,

    /// Partitions for topics the scraper creates (existing topics are left as they are)
    #[arg(long, env = "TOPIC_PARTITIONS", default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: i32,

    #[command(flatten)]
    pub topics: Topics,

    /// Log format
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}
