//! The entity crate's integration tests: one binary, one module per area (a single link of the
//! crate's dependencies instead of one per file).

mod schema_matches_migrations;
mod twitter_data_cdc;
