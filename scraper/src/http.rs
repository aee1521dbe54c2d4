//! The HTTP client the polling and streaming sources share: rustls with the ring provider (already in the
//! tree through sqlx, so no second crypto library is built), the platform's root certificates, a connect
//! timeout, and a per-read timeout instead of a whole-request one, because a stream's response never ends.
//!
//! It follows no redirect and sends no `Referer`. Every source's credential travels with its requests: X's and
//! an SSE stream's in `Authorization`, the Graph API's and often Mastodon's in the query (`access_token=`).
//! reqwest drops `Authorization` on a redirect to another origin, but it keeps the query that `Location`
//! carries and names the previous URL, query and all, in `Referer`, so one 3xx from upstream would hand the
//! token to whichever host it names. Same-origin redirects would be safe, but no upstream needs them: X and
//! the Graph API do not redirect their API calls; Mastodon's one redirect, from `/api/v1/streaming` to a
//! separate streaming host, crosses origins (and passes the query on); Instagram's login-wall redirect is an
//! answer in itself. So a 3xx is an answer, which each source turns into an error naming [`Redirect`]'s target.

use std::time::Duration;

use anyhow::Context;
use futures::{Stream, StreamExt};
use reqwest::header::{HeaderMap, LOCATION};
use reqwest::{StatusCode, Url};

/// A client whose every read must complete within `read_timeout`.
pub fn client(read_timeout: Duration) -> anyhow::Result<reqwest::Client> {
    // Installing twice is harmless: the second call reports the provider already in place.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("ingest-scraper/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(read_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .build()
        .context("build the HTTP client")
}

/// A 3xx answer, never followed (see the module's comment), as an error message may show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    pub status: u16,
    /// `Location`, resolved against the request's URL, without its query, fragment or user info: Mastodon's
    /// redirect passes the request's query (`access_token=`) on, and the message is logged.
    pub target: Option<Url>,
}

impl Redirect {
    /// `Some` when `status` is a redirect; `url` is the request's, for a relative `Location`.
    pub fn of(status: StatusCode, headers: &HeaderMap, url: &Url) -> Option<Self> {
        if !status.is_redirection() {
            return None;
        }
        let target = headers
            .get(LOCATION)
            .and_then(|location| location.to_str().ok())
            .and_then(|location| url.join(location.trim()).ok())
            .map(crate::secret::without_credentials);
        Some(Self { status: status.as_u16(), target })
    }
}

impl std::fmt::Display for Redirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.target {
            Some(target) => write!(f, "a {} redirect to {target}", self.status),
            None => write!(f, "a {} redirect to no readable Location", self.status),
        }
    }
}

impl std::error::Error for Redirect {}

/// The first `max` bytes of an error response's body: enough to log what the server said, without waiting
/// more than 5 s for any chunk or reading a body that never ends.
pub async fn read_error_body<B: AsRef<[u8]>, E>(body: impl Stream<Item = Result<B, E>>, max: usize) -> Vec<u8> {
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::new();
    while bytes.len() < max {
        match tokio::time::timeout(Duration::from_secs(5), body.next()).await {
            Ok(Some(Ok(chunk))) => bytes.extend_from_slice(chunk.as_ref()),
            _ => break,
        }
    }
    bytes.truncate(max);
    bytes
}

/// A whole body, or `None` once it passes `max` bytes (each read bounded by the client's read timeout).
pub async fn read_capped(response: reqwest::Response, max: usize) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut body = response.bytes_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if bytes.len() + chunk.len() > max {
            return Ok(None);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some(bytes))
}

/// A body as a short line of text for a log or an error message.
pub fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body).trim().chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue, LOCATION};
    use reqwest::{StatusCode, Url};

    use super::Redirect;

    fn redirect(status: u16, location: Option<&str>) -> Option<Redirect> {
        let mut headers = HeaderMap::new();
        if let Some(location) = location {
            headers.insert(LOCATION, HeaderValue::from_str(location).unwrap());
        }
        let url = Url::parse("https://mastodon.example/api/v1/streaming/public?access_token=SECRET").unwrap();
        Redirect::of(StatusCode::from_u16(status).unwrap(), &headers, &url)
    }

    #[test]
    fn a_redirect_shows_where_it_points_without_query_or_user_info() {
        let cross =
            redirect(301, Some("https://me:pw@streaming.example:4000/api/v1/streaming/public?access_token=SECRET#x"));
        assert_eq!(
            cross.unwrap().to_string(),
            "a 301 redirect to https://streaming.example:4000/api/v1/streaming/public"
        );
        let relative = redirect(302, Some("/accounts/login/?next=%2Fapi"));
        assert_eq!(relative.unwrap().target.unwrap().as_str(), "https://mastodon.example/accounts/login/");
        assert_eq!(redirect(307, None).unwrap().to_string(), "a 307 redirect to no readable Location");
        assert_eq!(redirect(200, Some("https://elsewhere.example/")), None);
        assert_eq!(redirect(404, None), None);
    }
}
