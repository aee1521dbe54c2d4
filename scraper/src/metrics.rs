//! The scraper's Prometheus metrics. Labels have small fixed value sets: `source` (the configured sources),
//! `outcome` (`accepted`, `rejected`), `topic` (the topics the sources write, and the rejects topic) and
//! `reason` (why a source reconnected). Every series of the configured sources exists from start-up, at 0
//! ([`Metrics::start_series`]): `rate()` and `increase()` miss the first increment of a series that appears
//! only with it, and alerts and dashboards need their series before anything happened.

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use common::metrics::CounterSet;

use crate::source::Source;

type Labels = Vec<(&'static str, String)>;

/// Why a source's connection or request ended and it tries again: the `reason` label of
/// `scraper_reconnects_total`, for the X stream, the SSE streams and the Instagram web source alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconnect {
    /// The server closed a healthy stream (X's `operational-disconnect`, the end of the body, or we did, over
    /// a runaway event).
    Disconnected,
    /// Connect or read error, or a connection closed before any data arrived.
    Network,
    /// Nothing at all, not even a heartbeat, for the stall timeout.
    Stalled,
    /// An HTTP error status worth retrying (5xx and the like).
    HttpError,
    /// HTTP 429: too many connections or requests.
    RateLimited,
}

impl Reconnect {
    pub const ALL: [Self; 5] = [Self::Disconnected, Self::Network, Self::Stalled, Self::HttpError, Self::RateLimited];

    /// The `reason` label's value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Disconnected => "disconnected",
            Self::Network => "network",
            Self::Stalled => "stalled",
            Self::HttpError => "http_error",
            Self::RateLimited => "rate_limited",
        }
    }
}

/// The `outcome` of a record the broker acknowledged on a data topic.
pub const ACCEPTED: &str = "accepted";
/// The `outcome` of a record the broker acknowledged on the rejects topic.
pub const REJECTED: &str = "rejected";

