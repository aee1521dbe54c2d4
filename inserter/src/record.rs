//! A record as consumed from Kafka, detached from the consumer so that batches can outlive a poll, and what
//! its headers say about it.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use entity::ingest_errors;
use sea_orm::ActiveValue::{NotSet, Set};
use serde_json::map::Entry;
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
    /// The bytes this record holds: its key, value and headers, and a little bookkeeping.
    pub fn size(&self) -> usize {
        let headers: usize = self.headers.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len) + 48).sum();
        self.topic.len()
            + self.key.as_ref().map_or(0, Vec::len)
            + self.payload.as_ref().map_or(0, Vec::len)
            + headers
            + 128
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| value.as_deref())
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// The `source` header, or `unknown` for records from producers that set none.
    pub fn source(&self) -> &str {
        self.header(contract::header::SOURCE).unwrap_or(contract::source::UNKNOWN)
    }

    /// The `scraped_at` header, else the broker's timestamp, else now.
    pub fn scraped_at(&self) -> DateTime<Utc> {
        self.header(contract::header::SCRAPED_AT)
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|at| at.with_timezone(&Utc))
            .or(self.timestamp)
            .unwrap_or_else(Utc::now)
    }

    /// The dead-letter row for this record: its bytes exactly as consumed, and why it was not stored. Every
    /// text in it is made storable (see [`storable`]), so only the database's health can refuse it.
    pub fn dead_letter(&self, error: &str) -> ingest_errors::ActiveModel {
        ingest_errors::ActiveModel {
            id: NotSet,
            topic: Set(storable(&self.topic).into_owned()),
            partition: Set(self.partition),
            offset: Set(self.offset),
            key: Set(self.key.clone()),
            payload: Set(self.payload.clone()),
            headers: Set(Some(self.headers_json())),
            error: Set(reason(error)),
            failed_at: NotSet,
        }
    }

    /// The least a dead letter can be: where the record is in Kafka and why it is not stored here, for when
    /// the whole one was refused too.
    pub fn minimal_dead_letter(&self, error: &str) -> ingest_errors::ActiveModel {
        let mut row = self.dead_letter(error);
        row.key = Set(None);
        row.payload = Set(None);
        row.headers = Set(None);
        row
    }

    /// Headers as a JSON object; a value that is not UTF-8, or holds a NUL (which `jsonb` refuses), is kept as
    /// `{"hex": "..."}`, and the values of a name sent more than once as a list of those, in order.
    /// [`headers_from_json`] reads it back.
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
            // Kafka allows a name twice (and escaping may make two names one): the values then become a list.
            match map.entry(storable(key).into_owned()) {
                Entry::Vacant(entry) => {
                    entry.insert(value);
                }
                Entry::Occupied(mut entry) => match entry.get_mut() {
                    Value::Array(values) => values.push(value),
                    first => *first = Value::Array(vec![first.take(), value]),
                },
            }
        }
        Value::Object(map)
    }
}

/// The headers a dead letter's `headers` column holds, as consumed (a name made storable stays escaped).
pub fn headers_from_json(json: &Value) -> Vec<(String, Option<Vec<u8>>)> {
    let Some(map) = json.as_object() else { return Vec::new() };
    let bytes = |value: &Value| match value {
        Value::String(text) => Some(text.as_bytes().to_vec()),
        Value::Object(hex) => hex.get("hex").and_then(Value::as_str).and_then(from_hex),
        _ => None,
    };
    map.iter()
        .flat_map(|(key, value)| match value {
            Value::Array(values) => values.iter().map(|v| (key.clone(), bytes(v))).collect(),
            value => vec![(key.clone(), bytes(value))],
        })
        .collect()
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    let digits = hex.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| std::str::from_utf8(pair).ok().and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect()
}

/// `text` as Postgres can store it in `text` and `jsonb`: a NUL becomes the visible escape `\0` (and a
/// backslash before it stays as it is, so an escape can be told from text that spelled one only by context).
pub fn storable(text: &str) -> Cow<'_, str> {
    if text.contains('\0') { Cow::Owned(text.replace('\0', "\\0")) } else { Cow::Borrowed(text) }
}

/// `bytes` as text that shows every byte: valid UTF-8 as it is (NUL as `\0`), any other byte as `\xNN`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(&storable(chunk.valid()));
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// A dead letter's reason: storable, never empty (the column refuses ''), and bounded, since a reason may
/// quote the payload.
fn reason(error: &str) -> String {
    const MAX_CHARS: usize = 4_000;
    let error = storable(error);
    let mut reason: String = error.chars().take(MAX_CHARS).collect();
    if reason.len() < error.len() {
        reason.push_str(" …(cut)");
    }
    if reason.trim().is_empty() {
        reason = "unknown error".into();
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(headers: Vec<(String, Option<Vec<u8>>)>) -> ConsumedRecord {
        ConsumedRecord {
            topic: "t".into(),
            partition: 0,
            offset: 7,
            key: None,
            payload: Some(b"{}".to_vec()),
            headers,
            timestamp: None,
        }
    }

    #[test]
    fn a_nul_becomes_a_visible_escape_everywhere_a_dead_letter_holds_text() {
        let record = record(vec![("so\0urce".into(), Some(b"x.s\0ample".to_vec()))]);
        let row = record.dead_letter("no mapping for source `x.s\0ample`");
        assert_eq!(row.error.as_ref(), "no mapping for source `x.s\\0ample`");
        let headers = row.headers.as_ref().clone().unwrap();
        assert_eq!(headers, serde_json::json!({ "so\\0urce": { "hex": "782e7300616d706c65" } }));
    }

    #[test]
    fn headers_read_back_as_consumed() {
        let headers = vec![
            ("source".to_owned(), Some(b"x.sample".to_vec())),
            ("binary".to_owned(), Some(vec![0xff, 0x00, 0x41])),
            ("empty".to_owned(), None),
            ("trace".to_owned(), Some(b"a".to_vec())),
            ("trace".to_owned(), Some(vec![0xfe])),
            ("trace".to_owned(), Some(b"c".to_vec())),
        ];
        let json = record(headers.clone()).headers_json();
        let mut back = headers_from_json(&json);
        back.sort();
        let mut expected = headers;
        expected.sort();
        assert_eq!(back, expected);
    }

    #[test]
    fn invalid_utf8_is_escaped_byte_by_byte() {
        assert_eq!(escape_bytes(b"ab\xffc\0d\xc3"), "ab\\xffc\\0d\\xc3");
        assert_eq!(escape_bytes("é".as_bytes()), "é");
    }

    #[test]
    fn a_reason_is_never_empty_and_never_unbounded() {
        assert_eq!(reason(""), "unknown error");
        let long = reason(&"é".repeat(10_000));
        assert_eq!(long.chars().count(), 4_000 + " …(cut)".chars().count());
    }
}
