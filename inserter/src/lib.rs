//! The inserter: consumes the scraper's topics and lands each record in Postgres.

pub(crate) mod assignment;
pub mod batch;
pub mod consumer;
pub mod database;
pub(crate) mod encode;
pub mod failure;
pub mod flush;
pub(crate) mod guard;
pub mod limits;
pub mod mapping;
pub mod metrics;
pub mod offsets;
pub mod partitions;
pub(crate) mod pending;
pub mod pipeline;
pub mod record;
pub mod redrive;
pub(crate) mod rows;
pub mod settings;
pub(crate) mod table;
pub mod writer;
