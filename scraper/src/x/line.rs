//! What one line of an X API v2 stream is: a post to produce (keyed by its id), an error line from X (logged
//! and acted on, not produced), or a line that cannot be a post (bound for the rejects topic, with why).
//! Accepts the old and the new field spellings; only `data.id` is required, because the raw line goes to
//! Kafka unmodified and the inserter maps the rest.

use std::borrow::Cow;
use std::marker::PhantomData;

use contract::id::{self, IdError};
use contract::reject::Reject;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// A post: produce the line as it is, keyed by `id`.
    Post { id: String },
    /// `{"errors":[...]}` without `data`: X telling the client something.
    Errors(Vec<StreamError>),
    /// Not a post; the reason goes into the reject record's `error` header.
    Invalid(Reject),
}

/// One entry of an error line, e.g. `{"title":"operational-disconnect","disconnect_type":"UpstreamOperationalDisconnect","detail":"..."}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct StreamError {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub disconnect_type: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

impl StreamError {
    /// X ended the stream on its side: reconnect at once, as X documents.
    pub fn is_disconnect(&self) -> bool {
        self.title == "operational-disconnect" || self.disconnect_type.is_some()
    }
}

impl Line {
    pub fn classify(bytes: &[u8]) -> Self {
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => return Self::invalid(Reject::NotUtf8(e.to_string())),
        };
        // Nearly every line is a post: read just its id and skip the rest without building it. Anything
        // else takes the full reading below, which also says precisely what is wrong.
        if text.trim_start().starts_with('{')
            && let Ok(Field(Some(Field(Some(id), _)), _)) =
                serde_json::from_str::<Field<Data, Field<Id, Cow<'_, str>>>>(text)
            && let Ok(key) = id::key(&id)
        {
            return Self::Post { id: key };
        }
        let value: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(e) => return Self::invalid(Reject::NotJson(e.to_string())),
        };
        let Value::Object(object) = value else {
            return Self::invalid(Reject::NotAnObject(kind_of(&value).into()));
        };
        match (object.get("data"), object.get("errors")) {
            (Some(data), _) => match data.get("id") {
                Some(value) => match id::from_json(value) {
                    Ok(id) => Self::Post { id: id::canonical(id) },
                    Err(error) => Self::bad_id(error),
                },
                None => Self::invalid(Reject::NoId("data.id")),
            },
            (None, Some(errors)) => match Vec::<StreamError>::deserialize(errors) {
                Ok(errors) => Self::Errors(errors),
                Err(e) => Self::invalid(Reject::Shape(format!("an `errors` line of unknown shape: {e}"))),
            },
            (None, None) => Self::invalid(Reject::Shape("neither `data` nor `errors`".into())),
        }
    }

    fn invalid(reject: Reject) -> Self {
        Self::Invalid(reject)
    }

    fn bad_id(error: IdError) -> Self {
        Self::invalid(Reject::BadId { field: "data.id", error })
    }
}

/// One field of a JSON object, read as `T`; the object's other fields are validated as JSON and skipped,
/// not built. It takes objects only (serde would also read a struct from an array), so any surprise fails and
/// is left to the full reading. A line read only as far as `data.id` is `Field<Data, Field<Id, Cow<str>>>`.
struct Field<K, T>(Option<T>, PhantomData<K>);

/// Names the field a [`Field`] reads.
trait Key {
    const NAME: &'static str;
}

struct Data;
impl Key for Data {
    const NAME: &'static str = "data";
}

struct Id;
impl Key for Id {
    const NAME: &'static str = "id";
}

