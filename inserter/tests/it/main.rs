//! The inserter crate's integration tests: one binary, one module per area (a single link of the
//! crate's dependencies instead of one per file).

mod bluesky_mapping;
mod consume;
mod env_example;
mod failures;
mod flush;
mod index_limits;
mod instagram_consume;
mod instagram_mapping;
mod instagram_one_profile;
mod instagram_writer;
mod mastodon_consume;
mod mastodon_mapping;
mod mastodon_writer;
mod metrics;
mod poison;
mod poison_consume;
mod redrive;
mod retention;
mod scraped_ahead;
mod startup_migrations;
mod support;
mod twitter_mapping;
mod writer;
