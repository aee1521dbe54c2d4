//! Unique names for what tests create (databases, topics, consumer groups), so that tests never share state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// `prefix_<pid>_<nanos>_<counter>`: unique across concurrent test processes and within one.
/// Lower-case ASCII, digits and `_` only, so it is a valid Postgres identifier and Kafka topic name.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{}_{nanos}_{n}", std::process::id())
}
