//! The inserter's Prometheus metrics, updated once per batch (lag from librdkafka's statistics). The series of
//! every topic the inserter reads and every table it writes exist from start-up, at 0: `rate()` and
//! `increase()` miss the first increment of a series that appears only with it, and alerts and dashboards need
//! their series before anything happened.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use common::metrics::CounterSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

#[derive(Clone)]
pub struct Metrics {
    /// Records read from Kafka, by `topic`.
    pub records_consumed: CounterSet<Labels>,
    /// Rows offered to Postgres in committed batches, by `table`.
    pub rows_written: CounterSet<Labels>,
    /// Records written to `ingest_errors`, by the `topic` they came from.
    pub dead_letters: CounterSet<Labels>,
    /// Records stored as scraped at another time than they gave, which was too far ahead, by `topic`.
    pub scraped_at_clamped: CounterSet<Labels>,
    pub batches: Counter,
    /// A database write that failed and will be retried (the batch is not lost).
    pub write_failures: Counter,
    pub batch_duration: Histogram,
    /// Values left out of an indexed column (kept in `raw`), by `table` and `column`.
    pub values_left_out: Family<Vec<(&'static str, &'static str)>, Counter>,
    /// Records behind the end of each assigned partition as of its last commit, by `topic` and `partition`.
    pub consumer_lag: Family<Labels, Gauge<i64, AtomicI64>>,
    /// Partition maintenance runs that failed, by `table` (retried at the next run).
    pub partition_maintenance_failures: CounterSet<Labels>,
    /// Partitions dropped by retention, by `table`.
    pub partitions_dropped: CounterSet<Labels>,
    /// Maintenance runs that found another session running the table's maintenance, by `table`.
    pub partition_maintenance_skipped: CounterSet<Labels>,
    /// When a run last did the table's maintenance, as the database recorded it (Unix seconds; 0: never), by
    /// `table`: every member reports it, whichever member did the run.
    pub partition_maintenance_last_done: Family<Labels, Gauge<i64, AtomicI64>>,
    /// The sum of `consumer_lag`, for the progress line.
    lag_total: Arc<AtomicI64>,
}

impl Metrics {
    /// The inserter's metrics in `registry`, with the series of `topics` (those it reads) and of every table.
    pub fn new(registry: &mut Registry, topics: &[&str]) -> Self {
        let metrics = Self {
            records_consumed: CounterSet::default(),
            rows_written: CounterSet::default(),
            dead_letters: CounterSet::default(),
            scraped_at_clamped: CounterSet::default(),
            batches: Counter::default(),
            write_failures: Counter::default(),
            batch_duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            values_left_out: Family::default(),
            consumer_lag: Family::default(),
            partition_maintenance_failures: CounterSet::default(),
            partitions_dropped: CounterSet::default(),
            partition_maintenance_skipped: CounterSet::default(),
            partition_maintenance_last_done: Family::default(),
            lag_total: Arc::default(),
        };
        for topic in topics {
            metrics.consumed_on(topic);
            metrics.dead_letters.counter(&topic_labels(topic));
            metrics.scraped_at_clamped.counter(&topic_labels(topic));
        }
        for table in crate::tables::Tables::names() {
            metrics.rows_written.counter(&table_labels(table));
        }
        for table in crate::partitions::tables() {
            metrics.partition_maintenance_failures.counter(&table_labels(table));
            metrics.partitions_dropped.counter(&table_labels(table));
            metrics.partition_maintenance_skipped.counter(&table_labels(table));
            metrics.partition_maintenance_last_done.get_or_create(&table_labels(table)).set(0);
        }
        common::metrics::register_build_info(registry, "inserter", env!("CARGO_PKG_VERSION"));
        let inserter = registry.sub_registry_with_prefix("inserter");
        inserter.register("records_consumed", "Records read from Kafka, by topic", metrics.records_consumed.family());
        inserter.register(
            "rows_written",
            "Rows offered to Postgres in committed batches, by table",
            metrics.rows_written.family(),
        );
        inserter.register(
            "dead_letters",
            "Records written to ingest_errors, by the topic they came from",
            metrics.dead_letters.family(),
        );
        inserter.register(
            "scraped_at_clamped",
            "Records whose scraped_at (else broker timestamp) was too far ahead of the inserter's clock, stored as scraped at an earlier time, by topic",
            metrics.scraped_at_clamped.family(),
        );
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
        // The series keeps its first name, which dashboards and alerts may use: nothing is cut, a value is left
        // out of the index and kept in `raw`.
        inserter.register(
            "values_cut",
            "Values too long for their column's index, left out of it (kept whole in raw)",
            metrics.values_left_out.clone(),
        );
        inserter.register(
            "partition_maintenance_failures",
            "Partition maintenance runs that failed (the next run retries), by table",
            metrics.partition_maintenance_failures.family(),
        );
        inserter.register(
            "partitions_dropped",
            "Partitions dropped by retention, by table",
            metrics.partitions_dropped.family(),
        );
        inserter.register(
            "partition_maintenance_skipped",
            "Partition maintenance runs skipped because another session was running it, by table",
            metrics.partition_maintenance_skipped.family(),
        );
        inserter.register(
            "partition_maintenance_last_done_timestamp_seconds",
            "When a run last made the table's coming partitions and applied its retention (0: never), by table",
            metrics.partition_maintenance_last_done.clone(),
        );
        inserter.register(
            "consumer_lag_records",
            "Records not yet consumed, by assigned partition, as of its last commit",
            metrics.consumer_lag.clone(),
        );
        metrics
    }

