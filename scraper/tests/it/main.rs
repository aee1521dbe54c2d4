//! The scraper crate's integration tests: one binary, one module per area (a single link of the
//! crate's dependencies instead of one per file).

mod binary;
mod bluesky;
mod env_example;
mod instagram_graph;
mod instagram_web;
mod kafka_sink;
mod replay;
mod sse;
mod support;
mod topics;
mod x_backfill;
mod x_rules;
mod x_stream;
