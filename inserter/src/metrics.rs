//! The inserter's Prometheus metrics, updated once per batch (lag from librdkafka's statistics).

use std::sync::atomic::AtomicI64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone)]
pub struct Metrics {
    pub records_consumed: Counter,
    pub rows_written: Counter,
    pub dead_letters: Counter,
    pub batches: Counter,
    /// A database write that failed and will be retried (the batch is not lost).
    pub write_failures: Counter,
    pub batch_duration: Histogram,
    /// Values left out of an indexed column (kept in `raw`), by `table` and `column`.
    pub values_cut: Family<Vec<(&'static str, &'static str)>, Counter>,
    /// Records behind the end of the assigned partitions, as of the last commit.
    pub consumer_lag: Gauge<i64, AtomicI64>,
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            records_consumed: Counter::default(),
            rows_written: Counter::default(),
            dead_letters: Counter::default(),
            batches: Counter::default(),
            write_failures: Counter::default(),
            batch_duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            values_cut: Family::default(),
            consumer_lag: Gauge::default(),
        };
        let inserter = registry.sub_registry_with_prefix("inserter");
        inserter.register("records_consumed", "Records read from Kafka", metrics.records_consumed.clone());
        inserter.register(
            "rows_written",
            "Rows offered to Postgres in committed batches",
            metrics.rows_written.clone(),
        );
        inserter.register("dead_letters", "Records written to ingest_errors", metrics.dead_letters.clone());
        inserter.register("batches", "Batches committed", metrics.batches.clone());
        inserter.register(
            "write_failures",
            "Batch writes that failed and were retried",
            metrics.write_failures.clone(),
        );
        inserter.register_with_unit(
            "batch_duration",
            "Time to decode and commit a batch",
            prometheus_client::registry::Unit::Seconds,
            metrics.batch_duration.clone(),
        );
        inserter.register(
            "values_cut",
            "Values too long for their column's index, left out of it (kept whole in raw)",
            metrics.values_cut.clone(),
        );
        inserter.register("consumer_lag_records", "Records not yet consumed", metrics.consumer_lag.clone());
        metrics
    }

    /// Counts what a committed batch left out of indexed columns.
    pub fn count_cuts(&self, cuts: &crate::limits::Cuts) {
        for (&(table, column), &n) in cuts {
            self.values_cut.get_or_create(&vec![("table", table), ("column", column)]).inc_by(n);
        }
    }
}
