//! Metric helpers both binaries use: the `<prefix>_build_info` gauge, and counter families whose series can be
//! summed.

use std::hash::Hash;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Registers `<prefix>_build_info{version}`, always 1: dashboards join on it to show which version runs, and
/// a change of its label marks a deploy.
pub fn register_build_info(registry: &mut Registry, prefix: &str, version: &str) {
    let info = Family::<Vec<(&'static str, String)>, Gauge>::default();
    info.get_or_create(&vec![("version", version.to_owned())]).set(1);
    registry.sub_registry_with_prefix(prefix).register("build_info", "The version of the running binary", info);
}

/// A counter family that keeps a handle of each of its series: a [`Family`] can be neither listed nor summed,
/// and the logs want totals. Meant for label sets that are few and known at start-up; a caller on a hot path
/// keeps the [`Counter`] it got rather than asking again.
#[derive(Clone, Debug)]
pub struct CounterSet<L> {
    family: Family<L, Counter>,
    series: Arc<Mutex<Vec<(L, Counter)>>>,
}

impl<L: Clone + Hash + Eq> Default for CounterSet<L> {
    fn default() -> Self {
        Self { family: Family::default(), series: Arc::default() }
    }
}

impl<L: Clone + Hash + Eq> CounterSet<L> {
    /// The counter of `labels`, created at 0 (and so scraped from now on) if it is new.
    pub fn counter(&self, labels: &L) -> Counter {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, counter)) = series.iter().find(|(known, _)| known == labels) {
            return counter.clone();
        }
        let counter = self.family.get_or_create(labels).clone();
        series.push((labels.clone(), counter.clone()));
        counter
    }

    /// The sum of the series whose labels `pick` selects.
    pub fn sum(&self, pick: impl Fn(&L) -> bool) -> u64 {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series.iter().filter(|(labels, _)| pick(labels)).map(|(_, counter)| counter.get()).sum()
    }

    /// The sum of every series.
    pub fn total(&self) -> u64 {
        self.sum(|_| true)
    }

    /// The family, to register.
    pub fn family(&self) -> Family<L, Counter> {
        self.family.clone()
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;

    use super::{CounterSet, register_build_info};

    #[test]
    fn build_info_is_one_with_the_version() {
        let mut registry = Registry::default();
        register_build_info(&mut registry, "scraper", "1.2.3");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("# TYPE scraper_build_info gauge"), "{text}");
        assert!(text.contains("scraper_build_info{version=\"1.2.3\"} 1\n"), "{text}");
    }

    #[test]
    fn a_counter_set_shows_its_series_at_zero_and_sums_them() {
        let set = CounterSet::<Vec<(&'static str, String)>>::default();
        let mut registry = Registry::default();
        registry.register("records", "Records", set.family());
        let (a, b) = (vec![("topic", "a".to_owned())], vec![("topic", "b".to_owned())]);
        set.counter(&a).inc_by(2);
        set.counter(&b);
        set.counter(&a).inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("records_total{topic=\"a\"} 3\n"), "{text}");
        assert!(text.contains("records_total{topic=\"b\"} 0\n"), "{text}");
        assert_eq!((set.total(), set.sum(|labels| labels == &b)), (3, 0));
    }
}
