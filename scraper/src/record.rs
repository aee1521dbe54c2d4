//! One scraped payload on its way to Kafka: the source's raw JSON as value, its natural id as key, and the
//! metadata headers of the Kafka contract (docs/architecture.md).

use chrono::{DateTime, SecondsFormat, Utc};

/// Header names of the Kafka contract.
pub mod header {
    /// Which source produced the record, e.g. `x.sample` or `replay`; the inserter picks its mapping by it.
    pub const SOURCE: &str = "source";
    /// When the scraper read the payload, RFC 3339 in UTC.
    pub const SCRAPED_AT: &str = "scraped_at";
    pub const CONTENT_TYPE: &str = "content_type";
    pub const SCRAPER_VERSION: &str = "scraper_version";
    /// On the rejects topic only: why the payload was rejected.
    pub const ERROR: &str = "error";
}

pub const JSON_CONTENT_TYPE: &str = "application/json";

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
        (header::CONTENT_TYPE, JSON_CONTENT_TYPE.to_owned()),
        (header::SCRAPER_VERSION, env!("CARGO_PKG_VERSION").to_owned()),
    ]
}
