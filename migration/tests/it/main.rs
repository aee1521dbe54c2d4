//! The migration crate's integration tests: one binary, one module per area (a single link of the
//! crate's dependencies instead of one per file).

mod analyst_views;
mod bluesky;
mod day_boundary;
mod instagram_profile_merge;
mod mastodon_instances;
mod migrations;
mod partitions;
mod security;
mod sql;
mod steps;
