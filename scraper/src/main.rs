//! `scraper`: see `scraper --help`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use common::ops::{self, Health};
use prometheus_client::registry::Registry;
use scraper::kafka_sink::KafkaSink;
use scraper::metrics::Metrics;
use scraper::run::{self, Options};
use scraper::settings::Settings;
use scraper::source::Source;
use tokio_util::sync::CancellationToken;

/// Each record is a few allocations made on one thread and freed on another (a source allocates, the
/// forwarder frees), among 64 KiB stream buffers whose every free makes glibc consolidate its small bins: under
/// callgrind glibc's allocator cost the reading task 7% and the forwarder 22% more instructions than this one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    dotenvy::dotenv().ok();
    let settings = Settings::parse();
    common::telemetry::init(settings.log_format);
    common::exit::report("scraper", run(settings).await)
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let config = settings.kafka_config(std::env::vars());
    let sources = settings.sources_with(&config)?;
    let shutdown = common::shutdown::on_signal()?;
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    metrics.start_series(&sources, settings.topics.name(&contract::topic::REJECTS));
    let health = Health::default();
    ops::serve(settings.metrics_addr, Arc::new(registry), health.clone(), shutdown.child_token()).await?;

    let sink = Arc::new(KafkaSink::new(config).context("create the Kafka producer")?);
    if !ensure_topics(&sink, &settings, &sources, &health, &shutdown).await {
        return Ok(());
    }
    health.clear();
    let warm = (sink.clone(), settings.topics.name(&contract::topic::REJECTS).to_owned());
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || warm.0.connect(&warm.1, Duration::from_secs(10))).await {
        tracing::warn!(error = %e, "the producer is not connected yet; records wait in the queue until it is");
    }

    let options = Options {
        queue_bytes: settings.queue_bytes,
        rejects_topic: settings.topics.name(&contract::topic::REJECTS).to_owned(),
        flush_timeout: settings.flush_timeout,
        progress_interval: settings.progress_interval,
    };
    let outcome = run::run(sources, sink.clone(), metrics, &options, health, shutdown).await;
    sink.flush(Duration::from_secs(1)).ok();
    if let Some(reason) = outcome.producer_failed {
        bail!(
            "the Kafka producer failed for good ({} records read were not acknowledged): {reason}",
            outcome.forwarded.unacknowledged
        );
    }
    if outcome.forwarded.unacknowledged > 0 {
        bail!("{} records were read but never acknowledged by the broker", outcome.forwarded.unacknowledged);
    }
    if let Some((source, error)) = outcome.failed_sources.into_iter().next() {
        return Err(error.context(format!("source {source}")));
    }
    Ok(())
}

/// Creates the contract's topics, waiting for the broker while it is unreachable. `false` on shutdown.
async fn ensure_topics(
    sink: &KafkaSink,
    settings: &Settings,
    sources: &[Box<dyn Source>],
    health: &Health,
    shutdown: &CancellationToken,
) -> bool {
    let mut delay = Duration::from_secs(1);
    // Unhealthy until the broker answered: an attempt against an unreachable broker takes a while.
    health.set_problem(format!("creating the topics on {}", settings.bootstrap_servers));
    loop {
        // Every topic of the contract (the inserter subscribes to them all), and any other a source was told
        // to write to.
        let mut topics: Vec<String> = settings.topics.iter().map(|(_, name)| name.to_owned()).collect();
        for topic in sources.iter().flat_map(|source| source.topics()) {
            if !topics.contains(&topic) {
                topics.push(topic);
            }
        }
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        let attempt = tokio::select! {
            attempt = sink.ensure_topics(&topics, settings.partitions) => attempt,
            _ = shutdown.cancelled() => return false,
        };
        match attempt {
            Ok(()) => return true,
            Err(e) => {
                let problem = format!("cannot create the topics on {}: {e}", settings.bootstrap_servers);
                tracing::warn!(error = %problem, retry_in = ?delay, "waiting for the broker");
                health.set_problem(problem);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => delay = (delay * 2).min(Duration::from_secs(30)),
            _ = shutdown.cancelled() => return false,
        }
    }
}
