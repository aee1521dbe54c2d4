//! The testkit crate's integration tests: one binary, one module per area (a single link of the
//! crate's dependencies instead of one per file).

mod bluesky_end_to_end;
mod compose_config;
mod contract;
mod debezium_end_to_end;
mod instagram_end_to_end;
mod jetstream;
mod local_pipeline;
mod observability;
mod pipeline_end_to_end;
mod services;
mod support;
mod x_backfill_end_to_end;
