//! What a Graph API answer means for the request that got it: its error body
//! (`{"error":{"message","type","code","error_subcode","fbtrace_id"}}`) read by code, as Meta documents them.

use serde::Deserialize;

/// What to do after a Graph API error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Rate limited (app, user, page or business-use-case limit): wait, then ask again.
    Throttled,
    /// A temporary problem on Meta's side: retry with backoff.
    Transient,
    /// The token is invalid or expired: nothing will work until the operator renews it.
    TokenRefused,
    /// The token lacks a permission this call needs: nothing will work until the app is fixed.
    PermissionMissing,
    /// This one item cannot be fetched (no such business account, a bad parameter): skip it.
    SkipItem,
}

#[derive(Clone, Debug, Deserialize)]
pub struct GraphError {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub error_subcode: Option<i64>,
    #[serde(default)]
    pub fbtrace_id: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: GraphError,
}

impl GraphError {
    /// The error of an error body, if the body is one.
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<ErrorBody>(body).ok().map(|body| body.error)
    }

    pub fn verdict(&self) -> Verdict {
        match self.code {
            // 4 app, 17 user, 32 page, 613 call-type limits; 800xx business-use-case limits (80002: Instagram).
            4 | 17 | 32 | 613 | 80_000..=80_099 => Verdict::Throttled,
            1 | 2 => Verdict::Transient,
            // 102 is the session form of 190.
            190 | 102 => Verdict::TokenRefused,
            10 | 200..=299 => Verdict::PermissionMissing,
            _ => Verdict::SkipItem,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{GraphError, Verdict};

    fn verdict(code: i64) -> Verdict {
        let body = format!(r#"{{"error":{{"message":"m","type":"OAuthException","code":{code},"fbtrace_id":"A1"}}}}"#);
        GraphError::parse(body.as_bytes()).unwrap().verdict()
    }

    #[test]
    fn codes_map_to_what_meta_documents() {
        for code in [4, 17, 32, 613, 80002] {
            assert_eq!(verdict(code), Verdict::Throttled, "{code}");
        }
        assert_eq!(verdict(1), Verdict::Transient);
        assert_eq!(verdict(2), Verdict::Transient);
        assert_eq!(verdict(190), Verdict::TokenRefused);
        assert_eq!(verdict(10), Verdict::PermissionMissing);
        assert_eq!(verdict(100), Verdict::SkipItem);
        assert_eq!(verdict(110), Verdict::SkipItem);
    }

    #[test]
    fn a_body_without_an_error_object_is_not_an_error() {
        assert!(GraphError::parse(br#"{"data":[]}"#).is_none());
        assert!(GraphError::parse(b"<html>").is_none());
    }
}
