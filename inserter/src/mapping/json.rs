//! Raw bytes to a JSON document that Postgres can store: UTF-8, valid JSON, an object, and no NUL character
//! anywhere (Postgres refuses `\u0000` in both `text` and `jsonb`, so such a record is dead-lettered whole
//! rather than silently altered).

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Why a payload cannot become rows. The message is what `ingest_errors.error` records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty payload")]
    Empty,
    #[error("payload is not valid UTF-8 (invalid byte at offset {offset})")]
    InvalidUtf8 { offset: usize },
    #[error("payload is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("payload is JSON but not an object")]
    NotAnObject,
    #[error("NUL character (\\u0000) in {path}: Postgres cannot store it in text or jsonb")]
    Nul { path: String },
    #[error("payload does not have the expected shape: {0}")]
    Shape(String),
    #[error("payload is an error message from the source, not a record: {0}")]
    SourceError(String),
    #[error("{field} `{value}` is not {expected}")]
    Invalid { field: String, value: String, expected: String },
    #[error("{field}: {error}")]
    Shortcode { field: String, error: crate::mapping::instagram::ShortcodeError },
    #[error("cannot tell the payload's format: {0}")]
    UnknownFormat(String),
}

impl DecodeError {
    /// `field`'s `value` is not what it must be (`expected`, e.g. "a positive 64-bit id").
    pub(crate) fn invalid(field: impl Into<String>, value: impl Into<String>, expected: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), value: value.into(), expected: expected.into() }
    }
}

/// Parses `payload` into a JSON object that Postgres can store.
pub(crate) fn parse_object(payload: &[u8]) -> Result<Value, DecodeError> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::Empty);
    }
    let text = std::str::from_utf8(payload).map_err(|e| DecodeError::InvalidUtf8 { offset: e.valid_up_to() })?;
    let value: Value = serde_json::from_str(text).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
    if !value.is_object() {
        return Err(DecodeError::NotAnObject);
    }
    if let Some(path) = nul_path(&value, "$") {
        return Err(DecodeError::Nul { path });
    }
    Ok(value)
}

/// `payload` as text, when it can go to Postgres as it is: UTF-8 with no escape that `jsonb` refuses
/// (`\u0000`, a surrogate not in a pair). `None`
/// sends the payload down the slow path, [`parse_object`], which says what is wrong with it, if anything.
/// Whether it is JSON, and of the expected shape, is for the typed decode that follows to find out.
pub(crate) fn plain_text(payload: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(payload).ok()?;
    let bytes = text.as_bytes();
    let surrogate = |at: usize, low: bool| -> Option<bool> {
        let hex = std::str::from_utf8(bytes.get(at..at + 4)?).ok()?;
        let unit = u16::from_str_radix(hex, 16).ok()?;
        Some(if low { (0xDC00..=0xDFFF).contains(&unit) } else { (0xD800..=0xDBFF).contains(&unit) })
    };
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        // An escape: `\\`, `\"`, ..., or `\uXXXX`.
        match bytes.get(i + 1)? {
            b'u' => {
                let hex = bytes.get(i + 2..i + 6)?;
                if hex == b"0000" || surrogate(i + 2, true)? {
                    return None;
                }
                if surrogate(i + 2, false)? {
                    // A high surrogate must be followed by a low one.
                    if bytes.get(i + 6..i + 8)? != b"\\u" || !surrogate(i + 8, true)? {
                        return None;
                    }
                    i += 12;
                } else {
                    i += 6;
                }
            }
            _ => i += 2,
        }
    }
    Some(text)
}

/// The JSON path of the first string or key holding a NUL character.
fn nul_path(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::String(s) if s.contains('\0') => Some(path.to_owned()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| nul_path(v, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') { Some(format!("{path} (a key)")) } else { nul_path(v, &format!("{path}.{k}")) }
        }),
        _ => None,
    }
}

/// A field that may be absent or `null`: both mean "not sent", which becomes the type's default.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A positive 64-bit id, as the sources send them: a string of digits (or, leniently, a JSON number), read by
/// the contract's id rule, as the scraper read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Id(pub(crate) i64);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(u64),
        }
        let parsed = match Raw::deserialize(deserializer)? {
            Raw::Text(text) => contract::parse_id(&text).ok(),
            Raw::Number(n) => i64::try_from(n).ok(),
        };
        match parsed {
            Some(id) if id > 0 => Ok(Id(id)),
            _ => Err(serde::de::Error::custom("an id must be a positive 64-bit integer")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storable_objects_pass() {
        assert!(parse_object(br#"{"a":"\u00e9","b":[1,{"c":"d"}]}"#).is_ok());
    }

    #[test]
    fn each_unstorable_payload_has_its_own_reason() {
        assert_eq!(parse_object(b""), Err(DecodeError::Empty));
        assert_eq!(parse_object(b" \r\n"), Err(DecodeError::Empty));
        assert_eq!(parse_object(b"{\"a\":\"\xff\"}"), Err(DecodeError::InvalidUtf8 { offset: 6 }));
        assert!(matches!(parse_object(b"Hello, Kafka"), Err(DecodeError::InvalidJson(_))));
        assert!(matches!(parse_object(br#"{"data":{"id":"1""#), Err(DecodeError::InvalidJson(_))));
        assert_eq!(parse_object(b"null"), Err(DecodeError::NotAnObject));
        assert_eq!(parse_object(b"[1]"), Err(DecodeError::NotAnObject));
        assert_eq!(
            parse_object(br#"{"data":{"entities":{"urls":[{"x":"a\u0000b"}]}}}"#),
            Err(DecodeError::Nul { path: "$.data.entities.urls[0].x".into() })
        );
        assert_eq!(parse_object(br#"{"a\u0000":1}"#), Err(DecodeError::Nul { path: "$ (a key)".into() }));
    }

    #[test]
    fn only_text_postgres_takes_as_it_is_skips_the_slow_path() {
        assert_eq!(plain_text(br#"{"a":"\u00e9\\u0000"}"#), Some(r#"{"a":"\u00e9\\u0000"}"#));
        assert_eq!(plain_text(br#"{"a":"\u0000"}"#), None);
        assert_eq!(plain_text(br#"{"a":"\\\u0000"}"#), None, "an escaped backslash, then an escape");
        assert!(plain_text(br#"{"a":"\ud83d\ude00"}"#).is_some(), "a surrogate pair");
        assert_eq!(plain_text(br#"{"a":"\uD800"}"#), None, "a lone high surrogate");
        assert_eq!(plain_text(br#"{"a":"\uDC00\uD800"}"#), None, "a lone low surrogate");
        assert_eq!(plain_text(br#"{"a":"\ud83dx"}"#), None);
        assert_eq!(plain_text(b"{\"a\":\"\xff\"}"), None);
        assert_eq!(plain_text(br#"{"a":"\u"}"#), None, "a truncated escape");
    }

    #[test]
    fn ids_are_positive_64_bit_integers() {
        let id = |json: &str| serde_json::from_str::<Id>(json).map(|id| id.0).ok();
        assert_eq!(id(r#""1460323737035677698""#), Some(1460323737035677698));
        assert_eq!(id("42"), Some(42));
        assert_eq!(id(r#""0""#), None);
        assert_eq!(id(r#""-5""#), None);
        assert_eq!(id(r#""+5""#), None);
        assert_eq!(id(r#""12a""#), None);
        assert_eq!(id(r#""99999999999999999999""#), None);
        assert_eq!(id("18446744073709551615"), None);
        assert_eq!(id("null"), None);
    }
}
