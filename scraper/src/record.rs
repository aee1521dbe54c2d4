//! One scraped payload on its way to Kafka: the source's raw JSON as value, its natural id as key, and the
//! metadata headers of the Kafka contract (docs/architecture.md).

use chrono::{DateTime, SecondsFormat, Utc};

pub use contract::header;

/// A record ready to produce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    /// The source's natural id, so that one entity always lands in one partition, in order.
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Record {
    /// A payload that passed validation, with the contract's headers.
    pub fn accepted(topic: &str, key: String, payload: Vec<u8>, source: &str, scraped_at: DateTime<Utc>) -> Self {
        Self { topic: topic.to_owned(), key: Some(key), payload, headers: contract_headers(source, scraped_at) }
    }

    /// A payload that failed validation, bound for the rejects topic, with the reason in the `error` header.
    pub fn rejected(topic: &str, payload: Vec<u8>, source: &str, scraped_at: DateTime<Utc>, error: &str) -> Self {
        let mut headers = contract_headers(source, scraped_at);
        headers.push((header::ERROR, error.to_owned()));
        Self { topic: topic.to_owned(), key: None, payload, headers }
    }
}

fn contract_headers(source: &str, scraped_at: DateTime<Utc>) -> Vec<(&'static str, String)> {
    vec![
        (header::SOURCE, source.to_owned()),
        (header::SCRAPED_AT, scraped_at.to_rfc3339_opts(SecondsFormat::Millis, true)),
        (header::CONTENT_TYPE, header::JSON.to_owned()),
        (header::SCRAPER_VERSION, env!("CARGO_PKG_VERSION").to_owned()),
    ]
}
