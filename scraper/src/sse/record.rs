//! What a kept event's data must be to become a record: a JSON object whose `id` passes the contract's id
//! rule (a string of digits or an integer, from 1 to 2^63 - 1), which becomes the record's key.

use contract::IdError;
use contract::id;
use contract::reject::Reject;
use serde::Deserialize;

/// The record key of an event's data, or why the data is not a record.
pub fn record_id(data: &str, max_bytes: usize) -> Result<String, Reject> {
    /// Only the id is read: the other fields are skipped, not built.
    #[derive(Deserialize)]
    struct Keyed {
        id: Option<serde_json::Value>,
    }
    if data.len() > max_bytes {
        return Err(Reject::TooLarge { len: data.len(), max: max_bytes });
    }
    // Checked first because serde would also read a struct from an array (`["113"]`).
    if !data.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(data) {
            Ok(_) => Reject::NotAnObject(data.chars().take(100).collect()),
            Err(e) => Reject::NotJson(e.to_string()),
        });
    }
    let keyed: Keyed = serde_json::from_str(data).map_err(|e| match e.classify() {
        // In an object, only a duplicate `id` is a type error.
        serde_json::error::Category::Data => Reject::Shape(e.to_string()),
        _ => Reject::NotJson(e.to_string()),
    })?;
    match keyed.id {
        None | Some(serde_json::Value::Null) => Err(Reject::NoId("id")),
        Some(value) => id::from_json(&value).map(id::canonical).map_err(bad_id),
    }
}

/// The record key of a `delete` event's data: the deleted status's id, as digits (Mastodon) or a JSON string.
pub fn deleted_id(data: &str) -> Result<String, Reject> {
    let value: serde_json::Value = serde_json::from_str(data).map_err(|e| Reject::NotJson(e.to_string()))?;
    id::from_json(&value).map(id::canonical).map_err(bad_id)
}

fn bad_id(error: IdError) -> Reject {
    Reject::BadId { field: "id", error }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_id_is_the_data_itself() {
        assert_eq!(deleted_id("113512893421773000"), Ok("113512893421773000".into()));
        assert_eq!(deleted_id("\"113512893421773000\""), Ok("113512893421773000".into()));
        assert_eq!(deleted_id(" 42\n"), Ok("42".into()));
        assert_eq!(deleted_id("0"), Err(bad_id(IdError::Zero)));
        assert!(matches!(deleted_id("{\"id\":\"1\"}"), Err(Reject::BadId { .. })));
        assert!(matches!(deleted_id("abc"), Err(Reject::NotJson(_))));
    }

    #[test]
    fn an_id_is_a_string_of_digits_or_a_number() {
        assert_eq!(record_id(r#"{"id":"0"}"#, 1000), Err(bad_id(IdError::Zero)));
        assert!(matches!(record_id(r#"{"id":"18446744073709551615"}"#, 1000), Err(Reject::BadId { .. })));
        assert!(matches!(record_id(r#"{"id":9223372036854775808}"#, 1000), Err(Reject::BadId { .. })));
        assert_eq!(record_id(r#"{"id":"0042"}"#, 1000), Ok("42".into()));
        assert_eq!(record_id(r#"{"id":"113","content":"hi"}"#, 1000), Ok("113".into()));
        assert_eq!(record_id(r#"{"content":"hi","id":42}"#, 1000), Ok("42".into()));
        assert_eq!(record_id(r#"{"id":"abc"}"#, 1000), Err(bad_id(IdError::NotDigits("abc".into()))));
        assert_eq!(record_id(r#"{"id":-1}"#, 1000), Err(bad_id(IdError::NotDigits("-1".into()))));
        assert_eq!(record_id(r#"{"id":null}"#, 1000), Err(Reject::NoId("id")));
        assert_eq!(record_id(r#"{"content":"hi"}"#, 1000), Err(Reject::NoId("id")));
        assert!(matches!(record_id(r#"{"id":"1","id":"2"}"#, 1000), Err(Reject::Shape(_))));
    }

    #[test]
    fn data_that_is_not_a_json_object_says_which_it_is() {
        assert!(matches!(record_id("113", 1000), Err(Reject::NotAnObject(_))));
        assert!(matches!(record_id(r#"["113"]"#, 1000), Err(Reject::NotAnObject(_))));
        assert!(matches!(record_id("<html>", 1000), Err(Reject::NotJson(_))));
        assert!(matches!(record_id(r#"{"id":"1""#, 1000), Err(Reject::NotJson(_))));
        assert_eq!(record_id(r#"{"id":"1"}"#, 5), Err(Reject::TooLarge { len: 10, max: 5 }));
    }
}
