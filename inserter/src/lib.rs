//! The inserter: consumes the scraper's topics and lands each record in Postgres.

pub mod database;
pub mod mapping;
pub mod settings;
