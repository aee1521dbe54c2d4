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

impl SecretUrl {
    /// Where the URL points, for a message or a log line: without its query, fragment and user info. Text that
    /// is not a URL is shown up to its query, as it was given.
    pub fn shown(&self) -> String {
        match reqwest::Url::parse(self.0.trim()) {
            Ok(url) => without_credentials(url).to_string(),
            Err(_) => self.0.split('?').next().unwrap_or_default().to_owned(),
        }
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Ok(url) = reqwest::Url::parse(self.0.trim()) else {
            // What does not parse cannot be taken apart safely.
            return f.write_str("<redacted: not a URL>");
        };
        let had_query = url.query().is_some();
        let mut url = without_credentials(url);
        if had_query {
            url.set_query(Some("REDACTED"));
        }
        write!(f, "{:?}", url.as_str())
    }
}

/// `url` without what may carry a credential: its user info, its query (`access_token=`) and its fragment.
pub fn without_credentials(mut url: reqwest::Url) -> reqwest::Url {
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url
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
        assert_eq!(url.shown(), "https://mastodon.example/api/v1/streaming");
    }
}
