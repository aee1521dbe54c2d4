//! `scraper`: see `scraper --help`.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use scraper::kafka_sink::KafkaSink;
use scraper::settings::Settings;

#[tokio::main]
async fn main() -> ExitCode {
    dotenvy::dotenv().ok();
    let settings = Settings::parse();
    common::telemetry::init(settings.log_format);
    common::exit::report("scraper", run(settings).await)
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let config = common::kafka::client_config(&settings.bootstrap_servers, std::env::vars());
    let sink = KafkaSink::new(config).context("create the Kafka producer")?;
    sink.ensure_topics(&settings.topics.all(), settings.partitions)
        .await
        .with_context(|| format!("create the topics on {}", settings.bootstrap_servers))?;
    // The sources (X streams, SSE, replay) are issue #5; until then the scraper provisions the topics.
    tracing::warn!("no source is built yet (issue #5): topics are in place, exiting");
    Ok(())
}
