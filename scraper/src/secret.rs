//! Credentials read from the environment: usable where they are needed, never printed by `Debug` or logs.

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The credential itself, for the one place that sends it (an `Authorization` header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "<empty>" } else { "<redacted>" })
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// A URL that may carry a credential, in its query (Mastodon's `?access_token=`) or its user info: usable where
/// it is requested, shown by `Debug` without either.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The URL itself, for the request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Ok(mut url) = reqwest::Url::parse(self.0.trim()) else {
            // What does not parse cannot be taken apart safely.
            return f.write_str("<redacted: not a URL>");
        };
        let _ = url.set_username("");
        let _ = url.set_password(None);
        if url.query().is_some() {
            url.set_query(Some("REDACTED"));
        }
        url.set_fragment(None);
        write!(f, "{:?}", url.as_str())
    }
}

impl std::str::FromStr for SecretUrl {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_output_never_shows_the_value() {
        let secret = super::Secret::new("AAAA-very-secret");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(secret.expose(), "AAAA-very-secret");
    }

    #[test]
    fn debug_output_of_a_url_shows_where_it_points_but_not_its_query_or_user_info() {
        let url = super::SecretUrl::new("https://me:SECRET1@mastodon.example/api/v1/streaming?access_token=SECRET2");
        assert_eq!(format!("{url:?}"), r#""https://mastodon.example/api/v1/streaming?REDACTED""#);
        assert_eq!(format!("{:?}", super::SecretUrl::new("no url ?access_token=SECRET")), "<redacted: not a URL>");
        assert!(url.expose().contains("SECRET2"));
    }
}
