//! The HTTP client the polling and streaming sources share: rustls with the ring provider (already in the
//! tree through sqlx, so no second crypto library is built), the platform's root certificates, a connect
//! timeout, and a per-read timeout instead of a whole-request one, because a stream's response never ends.

use std::time::Duration;

use anyhow::Context;
use futures::{Stream, StreamExt};

/// A client whose every read must complete within `read_timeout`.
pub fn client(read_timeout: Duration) -> anyhow::Result<reqwest::Client> {
    // Installing twice is harmless: the second call reports the provider already in place.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("ingest-scraper/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(read_timeout)
        .build()
        .context("build the HTTP client")
}

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
