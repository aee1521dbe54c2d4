//! Why the scraper rejects a payload: the `error` header of a record on the rejects topic. Each reason holds
//! a fixed phrase per kind (`payload is not JSON`, `payload has no`, ...), after what the payload was where
//! the source says so (`Instagram web media object: ...`), so that a consumer of the rejects topic can count
//! them by kind.

use crate::IdError;

/// Bytes of a payload kept on the rejects topic when the payload is over the size limit.
pub const KEPT_OF_OVERSIZE: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("payload is {len} bytes, over the {max}-byte limit (only its first {KEPT_OF_OVERSIZE} bytes are kept)")]
    TooLarge { len: usize, max: usize },
    #[error("payload is not UTF-8: {0}")]
    NotUtf8(String),
    #[error("payload is not JSON: {0}")]
    NotJson(String),
    #[error("payload is JSON but not an object: {0}")]
    NotAnObject(String),
    #[error("payload has no `{0}`")]
    NoId(&'static str),
    #[error("payload's `{field}` {error}")]
    BadId { field: &'static str, error: IdError },
    /// An AT Protocol identity (a DID, a record URI's part) that is not one.
    #[error("payload's `{field}`: {error}")]
    BadKey { field: &'static str, error: crate::atproto::AtError },
    #[error("payload is not of the source's shape: {0}")]
    Shape(String),
    /// A line of a line-framed stream (X's) longer than the limit: skipped as it streams by, so only its first
    /// `kept` bytes were ever held.
    #[error("payload is a line of {len} bytes, over the {max}-byte limit (only its first {kept} bytes are kept)")]
    LineTooLong { len: usize, max: usize, kept: usize },
    /// The start of a line whose connection ended before the line did.
    #[error("payload is a truncated line: the connection ended after {0} bytes of it")]
    Truncated(usize),
    /// An event of an event stream (SSE's) that grew past what its data may hold before it ended: the
    /// connection was dropped to bound memory, so only its first `kept` bytes were held.
    #[error(
        "payload is an event of over {wire} bytes on the wire, over the {max}-byte limit for its data (the \
         connection was dropped to bound memory; only its first {kept} bytes are kept)"
    )]
    EventTooLong { wire: usize, max: usize, kept: usize },
    /// A reason about one part of a source's answer, which `what` names (`Instagram web media object`).
    #[error("{what}: {reject}")]
    In { what: String, reject: Box<Reject> },
}

impl Reject {
    /// This reason, about the part of an answer that `what` names.
    pub fn of(self, what: impl Into<String>) -> Self {
        Self::In { what: what.into(), reject: Box::new(self) }
    }
}

#[cfg(test)]
mod tests {
    use super::Reject;
    use crate::IdError;

    #[test]
    fn a_reason_names_the_field_and_what_is_wrong() {
        let reason = Reject::BadId { field: "data.id", error: IdError::Zero }.to_string();
        assert_eq!(reason, "payload's `data.id` is 0, not a positive 64-bit integer");
        assert!(Reject::TooLarge { len: 2000, max: 1000 }.to_string().starts_with("payload is 2000 bytes"));
        let inside = Reject::NoId("id").of("Instagram web media object").to_string();
        assert_eq!(inside, "Instagram web media object: payload has no `id`");
    }
}
