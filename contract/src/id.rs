//! The id rule: every record's key, and every row's key in Postgres (`bigint`, `CHECK (id > 0)`), is a
//! positive 64-bit integer. The scraper accepts a payload only if its own id passes [`parse_id`] and keys the
//! record by [`canonical`] text; the inserter reads ids through the same function, so no record the scraper
//! acknowledged fails the inserter's check of its own id. (Ids nested in a payload, an author's or a
//! parent's, are the inserter's to read: the scraper forwards the payload as it is.)

use serde_json::Value;

/// Why a value is not an id. Its text is the reason a reject or a dead letter gives.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("is empty, not a positive 64-bit integer")]
    Empty,
    #[error("`{0}` is not a positive 64-bit integer (digits only)")]
    NotDigits(String),
    #[error("is 0, not a positive 64-bit integer")]
    Zero,
    #[error("`{0}` is over the largest 64-bit integer (9223372036854775807)")]
    TooLarge(String),
    #[error("is {0}, not a string of digits or an integer")]
    NotAnId(&'static str),
}

/// Longest id text quoted in an error: an id is at most 19 digits, so more says enough.
const QUOTED: usize = 40;

/// The id written as decimal digits: no sign, no space, no decimal point, from 1 to 2^63 - 1. Leading zeros
/// are read (`007` is 7); the record is keyed by [`canonical`] text.
pub fn parse_id(text: &str) -> Result<i64, IdError> {
    if text.is_empty() {
        return Err(IdError::Empty);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IdError::NotDigits(quoted(text)));
    }
    match text.parse::<i64>() {
        Ok(0) => Err(IdError::Zero),
        Ok(id) => Ok(id),
        Err(_) => Err(IdError::TooLarge(quoted(text))),
    }
}

/// An id as JSON sends it: a string of digits ([`parse_id`]) or an integer in range.
pub fn from_json(value: &Value) -> Result<i64, IdError> {
    match value {
        Value::String(text) => parse_id(text),
        Value::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(id), _) if id > 0 => Ok(id),
            (Some(0), _) => Err(IdError::Zero),
            (None, Some(_)) => Err(IdError::TooLarge(number.to_string())),
            _ => Err(IdError::NotDigits(quoted(&number.to_string()))),
        },
        Value::Null => Err(IdError::NotAnId("null")),
        Value::Bool(_) => Err(IdError::NotAnId("a boolean")),
        Value::Array(_) => Err(IdError::NotAnId("an array")),
        Value::Object(_) => Err(IdError::NotAnId("an object")),
    }
}

/// The text a record is keyed by: the same entity always gets the same key, and so the same partition.
pub fn canonical(id: i64) -> String {
    id.to_string()
}

/// The key of a record whose id is `text`: `text` itself when it is already canonical (nearly always).
pub fn key(text: &str) -> Result<String, IdError> {
    let id = parse_id(text)?;
    Ok(if text.starts_with('0') { canonical(id) } else { text.to_owned() })
}

fn quoted(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(QUOTED).collect();
    if chars.next().is_some() { format!("{head}…") } else { head }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_id_is_a_positive_64_bit_integer_in_digits() {
        assert_eq!(parse_id("1"), Ok(1));
        assert_eq!(parse_id("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_id("007"), Ok(7));
        assert_eq!(parse_id(""), Err(IdError::Empty));
        assert_eq!(parse_id("0"), Err(IdError::Zero));
        assert_eq!(parse_id("000"), Err(IdError::Zero));
        assert!(matches!(parse_id("9223372036854775808"), Err(IdError::TooLarge(_))));
        assert!(matches!(parse_id("18446744073709551616"), Err(IdError::TooLarge(_))));
        for bad in ["+5", "-5", " 5", "5 ", "1e3", "5.0", "0x10", "٣", "1_000"] {
            assert!(matches!(parse_id(bad), Err(IdError::NotDigits(_))), "{bad:?}");
        }
    }

    #[test]
    fn json_ids_are_digit_strings_or_integers_in_range() {
        assert_eq!(from_json(&json!("17841405309211844")), Ok(17841405309211844));
        assert_eq!(from_json(&json!(25025320)), Ok(25025320));
        assert_eq!(from_json(&json!(0)), Err(IdError::Zero));
        assert!(matches!(from_json(&json!(-1)), Err(IdError::NotDigits(_))));
        assert!(matches!(from_json(&json!(9223372036854775808u64)), Err(IdError::TooLarge(_))));
        assert!(matches!(from_json(&json!(5.0)), Err(IdError::NotDigits(_))));
        assert_eq!(from_json(&json!(null)), Err(IdError::NotAnId("null")));
        assert_eq!(from_json(&json!([1])), Err(IdError::NotAnId("an array")));
    }

    #[test]
    fn a_key_is_the_id_in_canonical_digits() {
        assert_eq!(key("123").as_deref(), Ok("123"));
        assert_eq!(key("00123").as_deref(), Ok("123"));
        assert_eq!(key("0"), Err(IdError::Zero));
    }

    #[test]
    fn a_long_bad_id_is_quoted_short() {
        let long = "9".repeat(5000);
        let reason = parse_id(&long).unwrap_err().to_string();
        assert!(reason.len() < 120, "{reason}");
    }
}
