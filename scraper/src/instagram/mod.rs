//! Instagram, polled: the Graph API (business discovery and hashtag media, with an app token) and the web
//! profile endpoint (no credentials, tightly throttled by Instagram). Both visit a configured list of accounts
//! (and, for the Graph API, hashtags) once a round, a round every poll interval, under a request quota, and
//! split each response into one record per profile and per media object (docs/architecture.md, "Instagram
//! records").

pub mod flags;
pub mod graph;
pub mod offer;
pub mod quota;
pub mod schedule;
pub mod web;

/// Where Instagram records go.
#[derive(Clone, Debug)]
pub struct InstagramTopics {
    pub profiles: String,
    pub media: String,
}

/// An id as Instagram sends it (a JSON string, sometimes a number), checked by the contract's id rule: the
/// key of a record and the row's key in Postgres.
pub fn numeric_id(value: &serde_json::Value) -> Option<String> {
    contract::id::from_json(value).ok().map(contract::id::canonical)
}

/// Account names as configured (`@Name`, ` name `) made what Instagram accepts: 1 to 30 letters, digits,
/// `.` and `_`, lower-cased. Anything else is logged and left out: a name goes into a Graph API field
/// expression and a URL, where a stray `)` or `&` would change the request.
pub fn usernames(configured: &[String]) -> Vec<String> {
    valid(configured, '@', "username", |name| {
        name.len() <= 30 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
    })
}

/// Hashtags as configured (`#Coffee`) made what the hashtag search takes: letters (any script), digits and
/// `_`, lower-cased. Anything else is logged and left out.
pub fn hashtags(configured: &[String]) -> Vec<String> {
    valid(configured, '#', "hashtag", |tag| tag.chars().all(|c| c.is_alphanumeric() || c == '_'))
}

fn valid(configured: &[String], prefix: char, what: &str, accept: impl Fn(&str) -> bool) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for raw in configured {
        let name = raw.trim().trim_start_matches(prefix).trim().to_lowercase();
        if name.is_empty() {
            continue;
        }
        if !accept(&name) {
            tracing::warn!(configured = %raw, "not a valid Instagram {what}: left out");
        } else if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{hashtags, numeric_id, usernames};

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| item.to_string()).collect()
    }

    #[test]
    fn configured_names_are_cleaned_and_bad_ones_left_out() {
        let names =
            usernames(&list(&["@BlueBottle", " nasa ", "", "bad)name{x}", "a&b", "x".repeat(31).as_str(), "nasa"]));
        assert_eq!(names, ["bluebottle", "nasa"]);
        assert_eq!(hashtags(&list(&["#Coffee", "café", "two words", "#", "coffee"])), ["coffee", "café"]);
    }

    #[test]
    fn ids_are_positive_64_bit_integers_given_as_strings_or_numbers() {
        assert_eq!(numeric_id(&json!("17841405309211844")).as_deref(), Some("17841405309211844"));
        assert_eq!(numeric_id(&json!(25025320)).as_deref(), Some("25025320"));
        for bad in [json!("abc"), json!("-1"), json!("0"), json!("99999999999999999999"), json!(null), json!(1.5)] {
            assert_eq!(numeric_id(&bad), None, "{bad}");
        }
    }
}
