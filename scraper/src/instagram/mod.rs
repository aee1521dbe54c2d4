//! Instagram, polled: the Graph API (business discovery and hashtag media, with an app token) and the web
//! profile endpoint (no credentials, tightly throttled by Instagram). Both visit a configured list of accounts
//! (and, for the Graph API, hashtags) once a round, a round every poll interval, under a request quota, and
//! split each response into one record per profile and per media object (docs/architecture.md, "Instagram
//! records").

pub mod graph;
pub mod quota;
pub mod schedule;
pub mod throttle;


/// Where Instagram records go.
#[derive(Clone, Debug)]
pub struct InstagramTopics {
    pub profiles: String,
    pub media: String,
}

/// Headers that carry what a media object does not say itself.
pub mod header {
    /// On a business-discovery media record: the Graph id of the account that owns it.
    pub const OWNER_ID: &str = "instagram_owner_id";
    /// On a hashtag media record: the hashtag as searched.
    pub const HASHTAG: &str = "instagram_hashtag";
    /// On a hashtag media record: the Graph API's id of the hashtag.
    pub const HASHTAG_ID: &str = "instagram_hashtag_id";
}

/// An id as Instagram sends it (a JSON string, sometimes a number), checked to be a positive 64-bit integer:
/// the key of a record and the row's key in Postgres.
pub fn numeric_id(value: &serde_json::Value) -> Option<String> {
    let text = match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Number(number) => number.to_string(),
        _ => return None,
    };
    text.parse::<i64>().ok().filter(|id| *id > 0).map(|id| id.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::numeric_id;

    #[test]
    fn ids_are_positive_64_bit_integers_given_as_strings_or_numbers() {
        assert_eq!(numeric_id(&json!("17841405309211844")).as_deref(), Some("17841405309211844"));
        assert_eq!(numeric_id(&json!(25025320)).as_deref(), Some("25025320"));
        for bad in [json!("abc"), json!("-1"), json!("0"), json!("99999999999999999999"), json!(null), json!(1.5)] {
            assert_eq!(numeric_id(&bad), None, "{bad}");
        }
    }
}
