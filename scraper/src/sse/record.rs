//! What a kept event's data must be to become a record: a JSON object with an `id` (a string of digits or a
//! number), which becomes the record's key.

use serde::Deserialize;

/// Why a kept event's data is not a record.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("event data is {len} bytes, over the {max}-byte limit (only its first 1 KiB is kept here)")]
    TooLarge { len: usize, max: usize },
    #[error("event data is not JSON: {0}")]
    NotJson(String),
    #[error("event data is JSON but not an object: {0}")]
    NotAnObject(String),
    #[error("event data has no `id`")]
    NoId,
    #[error("event data has an `id` that is neither a string of digits nor a non-negative integer: {0}")]
    BadId(String),
}

/// The record id of an event's data: a JSON object whose `id` is a string of digits or a number.
pub fn record_id(data: &str, max_bytes: usize) -> Result<String, Invalid> {
    /// Only the id is read: the other fields are skipped, not built.
    #[derive(Deserialize)]
    struct Keyed {
        id: Option<serde_json::Value>,
    }
    if data.len() > max_bytes {
        return Err(Invalid::TooLarge { len: data.len(), max: max_bytes });
    }
    // Checked first because serde would also read a struct from an array (`["113"]`).
    if !data.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(data) {
            Ok(_) => Invalid::NotAnObject(data.chars().take(100).collect()),
            Err(e) => Invalid::NotJson(e.to_string()),
        });
    }
    let keyed: Keyed = serde_json::from_str(data).map_err(|e| match e.classify() {
        // In an object, only a duplicate `id` is a type error.
        serde_json::error::Category::Data => Invalid::BadId(e.to_string()),
        _ => Invalid::NotJson(e.to_string()),
    })?;
    match keyed.id {
        None | Some(serde_json::Value::Null) => Err(Invalid::NoId),
        Some(serde_json::Value::String(id)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        Some(serde_json::Value::Number(id)) if id.is_u64() => Ok(id.to_string()),
        Some(other) => Err(Invalid::BadId(other.to_string().chars().take(100).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_a_string_of_digits_or_a_number() {
        assert_eq!(record_id(r#"{"id":"113","content":"hi"}"#, 1000), Ok("113".into()));
        assert_eq!(record_id(r#"{"content":"hi","id":42}"#, 1000), Ok("42".into()));
        assert_eq!(record_id(r#"{"id":"abc"}"#, 1000), Err(Invalid::BadId("\"abc\"".into())));
        assert_eq!(record_id(r#"{"id":-1}"#, 1000), Err(Invalid::BadId("-1".into())));
        assert_eq!(record_id(r#"{"id":null}"#, 1000), Err(Invalid::NoId));
        assert_eq!(record_id(r#"{"content":"hi"}"#, 1000), Err(Invalid::NoId));
        assert!(matches!(record_id(r#"{"id":"1","id":"2"}"#, 1000), Err(Invalid::BadId(_))));
    }

    #[test]
    fn data_that_is_not_a_json_object_says_which_it_is() {
        assert!(matches!(record_id("113", 1000), Err(Invalid::NotAnObject(_))));
        assert!(matches!(record_id(r#"["113"]"#, 1000), Err(Invalid::NotAnObject(_))));
        assert!(matches!(record_id("<html>", 1000), Err(Invalid::NotJson(_))));
        assert!(matches!(record_id(r#"{"id":"1""#, 1000), Err(Invalid::NotJson(_))));
        assert_eq!(record_id(r#"{"id":"1"}"#, 5), Err(Invalid::TooLarge { len: 10, max: 5 }));
    }
}
