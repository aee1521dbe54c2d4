//! A record as consumed from Kafka, detached from the consumer so that batches can outlive a poll, and what
//! its headers say about it.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
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
    /// The broker's timestamp: the scrape time when the `scraped_at` header is missing or too far ahead.
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

    /// When the record was scraped, as of the inserter's clock reading `now`: the `scraped_at` header, else
    /// the broker's timestamp, else `now`; a time more than [`SCRAPED_AT_SKEW`] ahead of `now` is passed over
    /// as if it were missing, and the result says why.
    ///
    /// A newer scrape wins every upsert (guard.rs), so a time far ahead would keep every real scrape of the
    /// row from updating it, for ever. Such a time is clamped rather than refused: the scraper is ours, and
    /// its clock running ahead is the likely cause, so its records are real, and dead-lettering them over a
    /// clock would lose more than storing them as of a time we trust. Anyone else who can write the topic can
    /// write any content with a plausible time, so a refusal would not keep their records out; the clamp takes
    /// away what only the time could do, pin a row. The dead-letter path stays for records that cannot be
    /// stored. The broker's timestamp is a producer's clock too (CreateTime), so it is held to the same bound;
    /// `now` is the last resort, and an upper bound: a record consumed now was scraped before.
    pub fn scraped_at_as_of(&self, now: DateTime<Utc>) -> ScrapedAt {
        let header = self
            .header(contract::header::SCRAPED_AT)
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|at| at.with_timezone(&Utc));
        let mut ahead = Vec::new();
        for (what, at) in [("the scraped_at header", header), ("the broker timestamp", self.timestamp)] {
            match at {
                Some(at) if at <= now + SCRAPED_AT_SKEW => {
                    return ScrapedAt { at, clamped: clamp_reason(&ahead, what, at) };
                }
                Some(at) => ahead.push(format!("{what} {} is {} ahead", timestamp(at), span(at - now))),
                None => {}
            }
        }
        ScrapedAt { at: now, clamped: clamp_reason(&ahead, "the inserter's clock", now) }
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

/// How far ahead of the inserter's clock a record's time of scrape may be and still be believed: the
/// scraper's and the inserter's clocks may disagree by this much (NTP keeps them far closer), and a row is
/// pinned against real scrapes for at most this long.
pub const SCRAPED_AT_SKEW: TimeDelta = TimeDelta::minutes(5);

/// When a record was scraped, as the inserter takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapedAt {
    pub at: DateTime<Utc>,
    /// Why a time the record gave was passed over (it was too far ahead), when one was.
    pub clamped: Option<String>,
}

fn clamp_reason(ahead: &[String], taken: &str, at: DateTime<Utc>) -> Option<String> {
    (!ahead.is_empty()).then(|| {
        format!(
            "{} of the inserter's clock (more than {} min): stored as scraped at {}, {taken}",
            ahead.join(", "),
            SCRAPED_AT_SKEW.num_minutes(),
            timestamp(at)
        )
    })
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A span ahead, rounded to the unit that says how far: `365 d`, `3 h`, `12 min`.
fn span(delta: TimeDelta) -> String {
    let round = |s: i64, unit: i64| (s + unit / 2) / unit;
    match delta.num_seconds() {
        s if s >= 86_400 => format!("{} d", round(s, 86_400)),
        s if s >= 3_600 => format!("{} h", round(s, 3_600)),
        s => format!("{} min", round(s, 60)),
    }
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

    fn scraped(header: Option<DateTime<Utc>>, broker: Option<DateTime<Utc>>) -> ConsumedRecord {
        let headers = header.map(|at| ("scraped_at".to_owned(), Some(timestamp(at).into_bytes())));
        ConsumedRecord { timestamp: broker, ..record(headers.into_iter().collect()) }
    }

    /// The inserter's clock is whatever the test says; the times are set from it, so the test holds on any day.
    #[test]
    fn a_time_of_scrape_too_far_ahead_is_clamped_with_its_reason() {
        let now = timestamp(Utc::now()).parse::<DateTime<Utc>>().unwrap();
        let (year_ahead, minute_ago) = (now + TimeDelta::days(365), now - TimeDelta::minutes(1));

        let header_ahead = scraped(Some(year_ahead), None).scraped_at_as_of(now);
        assert_eq!(header_ahead.at, now);
        let why = header_ahead.clamped.expect("a reason");
        assert!(why.contains(&format!("the scraped_at header {} is 365 d ahead", timestamp(year_ahead))), "{why}");
        assert!(why.ends_with(&format!("stored as scraped at {}, the inserter's clock", timestamp(now))), "{why}");

        // The broker's timestamp stands in when it is believable, and is held to the same bound.
        let to_broker = scraped(Some(year_ahead), Some(minute_ago)).scraped_at_as_of(now);
        assert_eq!(to_broker.at, minute_ago);
        assert!(to_broker.clamped.is_some_and(|why| why.ends_with("the broker timestamp")));
        let both = scraped(Some(year_ahead), Some(now + TimeDelta::hours(3))).scraped_at_as_of(now);
        assert_eq!(both.at, now);
        assert!(both.clamped.is_some_and(|why| why.contains("the broker timestamp") && why.contains("is 3 h ahead")));
        let broker_only = scraped(None, Some(year_ahead)).scraped_at_as_of(now);
        assert_eq!(broker_only.at, now);
        assert!(broker_only.clamped.is_some());
    }

    #[test]
    fn a_time_of_scrape_within_the_skew_is_taken_as_it_is() {
        let now = timestamp(Utc::now()).parse::<DateTime<Utc>>().unwrap();
        let (ahead, past) = (now + SCRAPED_AT_SKEW, now - TimeDelta::days(400));
        for (record, at) in [
            (scraped(Some(ahead), Some(past)), ahead),
            (scraped(Some(past), Some(now)), past),
            (scraped(None, Some(ahead)), ahead),
            (scraped(None, None), now),
        ] {
            assert_eq!(record.scraped_at_as_of(now), ScrapedAt { at, clamped: None }, "{record:?}");
        }
        let later = now + SCRAPED_AT_SKEW + TimeDelta::seconds(1);
        assert!(scraped(Some(later), None).scraped_at_as_of(now).clamped.is_some(), "a second past the skew");
        let unreadable =
            ConsumedRecord { timestamp: Some(past), ..record(vec![("scraped_at".into(), Some(b"soon".to_vec()))]) };
        assert_eq!(unreadable.scraped_at_as_of(now), ScrapedAt { at: past, clamped: None }, "as a missing header");
    }

    #[test]
    fn a_reason_is_never_empty_and_never_unbounded() {
        assert_eq!(reason(""), "unknown error");
        let long = reason(&"é".repeat(10_000));
        assert_eq!(long.chars().count(), 4_000 + " …(cut)".chars().count());
    }
}
