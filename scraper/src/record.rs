//! One scraped payload on its way to Kafka: the source's raw JSON as value, its natural id as key, and the
//! metadata headers of the Kafka contract (docs/architecture.md).
//!
//! Built once a line at full stream rate, so nothing in it is allocated that is the same for every record:
//! the source name is shared, the constant headers are `'static`, and the timestamp is a stack buffer
//! formatted at most once a millisecond.

use std::cell::Cell;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};

pub use contract::header;

/// A record ready to produce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    /// The source's natural id, so that one entity always lands in one partition, in order.
    pub key: Option<String>,
    pub payload: Vec<u8>,
    /// The `source` header: shared by every record of the source.
    pub source: Arc<str>,
    pub scraped_at: ScrapedAt,
    /// The `error` header: why validation failed; only on records bound for the rejects topic.
    pub error: Option<String>,
    /// Headers beyond the contract's, for context the payload itself lacks; after the contract's.
    pub extra_headers: Vec<(&'static str, String)>,
}

impl Record {
    /// A payload that passed validation, with the contract's headers.
    pub fn accepted(topic: &str, key: String, payload: Vec<u8>, source: Arc<str>, scraped_at: DateTime<Utc>) -> Self {
        Self {
            topic: topic.to_owned(),
            key: Some(key),
            payload,
            source,
            scraped_at: ScrapedAt::new(scraped_at),
            error: None,
            extra_headers: Vec::new(),
        }
    }

    /// A payload that failed validation, bound for the rejects topic, with the reason in the `error` header.
    pub fn rejected(topic: &str, payload: Vec<u8>, source: Arc<str>, scraped_at: DateTime<Utc>, error: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            key: None,
            payload,
            source,
            scraped_at: ScrapedAt::new(scraped_at),
            error: Some(error.to_owned()),
            extra_headers: Vec::new(),
        }
    }

    pub fn is_reject(&self) -> bool {
        self.error.is_some()
    }

    /// The headers as produced, in the contract's order: source, scraped_at, content_type, scraper_version,
    /// then error (rejects only), then the extra ones.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        [
            (header::SOURCE, &*self.source),
            (header::SCRAPED_AT, self.scraped_at.as_str()),
            (header::CONTENT_TYPE, header::JSON),
            (header::SCRAPER_VERSION, env!("CARGO_PKG_VERSION")),
        ]
        .into_iter()
        .chain(self.error.as_deref().map(|error| (header::ERROR, error)))
        .chain(self.extra_headers.iter().map(|(name, value)| (*name, value.as_str())))
    }

    /// How many headers [`Record::headers`] yields.
    pub fn header_count(&self) -> usize {
        4 + usize::from(self.error.is_some()) + self.extra_headers.len()
    }
}

/// The `scraped_at` header: RFC 3339 in UTC with milliseconds (`2026-01-31T12:34:56.789Z`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ScrapedAt {
    /// 24 bytes for years 0 to 9999; room for chrono's longer forms of other years.
    text: [u8; 32],
    len: u8,
}

thread_local! {
    /// The last timestamp formatted on this thread, by its Unix milliseconds: records of one millisecond
    /// share it, so a stream formats about a thousand times a second, not once a line.
    static LAST_FORMATTED: Cell<Option<(i64, ScrapedAt)>> = const { Cell::new(None) };
}

impl ScrapedAt {
    pub fn new(at: DateTime<Utc>) -> Self {
        let millis = at.timestamp_millis();
        if let Some((cached, formatted)) = LAST_FORMATTED.get()
            && cached == millis
        {
            return formatted;
        }
        let formatted = Self::format(at);
        LAST_FORMATTED.set(Some((millis, formatted)));
        formatted
    }

    fn format(at: DateTime<Utc>) -> Self {
        let text = at.to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut formatted = Self { text: [0; 32], len: text.len().min(32) as u8 };
        formatted.text[..formatted.len as usize].copy_from_slice(&text.as_bytes()[..formatted.len as usize]);
        formatted
    }

    pub fn as_str(&self) -> &str {
        // Copied whole from a `String` (no year chrono formats is longer than 32 bytes): valid UTF-8.
        std::str::from_utf8(&self.text[..self.len as usize]).unwrap_or_default()
    }
}

impl std::fmt::Debug for ScrapedAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{SecondsFormat, TimeZone, Utc};

    use super::{Record, ScrapedAt, header};

    #[test]
    fn scraped_at_is_rfc3339_with_milliseconds_also_when_reused_within_a_millisecond() {
        let at = Utc.timestamp_millis_opt(1_767_225_600_123).unwrap();
        let later = at + chrono::Duration::microseconds(400);
        assert_eq!(ScrapedAt::new(at).as_str(), "2026-01-01T00:00:00.123Z");
        assert_eq!(ScrapedAt::new(later).as_str(), "2026-01-01T00:00:00.123Z");
        let next = at + chrono::Duration::milliseconds(1);
        assert_eq!(ScrapedAt::new(next).as_str(), next.to_rfc3339_opts(SecondsFormat::Millis, true));
    }

    #[test]
    fn headers_come_in_the_contract_order_with_error_and_extras_last() {
        let mut record = Record::rejected("rejects", b"x".to_vec(), "x.sample".into(), Utc::now(), "not JSON");
        record.extra_headers.push(("extra", "1".into()));
        let names: Vec<&str> = record.headers().map(|(name, _)| name).collect();
        assert_eq!(
            names,
            [header::SOURCE, header::SCRAPED_AT, header::CONTENT_TYPE, header::SCRAPER_VERSION, header::ERROR, "extra"]
        );
        assert_eq!(record.header_count(), names.len());
        assert_eq!(record.headers().nth(2).unwrap().1, header::JSON);
    }
}
