//! The HTTP client the polling and streaming sources share: rustls with the ring provider (already in the
//! tree through sqlx, so no second crypto library is built), the platform's root certificates, a connect
//! timeout, and a per-read timeout instead of a whole-request one, because a stream's response never ends.

use std::time::Duration;

use anyhow::Context;

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