impl<'de, K: Key, T: Deserialize<'de>> Deserialize<'de> for Field<K, T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object<K, T>(PhantomData<(K, T)>);
        impl<'de, K: Key, T: Deserialize<'de>> Visitor<'de> for Object<K, T> {
            type Value = Field<K, T>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "a JSON object (for its `{}`)", K::NAME)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut value = None;
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if key == K::NAME {
                        // The last one wins, as in the full reading.
                        value = Some(map.next_value::<T>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Field(value, PhantomData))
            }
        }
        deserializer.deserialize_map(Object(PhantomData))
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::{Line, StreamError};
    use contract::reject::Reject;

    fn invalid(bytes: &[u8]) -> String {
        match Line::classify(bytes) {
            Line::Invalid(reason) => reason.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_post_is_keyed_by_its_id_in_either_spelling() {
        let old =
            br#"{"data":{"id":"1460323737035677698","text":"hi","referenced_tweets":[]},"includes":{"tweets":[]}}"#;
        let new = br#"{"data":{"id":"1460323737035677698","text":"hi","referenced_posts":[]},"includes":{"posts":[]}}"#;
        for line in [&old[..], &new[..]] {
            assert_eq!(Line::classify(line), Line::Post { id: "1460323737035677698".into() });
        }
    }

    #[test]
    fn error_lines_are_recognised_by_their_fields() {
        let line = br#"{"errors":[{"title":"operational-disconnect","disconnect_type":"UpstreamOperationalDisconnect","detail":"This stream has been disconnected upstream for operational reasons.","type":"https://api.twitter.com/2/problems/operational-disconnect"}]}"#;
        let Line::Errors(errors) = Line::classify(line) else { panic!() };
        assert!(errors[0].is_disconnect());
        let other = br#"{"errors":[{"title":"ConnectionException","detail":"This stream is currently at the maximum allowed connection limit."}]}"#;
        let Line::Errors(errors) = Line::classify(other) else { panic!() };
        assert_eq!(
            errors,
            vec![StreamError {
                title: "ConnectionException".into(),
                detail: "This stream is currently at the maximum allowed connection limit.".into(),
                ..Default::default()
            }]
        );
        assert!(!errors[0].is_disconnect());
    }

    #[test]
    fn the_quick_reading_agrees_with_the_full_one() {
        // Shapes the quick reading must not take for posts, and posts it must not miss.
        let any_invalid = Line::Invalid(Reject::Shape("any reason".into()));
        let cases: &[(&[u8], Line)] = &[
            (br#"[{"data":{"id":"5"}}]"#, Line::Invalid(Reject::NotAnObject("an array".into()))),
            (br#"{"data":["5"]}"#, Line::Invalid(Reject::NoId("data.id"))),
            (br#"{"data":{"id":"007"}}"#, Line::Post { id: "7".into() }),
            (br#"{"data":{"id":12}}"#, Line::Post { id: "12".into() }),
            (br#"{"data":{"id":"5"},"data":{"id":"6"}}"#, Line::Post { id: "6".into() }),
            (br#"{"data":{"id":"5"}}"#, Line::Post { id: "5".into() }),
            (
                br#"{"includes":{},"data":{"text":"x","id":"7"},"errors":[{"title":"partial"}]}"#,
                Line::Post { id: "7".into() },
            ),
            (br#"{"data":{"id":"8"}} trailing"#, any_invalid.clone()),
            (b"{\"data\":{\"id\":\"9\",\"text\":\"\xff\"}}", any_invalid.clone()),
        ];
        for (line, expected) in cases {
            match (Line::classify(line), expected) {
                (Line::Invalid(_), expected) if *expected == any_invalid => {}
                (got, expected) => assert_eq!(&got, expected, "{}", String::from_utf8_lossy(line)),
            }
        }
    }

    #[test]
    fn every_line_that_cannot_be_a_post_says_why() {
        assert!(invalid(b"Hello, Kafka").starts_with("payload is not JSON"));
        assert!(invalid(b"{\"data\":{\"id\":\"1\"").starts_with("payload is not JSON"), "a truncated line");
        assert!(invalid(b"\xff\xfe{}").starts_with("payload is not UTF-8"));
        assert_eq!(invalid(b"[1,2]"), "payload is JSON but not an object: an array");
        assert_eq!(invalid(br#"{"data":{"text":"no id"}}"#), "payload has no `data.id`");
        assert_eq!(
            invalid(br#"{"data":{"id":true}}"#),
            "payload's `data.id` is a boolean, not a string of digits or an integer"
        );
        assert_eq!(
            invalid(br#"{"data":{"id":"-5"}}"#),
            "payload's `data.id` `-5` is not a positive 64-bit integer (digits only)"
        );
        assert_eq!(invalid(br#"{"data":{"id":"0"}}"#), "payload's `data.id` is 0, not a positive 64-bit integer");
        assert_eq!(
            invalid(br#"{"data":{"id":"99999999999999999999"}}"#),
            "payload's `data.id` `99999999999999999999` is over the largest 64-bit integer (9223372036854775807)"
        );
        assert!(invalid(br#"{"meta":{}}"#).ends_with("neither `data` nor `errors`"));
        assert!(invalid(br#"{"errors":"boom"}"#).contains("an `errors` line of unknown shape"));
    }
}
