//! Code the scraper and the inserter share, and nothing else.

pub mod kafka;
pub mod telemetry;
