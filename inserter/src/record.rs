//! A record as consumed from Kafka, detached from the consumer so that batches can outlive a poll, and what
//! its headers say about it.

use chrono::{DateTime, Utc};
use entity::ingest_errors;
use sea_orm::ActiveValue::{NotSet, Set};
use serde_json::{Map, Value};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumedRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The broker's timestamp: the scrape time when the `scraped_at` header is missing.
    pub timestamp: Option<DateTime<Utc>>,
}

impl ConsumedRecord {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| value.as_deref())
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// The `source` header, or `unknown` for records from producers that set none.
    pub fn source(&self) -> &str {
        self.header("source").unwrap_or("unknown")
    }

    /// The `scraped_at` header, else the broker's timestamp, else now.
    pub fn scraped_at(&self) -> DateTime<Utc> {
        self.header("scraped_at")
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|at| at.with_timezone(&Utc))
            .or(self.timestamp)
            .unwrap_or_else(Utc::now)
    }

    /// The dead-letter row for this record: its bytes exactly as consumed, and why it was not stored.
    pub fn dead_letter(&self, error: &str) -> ingest_errors::ActiveModel {
        ingest_errors::ActiveModel {
            id: NotSet,
            topic: Set(self.topic.clone()),
            partition: Set(self.partition),
            offset: Set(self.offset),
            key: Set(self.key.clone()),
            payload: Set(self.payload.clone()),
            headers: Set(Some(self.headers_json())),
            error: Set(error.to_owned()),
            failed_at: NotSet,
        }
    }

    /// Headers as a JSON object; a value that is not UTF-8 is kept as `{"hex": "..."}`.
    fn headers_json(&self) -> Value {
        let mut map = Map::new();
        for (key, value) in &self.headers {
            let value = match value.as_deref().map(std::str::from_utf8) {
                None => Value::Null,
                Some(Ok(text)) if !text.contains('\0') => Value::String(text.to_owned()),
                Some(_) => {
                    let bytes = value.as_deref().unwrap_or_default();
                    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                    serde_json::json!({ "hex": hex })
                }
            };
            map.insert(key.replace('\0', "\u{fffd}"), value);
        }
        Value::Object(map)
    }
}
