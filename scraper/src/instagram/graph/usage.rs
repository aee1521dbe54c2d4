//! The Graph API's usage headers: how much of the rolling one-hour quota is spent, as percentages.
//! `X-App-Usage: {"call_count":28,"total_time":25,"total_cputime":25}` for the app;
//! `X-Business-Use-Case-Usage: {"<id>":[{"type":"instagram","call_count":96,...,
//! "estimated_time_to_regain_access":0}]}` per business account, with the minutes until a blocked one is let
//! back in. The source slows down before 100 %, instead of running into the block.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

/// The highest percentage any usage header reports, and the longest announced wait.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    pub percent: f64,
    pub regain_access_in: Duration,
}

impl Usage {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut usage = Self::default();
        let json = |name: &str| headers.get(name).and_then(|v| serde_json::from_slice::<Value>(v.as_bytes()).ok());
        if let Some(app) = json("x-app-usage") {
            usage.add(&app);
        }
        if let Some(Value::Object(accounts)) = json("x-business-use-case-usage") {
            for entries in accounts.values() {
                for entry in entries.as_array().into_iter().flatten() {
                    usage.add(entry);
                }
            }
        }
        usage
    }

    fn add(&mut self, entry: &Value) {
        for field in ["call_count", "total_time", "total_cputime"] {
            if let Some(percent) = entry.get(field).and_then(Value::as_f64) {
                self.percent = self.percent.max(percent);
            }
        }
        if let Some(minutes) = entry.get("estimated_time_to_regain_access").and_then(Value::as_u64) {
            self.regain_access_in = self.regain_access_in.max(Duration::from_secs(minutes * 60));
        }
    }

    /// How long to pause before the next call: the announced wait when access is blocked; past
    /// `slowdown_percent`, a pause that grows with the usage (10 minutes at 100 %), so that the hour's quota
    /// recovers while the source goes on slowly; else none.
    pub fn pause(&self, slowdown_percent: f64) -> Duration {
        if !self.regain_access_in.is_zero() {
            return self.regain_access_in;
        }
        if self.percent < slowdown_percent || slowdown_percent >= 100.0 {
            return Duration::ZERO;
        }
        let share = ((self.percent - slowdown_percent) / (100.0 - slowdown_percent)).min(1.0);
        Duration::from_secs_f64(600.0 * share)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use reqwest::header::{HeaderMap, HeaderValue};

    use super::Usage;

    fn usage(app: Option<&str>, business: Option<&str>) -> Usage {
        let mut headers = HeaderMap::new();
        if let Some(app) = app {
            headers.insert("x-app-usage", HeaderValue::from_str(app).unwrap());
        }
        if let Some(business) = business {
            headers.insert("x-business-use-case-usage", HeaderValue::from_str(business).unwrap());
        }
        Usage::from_headers(&headers)
    }

    #[test]
    fn the_highest_percentage_of_either_header_counts() {
        let u = usage(Some(r#"{"call_count":28,"total_time":25,"total_cputime":91}"#), None);
        assert_eq!(u.percent, 91.0);
        let u = usage(
            Some(r#"{"call_count":10}"#),
            Some(
                r#"{"1784":[{"type":"instagram","call_count":96,"total_cputime":3,"total_time":4,"estimated_time_to_regain_access":0}]}"#,
            ),
        );
        assert_eq!(u.percent, 96.0);
        assert_eq!(u.pause(80.0), Duration::from_secs(480));
    }

    #[test]
    fn a_blocked_account_waits_the_announced_minutes() {
        let u = usage(
            None,
            Some(r#"{"1784":[{"type":"instagram","call_count":100,"estimated_time_to_regain_access":17}]}"#),
        );
        assert_eq!(u.pause(80.0), Duration::from_secs(17 * 60));
    }

    #[test]
    fn below_the_threshold_or_without_headers_there_is_no_pause() {
        assert_eq!(usage(Some(r#"{"call_count":50}"#), None).pause(80.0), Duration::ZERO);
        assert_eq!(usage(None, None).pause(80.0), Duration::ZERO);
        assert_eq!(usage(Some("not json"), None).pause(80.0), Duration::ZERO);
    }
}
