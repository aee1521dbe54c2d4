//! The scraper: sources that read social-media payloads, and the Kafka sink they all write to.

pub mod kafka_sink;
pub mod record;
pub mod settings;
pub mod topics;
pub mod x;
