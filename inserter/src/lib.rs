//! The inserter: consumes the scraper's topics and lands each record in Postgres.

pub mod batch;
pub mod database;
pub mod mapping;
pub mod record;
pub mod settings;
pub mod writer;