#[derive(Clone, Default)]
pub struct Metrics {
    /// Lines (or events) read from a source, heartbeats excluded.
    pub lines_read: Family<Labels, Counter>,
    pub heartbeats: Family<Labels, Counter>,
    /// Records the broker acknowledged, by outcome ([`ACCEPTED`] to a data topic, [`REJECTED`] to rejects)
    /// and the topic.
    pub produced: CounterSet<Labels>,
    /// Deliveries that failed with a retriable error and were queued again.
    pub delivery_retries: Counter,
    /// Records Kafka refused for good (e.g. larger than the broker accepts); logged with their key.
    pub delivery_failures: Counter,
    pub reconnects: Family<Labels, Counter>,
    /// Times a source found the queue to Kafka full and had to wait for room.
    pub queue_full: Counter,
    /// Bytes of records read but not yet acknowledged by the broker.
    pub queued_bytes: Gauge<i64, AtomicI64>,
    /// Unix time of the last bytes (data or heartbeat) received from any streaming source.
    pub last_receive: Gauge<f64, AtomicU64>,
    /// Lines read on a connection that asked for backfill, during the minutes it asked for.
    pub backfill_lines: Family<Labels, Counter>,
    /// Events read and not kept, by source and why (a collection or kind the source does not keep).
    pub skipped: Family<Labels, Counter>,
    /// The source's own time of the last event read (Jetstream's `time_us`), in Unix seconds: how far behind
    /// the source the scraper reads, during a replay.
    pub event_time: Family<Labels, Gauge<f64, AtomicU64>>,
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        common::metrics::register_build_info(registry, "scraper", env!("CARGO_PKG_VERSION"));
        let scraper = registry.sub_registry_with_prefix("scraper");
        scraper.register(
            "lines_read",
            "Lines or events read from sources, heartbeats excluded",
            metrics.lines_read.clone(),
        );
        scraper.register("heartbeats", "Keep-alive heartbeats received", metrics.heartbeats.clone());
        scraper.register(
            "records_produced",
            "Records acknowledged by Kafka, by outcome and topic",
            metrics.produced.family(),
        );
        scraper.register(
            "delivery_retries",
            "Deliveries retried after a retriable error",
            metrics.delivery_retries.clone(),
        );
        scraper.register("delivery_failures", "Records Kafka refused for good", metrics.delivery_failures.clone());
        scraper.register("reconnects", "Reconnections of streaming sources, by reason", metrics.reconnects.clone());
        scraper.register(
            "queue_full",
            "Times a source waited for room in the queue to Kafka",
            metrics.queue_full.clone(),
        );
        scraper.register("queued_bytes", "Bytes read but not yet acknowledged by Kafka", metrics.queued_bytes.clone());
        scraper.register(
            "last_receive_timestamp_seconds",
            "Unix time of the last bytes received from a streaming source",
            metrics.last_receive.clone(),
        );
        scraper.register("backfill_lines", "Lines read during a reconnect's backfill", metrics.backfill_lines.clone());
        scraper.register(
            "events_skipped",
            "Events read and not kept (a collection or kind the source does not keep), by source and reason",
            metrics.skipped.clone(),
        );
        scraper.register(
            "event_timestamp_seconds",
            "The source's own time of the last event read (Bluesky: Jetstream's time_us), Unix seconds",
            metrics.event_time.clone(),
        );
        metrics
    }

    /// Creates, at 0, every series the `sources` (their task names and topics) and the rejects topic will
    /// count in.
    pub fn start_series(&self, sources: &[Box<dyn Source>], rejects_topic: &str) {
        for source in sources {
            let task = source.name();
            // One statement each: a label lookup holds its family's lock until the end of its statement.
            let _ = self.lines_read.get_or_create(&labels("source", &task));
            let _ = self.heartbeats.get_or_create(&labels("source", &task));
            for reason in Reconnect::ALL {
                let _ = self.reconnects.get_or_create(&reconnect_labels(&task, reason.label()));
            }
            for topic in source.topics() {
                self.produced_counter(ACCEPTED, &topic);
            }
        }
        self.produced_counter(REJECTED, rejects_topic);
    }

    /// The counter of records acknowledged with `outcome` ([`ACCEPTED`] or [`REJECTED`]) on `topic`: to keep,
    /// as a lookup builds a label set.
    pub fn produced_counter(&self, outcome: &'static str, topic: &str) -> Counter {
        self.produced.counter(&vec![("outcome", outcome.to_owned()), ("topic", topic.to_owned())])
    }

    /// An event of `source` read and not kept, for `reason`.
    pub fn skipped(&self, source: &str, reason: &str) {
        self.skipped.get_or_create(&reconnect_labels(source, reason)).inc();
    }

    pub fn reconnect(&self, source: &str, reason: Reconnect) {
        self.reconnects.get_or_create(&reconnect_labels(source, reason.label())).inc();
    }

    pub fn received_now(&self) {
        self.last_receive.set(unix_now());
    }

    /// Records acknowledged with `outcome` ([`ACCEPTED`] or [`REJECTED`]), whatever the topic.
    pub fn produced_count(&self, outcome: &str) -> u64 {
        self.produced.sum(|labels| labels.iter().any(|(name, value)| *name == "outcome" && value == outcome))
    }

    /// Lines read by `source` so far.
    pub fn lines_of(&self, source: &str) -> u64 {
        self.lines_read.get_or_create(&labels("source", source)).get()
    }

    /// Reconnects of `source` so far, whatever the reason.
    pub fn reconnects_of(&self, source: &str) -> u64 {
        Reconnect::ALL
            .iter()
            .map(|reason| self.reconnects.get_or_create(&reconnect_labels(source, reason.label())).get())
            .sum()
    }

    /// Seconds since anything arrived from a streaming source; `None` before the first bytes.
    pub fn receive_age(&self) -> Option<f64> {
        let last = self.last_receive.get();
        (last > 0.0).then(|| (unix_now() - last).max(0.0))
    }
}

fn labels(name: &'static str, value: &str) -> Labels {
    vec![(name, value.to_owned())]
}

fn reconnect_labels(source: &str, reason: &str) -> Labels {
    vec![("source", source.to_owned()), ("reason", reason.to_owned())]
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}
