//! Runs the configured sources into Kafka until they are exhausted or shutdown is requested, then flushes:
//! sources stop reading first, the queue drains, and the producer gets a grace period to have every record
//! acknowledged. A source that fails for good ends alone; the others go on. A producer that fails for good
//! ends them all: the scraper turns unhealthy, with the reason, and its outcome says why.

use std::sync::Arc;
use std::time::Duration;

use common::ops::Health;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::forward::{Forwarded, forward};
use crate::kafka_sink::KafkaSink;
use crate::metrics::Metrics;
use crate::queue;
use crate::source::Source;

#[derive(Clone, Debug)]
pub struct Options {
    /// Bytes of records the scraper may hold between reading and the broker's acknowledgement.
    pub queue_bytes: u32,
    pub rejects_topic: String,
    /// After shutdown (or the end of the sources), how long the broker gets to acknowledge what is queued.
    pub flush_timeout: Duration,
    pub progress_interval: Duration,
}

/// How the run ended.
#[derive(Debug, Default)]
pub struct Outcome {
    pub forwarded: Forwarded,
    /// Sources that stopped with an error, and the error.
    pub failed_sources: Vec<(String, anyhow::Error)>,
    /// The fatal error of the producer, if it raised one: nothing could be delivered after it.
    pub producer_failed: Option<String>,
}

pub async fn run(
    sources: Vec<Box<dyn Source>>,
    sink: Arc<KafkaSink>,
    metrics: Metrics,
    options: &Options,
    health: Health,
    shutdown: CancellationToken,
) -> Outcome {
    let (emitter, queue) = queue::bounded(options.queue_bytes, &options.rejects_topic, metrics.clone());
    let give_up = CancellationToken::new();
    let forwarder = tokio::spawn(forward(queue, sink.clone(), metrics.clone(), give_up.clone()));
    // The run's own stop: a failed producer ends the sources without shutting down the caller's other tasks.
    let shutdown = shutdown.child_token();
    let on_producer_failure =
        tokio::spawn(stop_when_the_producer_fails(sink.clone(), health.clone(), shutdown.clone()));

    let names: Vec<String> = sources.iter().map(|s| s.name()).collect();
    let tracker = TaskTracker::new();
    let mut handles = Vec::new();
    for source in sources {
        let name = source.name();
        tracing::info!(source = %name, "source started");
        let out = emitter.for_task(&source.record_source(), &name);
        // Every log line of the source's task names it.
        let span = tracing::info_span!("source", source = %name);
        handles.push((name, tracker.spawn(source.run(out, shutdown.child_token()).instrument(span))));
    }
    tracker.close();
    // Only the sources' clones keep the queue open now: it closes when the last source ends.
    drop(emitter);

    let progress = tokio::spawn(log_progress(names, metrics.clone(), options.progress_interval));
    let grace = options.flush_timeout;
    let deadline = {
        let (give_up, shutdown) = (give_up.clone(), shutdown.clone());
        tokio::spawn(async move {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
            give_up.cancel();
        })
    };

    let mut outcome = Outcome::default();
    for (name, handle) in handles {
        match handle.await {
            Ok(Ok(())) => tracing::info!(source = %name, "source finished"),
            Ok(Err(e)) => {
                tracing::error!(source = %name, error = %format!("{e:#}"), "source stopped");
                outcome.failed_sources.push((name, e));
            }
            Err(e) => outcome.failed_sources.push((name, anyhow::anyhow!("the source task panicked: {e}"))),
        }
    }
    tracing::info!("sources stopped: waiting for the broker to acknowledge what is queued");
    // The sources are done; bound the flush even when no shutdown was requested (e.g. a replay that ended).
    let flush_deadline = {
        let give_up = give_up.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            give_up.cancel();
        })
    };
    outcome.forwarded = forwarder.await.unwrap_or_default();
    for task in [progress, deadline, flush_deadline, on_producer_failure] {
        task.abort();
    }
    // Also when the forwarder saw the failure before the task above did.
    outcome.producer_failed = sink.fatal_error();
    if let Some(reason) = &outcome.producer_failed {
        health.set_problem(producer_failure(reason));
    }
    log_summary(&outcome, &metrics);
    outcome
}

/// A fatal producer error is for good: no delivery can succeed after it, so reading on would only fill the
/// queue. Unhealthy at once, with the reason, and the sources stop.
async fn stop_when_the_producer_fails(sink: Arc<KafkaSink>, health: Health, stop_sources: CancellationToken) {
    sink.failed().await;
    let reason = sink.fatal_error().unwrap_or_else(|| "unknown".into());
    tracing::error!(error = %reason, "the Kafka producer failed for good: stopping the sources");
    health.set_problem(producer_failure(&reason));
    stop_sources.cancel();
}

fn producer_failure(reason: &str) -> String {
    format!("the Kafka producer failed for good: {reason}")
}

async fn log_progress(sources: Vec<String>, metrics: Metrics, every: Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let lines: u64 = sources.iter().map(|s| metrics.lines_of(s)).sum();
        let reconnects: u64 = sources.iter().map(|s| metrics.reconnects_of(s)).sum();
        tracing::info!(
            lines_read = lines,
            produced = metrics.produced_count("accepted"),
            rejected = metrics.produced_count("rejected"),
            reconnects,
            queue_full = metrics.queue_full.get(),
            queued_bytes = metrics.queued_bytes.get(),
            heartbeat_age_s = metrics.receive_age().map(|age| format!("{age:.1}")).unwrap_or_else(|| "-".into()),
            "progress"
        );
    }
}

fn log_summary(outcome: &Outcome, metrics: &Metrics) {
    let forwarded = &outcome.forwarded;
    if let Some(reason) = &outcome.producer_failed {
        tracing::error!(error = %reason, "the Kafka producer failed for good");
    }
    if forwarded.unacknowledged > 0 {
        tracing::error!(
            unacknowledged = forwarded.unacknowledged,
            "records were read but the broker did not acknowledge them within the flush timeout"
        );
    }
    tracing::info!(
        produced = forwarded.accepted,
        rejected = forwarded.rejected,
        failed = forwarded.failed,
        unacknowledged = forwarded.unacknowledged,
        delivery_retries = metrics.delivery_retries.get(),
        "scraper stopped"
    );
}