    /// The counter of records consumed from `topic`: to keep, as a lookup builds a label set.
    pub fn consumed_on(&self, topic: &str) -> Counter {
        self.records_consumed.counter(&topic_labels(topic))
    }

    /// Counts what a committed batch wrote.
    pub fn count_written(&self, written: &crate::writer::Written) {
        for (table, &rows) in &written.rows_by_table {
            self.rows_written.counter(&table_labels(table)).inc_by(rows as u64);
        }
        for (topic, &dead_letters) in &written.dead_letters_by_topic {
            self.dead_letters.counter(&topic_labels(topic)).inc_by(dead_letters as u64);
        }
    }

    /// Counts the records of a committed batch whose time of scrape was clamped (their topics).
    pub fn count_clamped<'a>(&self, topics: impl IntoIterator<Item = &'a str>) {
        for topic in topics {
            self.scraped_at_clamped.counter(&topic_labels(topic)).inc();
        }
    }

    /// Counts what a committed batch left out of indexed columns.
    pub fn count_left_out(&self, left_out: &crate::limits::LeftOut) {
        for (&(table, column), &n) in left_out {
            self.values_left_out.get_or_create(&vec![("table", table), ("column", column)]).inc_by(n);
        }
    }

    /// Counts what a partition maintenance run of `table` did (`None`: it failed).
    pub fn count_maintenance(&self, table: &str, done: Option<&crate::partitions::Maintained>) {
        let labels = table_labels(table);
        let Some(done) = done else {
            self.partition_maintenance_failures.counter(&labels).inc();
            return;
        };
        self.partitions_dropped.counter(&labels).inc_by(done.dropped.max(0) as u64);
        if done.skipped {
            self.partition_maintenance_skipped.counter(&labels).inc();
        }
        if let Some(at) = done.last_done_at {
            self.partition_maintenance_last_done.get_or_create(&labels).set(at);
        }
    }

    /// Sets the lag of partition `partition` of `topic`.
    pub fn set_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.consumer_lag.get_or_create(&partition_labels(topic, partition)).set(lag);
    }

    /// Drops the lag series of a partition this member no longer reads: its last value would stay forever.
    pub fn forget_lag(&self, topic: &str, partition: i32) {
        self.consumer_lag.remove(&partition_labels(topic, partition));
    }

    pub fn set_lag_total(&self, lag: i64) {
        self.lag_total.store(lag, Ordering::Relaxed);
    }

    /// Records behind, over every assigned partition whose lag is known.
    pub fn lag_total(&self) -> i64 {
        self.lag_total.load(Ordering::Relaxed)
    }
}

fn topic_labels(topic: &str) -> Labels {
    vec![("topic", topic.to_owned())]
}

fn table_labels(table: &str) -> Labels {
    vec![("table", table.to_owned())]
}

fn partition_labels(topic: &str, partition: i32) -> Labels {
    vec![("topic", topic.to_owned()), ("partition", partition.to_string())]
}
