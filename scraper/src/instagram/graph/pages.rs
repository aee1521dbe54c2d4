//! The shapes of the Graph API responses the source reads, borrowed from the response's bytes: each profile and
//! media object stays the exact slice the API sent (a `RawValue`), which is what goes to Kafka.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

/// `GET /{ig-user-id}?fields=business_discovery.username(NAME){...}`
#[derive(Deserialize)]
pub struct Discovery<'a> {
    #[serde(borrow)]
    pub business_discovery: &'a RawValue,
}

/// The `business_discovery` object: the parts the source itself needs.
#[derive(Deserialize)]
pub struct Discovered<'a> {
    pub id: serde_json::Value,
    #[serde(borrow, default)]
    pub media: Option<MediaPage<'a>>,
}

/// A page of media: `business_discovery.media`, or a hashtag's `recent_media` / `top_media` response.
#[derive(Deserialize)]
pub struct MediaPage<'a> {
    #[serde(borrow, default)]
    pub data: Vec<&'a RawValue>,
    #[serde(default)]
    pub paging: Option<Paging>,
}

#[derive(Deserialize)]
pub struct Paging {
    #[serde(default)]
    pub cursors: Option<Cursors>,
    /// The next page's whole URL (hashtag media); absent on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

#[derive(Deserialize)]
pub struct Cursors {
    #[serde(default)]
    pub after: Option<String>,
}

impl MediaPage<'_> {
    pub fn after(&self) -> Option<&str> {
        self.paging.as_ref()?.cursors.as_ref()?.after.as_deref().filter(|cursor| !cursor.is_empty())
    }

    pub fn next(&self) -> Option<&str> {
        self.paging.as_ref()?.next.as_deref().filter(|next| !next.is_empty())
    }
}

/// The fields of a media object the source checks.
#[derive(Deserialize)]
pub struct Media {
    #[serde(default)]
    pub id: serde_json::Value,
    #[serde(default)]
    pub timestamp: Option<String>,
}

impl Media {
    /// `2025-06-01T14:03:11+0000`: the Graph API's offsets have no colon, which RFC 3339 requires.
    pub fn taken_at(&self) -> Option<DateTime<Utc>> {
        parse_timestamp(self.timestamp.as_deref()?)
    }
}

pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%z")
        .or_else(|_| DateTime::parse_from_rfc3339(text))
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// `GET /ig_hashtag_search?user_id=..&q=TAG`: `{"data":[{"id":"17843853986012965"}]}`.
#[derive(Deserialize)]
pub struct HashtagSearch {
    #[serde(default)]
    pub data: Vec<HashtagId>,
}

#[derive(Deserialize)]
pub struct HashtagId {
    pub id: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::{Discovered, Discovery, parse_timestamp};

    #[test]
    fn graph_timestamps_without_a_colon_parse() {
        let at = parse_timestamp("2025-06-01T14:03:11+0000").unwrap();
        assert_eq!(at.to_rfc3339(), "2025-06-01T14:03:11+00:00");
        assert_eq!(parse_timestamp("2025-06-01T16:03:11+0200"), Some(at));
        assert_eq!(parse_timestamp("2025-06-01T14:03:11Z"), Some(at));
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn media_objects_are_the_exact_bytes_of_the_response() {
        let body = br#"{"business_discovery":{"id":"17841405309211844","media":{"data":[{"id":"1",  "caption":"a\u00e9"}],"paging":{"cursors":{"after":"QVFI"}}}},"id":"9"}"#;
        let page: Discovery = serde_json::from_slice(body).unwrap();
        let discovered: Discovered = serde_json::from_str(page.business_discovery.get()).unwrap();
        let media = discovered.media.unwrap();
        assert_eq!(media.data[0].get(), r#"{"id":"1",  "caption":"a\u00e9"}"#);
        assert_eq!(media.after(), Some("QVFI"));
        assert_eq!(media.next(), None);
    }
}
