//! A batch from records to durable rows: decoded on a blocking thread, written in one transaction with its
//! offsets, retried while the database is unavailable (the health says why meanwhile), and reported in the
//! metrics and the log once durable. It needs a database and no broker.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use sea_orm::DatabaseConnection;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use common::backoff::Backoff;
use common::ops::Health;

use crate::batch::{Batch, Routes};
use crate::consumer::Partition;
use crate::limits::LeftOut;
use crate::metrics::Metrics;
use crate::record::ConsumedRecord;
use crate::writer::{self, WriteError, Written};

/// What a batch needs to become durable: cheap to clone into the task that writes it.
#[derive(Clone)]
pub struct Flush {
    pub db: DatabaseConnection,
    /// The consumer group, whose offsets are written with the rows.
    pub group: String,
    pub routes: Routes,
    pub metrics: Metrics,
    pub health: Health,
}

/// A batch being decoded, and when its records were taken.
pub struct Decoding {
    started: Instant,
    handle: JoinHandle<Batch>,
}

/// A batch made durable.
#[derive(Debug)]
pub struct Flushed {
    pub records: usize,
    pub written: Written,
    pub left_out: LeftOut,
    /// Records stored as scraped at another time than they gave: (topic, where it is and why).
    pub clamped: Vec<(String, String)>,
    /// The offset after the batch's last record, by partition: what Kafka's commit mirrors.
    pub next_offsets: BTreeMap<Partition, i64>,
    pub elapsed: Duration,
}

impl Flush {
    /// Decodes `records` into a batch on a blocking thread, so that it can run beside a write in flight.
    pub fn decode(&self, records: Vec<ConsumedRecord>) -> Decoding {
        let routes = self.routes.clone();
        Decoding {
            started: Instant::now(),
            handle: tokio::task::spawn_blocking(move || Batch::decode(records, &routes)),
        }
    }

    /// Writes the batch `decoding` gives until it is durable, retrying with backoff while the database is
    /// unavailable. An error means it could not be (an error no retry mends, or the database still failing at
    /// `shutdown`): nothing of it was committed, and its records will be consumed again.
    pub async fn write(self, decoding: Decoding, shutdown: CancellationToken) -> anyhow::Result<Flushed> {
        let Decoding { started, handle } = decoding;
        let mut batch = handle.await.context("decoding a batch panicked")?;
        let count = batch.len();
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        loop {
            match writer::write(&self.db, &self.group, &mut batch).await {
                Ok(written) => {
                    self.health.clear();
                    let clamped = batch.clamped().into_iter().map(|(topic, why)| (topic.to_owned(), why)).collect();
                    return Ok(Flushed {
                        records: count,
                        written,
                        left_out: batch.left_out().clone(),
                        clamped,
                        next_offsets: batch.next_offsets().clone(),
                        elapsed: started.elapsed(),
                    });
                }
                Err(WriteError::Fatal(reason)) => {
                    self.health.set_problem(format!("stopped: {reason}"));
                    anyhow::bail!("cannot write a batch of {count} records: {reason}");
                }
                Err(e @ WriteError::Unavailable(_)) => {
                    self.metrics.write_failures.inc();
                    self.health.set_problem(format!("database write failing: {e}"));
                    if shutdown.is_cancelled() {
                        return Err(e).with_context(|| {
                            format!(
                                "write a batch of {count} records at shutdown (not committed; they will be consumed again)"
                            )
                        });
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, records = count, retry_in = ?delay, "batch write failed, nothing committed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
            }
        }
    }

    /// Counts a durable batch in the metrics and logs what deserves a line.
    pub fn report(&self, flushed: &Flushed) {
        self.metrics.batches.inc();
        self.metrics.count_written(&flushed.written);
        self.metrics.batch_duration.observe(flushed.elapsed.as_secs_f64());
        self.metrics.count_left_out(&flushed.left_out);
        if !flushed.left_out.is_empty() {
            tracing::warn!(left_out = ?flushed.left_out, "values too long for an index left out of it (kept in raw)");
        }
        self.metrics.count_clamped(flushed.clamped.iter().map(|(topic, _)| topic.as_str()));
        // One line a batch, however many: whoever may write a topic could otherwise fill the log.
        if let Some((_, first)) = flushed.clamped.first() {
            tracing::warn!(
                records = flushed.clamped.len(),
                first = %first,
                "scraped_at too far ahead of this clock: stored as scraped at an earlier time"
            );
        }
        if flushed.written.dead_letters() > 0 {
            tracing::warn!(dead_letters = flushed.written.dead_letters(), "records dead-lettered to ingest_errors");
        }
        tracing::debug!(records = flushed.records, rows_offered = flushed.written.rows_offered(), elapsed = ?flushed.elapsed, "batch committed");
    }
}
