//! Code the scraper and the inserter share, and nothing else.

pub mod backoff;
pub mod exit;
pub mod kafka;
pub mod metrics;
pub mod ops;
pub mod shutdown;
pub mod telemetry;
