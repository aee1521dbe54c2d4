//! A server-sent-events stream (e.g. Mastodon's `/api/v1/streaming/public`) as a source: each event of a kept
//! type carries one JSON record, comments are heartbeats, and reconnecting (with its delays) is ours rather
//! than eventsource-client's, so that every wait goes through the [`Waiter`] and shows in the metrics.
//!
//! eventsource-client 0.18 brings no HTTP client of its own: [`ReqwestTransport`] lends it the scraper's
//! (rustls on ring), and watches the body for stalls and for an event too large to buffer.

use std::time::Duration;

use eventsource_client::{Client, ClientBuilder, Error as SseError, Event, ReconnectOptions, SSE};
use futures::StreamExt;
use futures::future::BoxFuture;
use launchdarkly_sdk_transport::ByteStream;
use tokio_util::sync::CancellationToken;

use contract::reject::Reject;

use crate::http::Redirect;
use crate::metrics::Reconnect;
use crate::queue::{Closed, Emitter};
use crate::secret::{Secret, SecretUrl};
use crate::source::{Ended, Source, Waiter};

pub mod flags;
mod record;
mod transport;

pub use record::{deleted_id, record_id};
use transport::{ReqwestTransport, RunawayEvent, Stalled};

/// The environment variable operators set the token with; named in the error when the server refuses it.
pub const TOKEN_VARIABLE: &str = "SSE_BEARER_TOKEN";

/// How much of an oversize event the rejects topic keeps: enough to tell what it was.
pub(super) const REJECT_PREFIX_BYTES: usize = contract::reject::KEPT_OF_OVERSIZE;
/// The first reconnect delay when the server gave no `retry:`; it doubles per failed attempt.
const FIRST_DELAY: Duration = Duration::from_secs(1);
/// A server's `retry:` below this would let a server that drops every connection make us spin.
const MIN_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A 429 without `Retry-After` waits at least this long: reconnecting sooner only extends the limit.
const RATE_LIMITED_DELAY: Duration = Duration::from_secs(30);
/// A `Retry-After` longer than this is more likely a mistake than a plan; we come back after this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// Bytes of an error body worth reading for the log or the stop message.
const MAX_ERROR_BODY: usize = 1024;

#[derive(Clone, Debug)]
pub struct SseConfig {
    /// The task's name in logs and metrics: the `source` header, with the instance when one scraper reads
    /// several streams (`sse.mastodon@fosstodon.org`).
    pub name: String,
    /// The `source` header, e.g. `sse.mastodon`.
    pub source: String,
    /// The `instance` header: which instance's ids the records carry.
    pub instance: String,
    /// May carry a token in its query (Mastodon accepts `?access_token=`).
    pub url: SecretUrl,
    /// Sent as `Authorization: Bearer`.
    pub token: Option<Secret>,
    /// Event types to keep (e.g. `update` for Mastodon); others are counted and skipped.
    pub event_types: Vec<String>,
    pub topic: String,
    /// Larger events go to the rejects topic (their first 1 KiB); far larger ones also end the connection,
    /// so that one runaway event cannot grow the parser's buffer without bound.
    pub max_event_bytes: usize,
    /// Reconnect when nothing (not even a comment) arrived for this long.
    pub stall_timeout: Duration,
}

/// Reads one SSE stream into Kafka until shutdown, or until the server refuses us for good.
pub struct SseSource {
    config: SseConfig,
    waiter: Waiter,
}

impl SseSource {
    pub fn new(config: SseConfig, waiter: Waiter) -> Self {
        Self { config, waiter }
    }
}

impl Source for SseSource {
    fn name(&self) -> String {
        self.config.name.clone()
    }

    fn record_source(&self) -> String {
        self.config.source.clone()
    }

    fn topics(&self) -> Vec<String> {
        vec![self.config.topic.clone()]
    }

    fn run(self: Box<Self>, out: Emitter, shutdown: CancellationToken) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async move { self.read_until_stopped(out, shutdown).await })
    }
}

/// When to reconnect: the server's `retry:` (or 1 s), doubling per failed attempt up to 60 s, and back to
/// the start once an event arrives. No jitter: one scraper per stream cannot stampede a server.
struct Backoff {
    first: Duration,
    attempts: u32,
}

impl Backoff {
    fn next(&mut self, floor: Duration) -> Duration {
        let delay = self.first.saturating_mul(1 << self.attempts.min(16)).min(MAX_DELAY);
        self.attempts += 1;
        delay.max(floor.min(MAX_RETRY_AFTER))
    }

    /// An event arrived: the stream works again.
    fn reset(&mut self) {
        self.attempts = 0;
    }

    /// The server's `retry:` field, in milliseconds.
    fn server_retry(&mut self, millis: u64) {
        self.first = Duration::from_millis(millis).clamp(MIN_DELAY, MAX_DELAY);
    }
}

impl SseSource {
    async fn read_until_stopped(self, out: Emitter, shutdown: CancellationToken) -> anyhow::Result<()> {
        let transport = ReqwestTransport {
            client: crate::http::client(self.config.stall_timeout)?,
            stall_timeout: self.config.stall_timeout,
            event_limit: self.config.max_event_bytes.saturating_mul(2).saturating_add(64 * 1024),
        };
        // Fail at start-up, not at the first reconnect, on a URL or token that cannot make a request.
        self.client(transport.clone(), None)?;
        let name = self.name();
        let mut backoff = Backoff { first: FIRST_DELAY, attempts: 0 };
        let mut last_event_id = None;
        loop {
            let (why, floor) =
                match self.connect_and_read(&transport, &mut last_event_id, &mut backoff, &out, &shutdown).await {
                    Ended::Shutdown => return Ok(()),
                    Ended::Fatal(message) => anyhow::bail!(message),
                    Ended::Reconnect(why, floor) => (why, floor),
                };
            out.metrics().reconnect(&name, why);
            let delay = backoff.next(floor);
            tracing::info!(reason = why.label(), delay = ?delay, "reconnecting to the SSE stream");
            if !self.waiter.wait(delay, why.label(), &shutdown).await {
                return Ok(());
            }
        }
    }

    /// A client for one connection: eventsource-client's own reconnecting is off, ours decides.
    fn client(&self, transport: ReqwestTransport, last_event_id: Option<&str>) -> anyhow::Result<impl Client + use<>> {
        let mut builder = ClientBuilder::for_url(self.config.url.expose())
            .map_err(|e| anyhow::anyhow!("the SSE URL {} is not a valid URL: {e}", self.config.url.shown()))?
            .reconnect(ReconnectOptions::reconnect(false).build())
            // The transport turns every redirect into an error first; should one get past it, this stops
            // eventsource-client from following it with the token.
            .redirect_limit(0);
        if let Some(token) = self.config.token.as_ref().filter(|token| !token.is_empty()) {
            // The error would not show the token: eventsource-client only says the header value is invalid.
            builder = builder
                .header("Authorization", &format!("Bearer {}", token.expose()))
                .map_err(|_| anyhow::anyhow!("{TOKEN_VARIABLE} holds characters an HTTP header cannot carry"))?;
        }
        if let Some(id) = last_event_id {
            builder = builder.last_event_id(id.to_owned());
        }
        Ok(builder.build_with_transport(transport))
    }

    async fn connect_and_read(
        &self,
        transport: &ReqwestTransport,
        last_event_id: &mut Option<String>,
        backoff: &mut Backoff,
        out: &Emitter,
        shutdown: &CancellationToken,
    ) -> Ended {
        let client = match self.client(transport.clone(), last_event_id.as_deref()) {
            Ok(client) => client,
            Err(e) => return Ended::Fatal(format!("{e:#}")),
        };
        let mut stream = client.stream();
        let (mut kept, mut skipped) = (0u64, 0u64);
        let mut connected = false;
        loop {
            // Shutdown interrupts waiting for the server, never the handling of an event already read.
            let item = tokio::select! {
                _ = shutdown.cancelled() => return Ended::Shutdown,
                item = stream.next() => item,
            };
            let event = match item {
                Some(Ok(SSE::Event(event))) => event,
                Some(Ok(SSE::Comment(_))) => {
                    out.heartbeat();
                    out.metrics().received_now();
                    continue;
                }
                Some(Ok(SSE::Connected(details))) => {
                    connected = true;
                    tracing::info!(status = details.response().status(), "connected to the SSE stream");
                    continue;
                }
                Some(Err(e)) => {
                    tracing::info!(kept, skipped, "the SSE connection ended");
                    return self.ended_by(e, connected, out).await;
                }
                None => return Ended::Reconnect(Reconnect::Disconnected, Duration::ZERO),
            };
            out.line_read();
            out.metrics().received_now();
            backoff.reset();
            if let Some(millis) = event.retry {
                backoff.server_retry(millis);
            }
            if event.id.as_deref().is_some_and(|id| !id.is_empty()) {
                last_event_id.clone_from(&event.id);
            }
            if !self.config.event_types.contains(&event.event_type) {
                tracing::debug!(event_type = %event.event_type, "skipped an event of a type not kept");
                skipped += 1;
                continue;
            }
            kept += 1;
            if let Err(closed) = self.emit(event, out).await {
                return closed.into();
            }
        }
    }

    /// Sends a kept event's data to the data topic, keyed by its id and with its type in the `sse_event`
    /// header, or to the rejects topic with the reason. A `delete` event's data is the id itself.
    async fn emit(&self, event: Event, out: &Emitter) -> Result<(), Closed> {
        let keyed = if event.event_type == contract::event::MASTODON_DELETE {
            deleted_id(&event.data)
        } else {
            record_id(&event.data, self.config.max_event_bytes)
        };
        match keyed {
            Ok(id) => {
                let headers = [
                    (contract::header::SSE_EVENT, event.event_type),
                    (contract::header::INSTANCE, self.config.instance.clone()),
                ];
                out.accept_with(&self.config.topic, id, event.data.into_bytes(), &headers).await
            }
            Err(invalid @ Reject::TooLarge { .. }) => {
                let mut data = event.data.into_bytes();
                data.truncate(REJECT_PREFIX_BYTES);
                out.reject(data, &invalid).await
            }
            Err(invalid) => out.reject(event.data.into_bytes(), &invalid).await,
        }
    }

    /// Sorts what ended a connection into reconnecting (and why) or stopping. A transport error after the
    /// server accepted the request is a dropped connection (e.g. no final chunk); before, a network error.
    async fn ended_by(&self, error: SseError, connected: bool, out: &Emitter) -> Ended {
        match error {
            SseError::Eof => Ended::Reconnect(Reconnect::Disconnected, Duration::ZERO),
            SseError::UnexpectedEof => {
                // The SSE spec discards an event the connection cut short; the server may send it again.
                tracing::warn!("the SSE connection ended in the middle of an event, which is discarded");
                Ended::Reconnect(Reconnect::Disconnected, Duration::ZERO)
            }
            SseError::TimedOut => self.stalled(),
            SseError::Transport(e) => {
                if let Some(redirect) = e.inner().downcast_ref::<Redirect>() {
                    return Ended::Fatal(format!(
                        "the SSE server at {} answered with {redirect}, which the scraper does not follow, so that \
                         the token (SSE_BEARER_TOKEN, or an access_token in SSE_URL) reaches no other host: if it \
                         points to the instance's streaming server, set SSE_URL to that URL directly (with the \
                         query the stream needs)",
                        self.config.url.shown()
                    ));
                }
                if let Some(runaway) = e.inner().downcast_ref::<RunawayEvent>() {
                    let reason = Reject::EventTooLong {
                        wire: runaway.limit,
                        max: self.config.max_event_bytes,
                        kept: runaway.prefix.len(),
                    };
                    if let Err(closed) = out.reject(runaway.prefix.clone(), &reason).await {
                        return closed.into();
                    }
                    return Ended::Reconnect(Reconnect::Disconnected, Duration::ZERO);
                }
                let stalled = e.inner().downcast_ref::<Stalled>().is_some()
                    || e.inner().downcast_ref::<reqwest::Error>().is_some_and(reqwest::Error::is_timeout);
                if stalled {
                    return self.stalled();
                }
                let error = format!("{:#}", anyhow::Error::from(e));
                if connected {
                    tracing::info!(%error, "the SSE connection dropped");
                    return Ended::Reconnect(Reconnect::Disconnected, Duration::ZERO);
                }
                tracing::warn!(%error, "could not connect to the SSE stream");
                Ended::Reconnect(Reconnect::Network, Duration::ZERO)
            }
            SseError::UnexpectedResponse(response, body) => {
                let status = response.status();
                let problem = read_error_body(body.into_stream()).await;
                let retry_after = response
                    .get_header_value("retry-after")
                    .ok()
                    .flatten()
                    .and_then(|value| value.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                self.refused(status, &problem, retry_after)
            }
            SseError::InvalidLine(_) | SseError::InvalidEvent => {
                // The parser cannot go on with this body; a fresh connection starts a fresh parser.
                tracing::warn!(error = %error, "the SSE stream sent something that is not SSE");
                Ended::Reconnect(Reconnect::Network, Duration::ZERO)
            }
            other => Ended::Fatal(format!("the SSE stream at {} cannot be read: {other}", self.config.url.shown())),
        }
    }

    fn stalled(&self) -> Ended {
        tracing::warn!(timeout = ?self.config.stall_timeout, "nothing from the SSE stream, not even a comment");
        Ended::Reconnect(Reconnect::Stalled, Duration::ZERO)
    }

    /// An error status: whether retrying can help, and how long the server asked us to wait.
    fn refused(&self, status: u16, problem: &str, retry_after: Option<Duration>) -> Ended {
        let url = self.config.url.shown();
        match status {
            401 | 403 => {
                let hint = if self.config.token.as_ref().is_some_and(|token| !token.is_empty()) {
                    format!("check {TOKEN_VARIABLE} (the token may be wrong, revoked, or lack the scope)")
                } else {
                    format!("no token was sent: set {TOKEN_VARIABLE}")
                };
                Ended::Fatal(format!("the SSE server at {url} refused the request ({status}: {problem}): {hint}"))
            }
            404 | 410 => {
                Ended::Fatal(format!("the SSE server has no stream at {url} ({status}: {problem}): check the URL"))
            }
            429 => {
                tracing::warn!(%problem, ?retry_after, "the SSE server says too many requests (429)");
                Ended::Reconnect(Reconnect::RateLimited, retry_after.unwrap_or(RATE_LIMITED_DELAY))
            }
            408 | 500..=599 => {
                tracing::warn!(status, %problem, "the SSE server answered with an error");
                Ended::Reconnect(Reconnect::HttpError, retry_after.unwrap_or_default())
            }
            _ => Ended::Fatal(format!("the SSE server at {url} answered {status}: {problem}")),
        }
    }
}

/// The start of an error body, as text for a log line or a stop message.
async fn read_error_body(body: ByteStream) -> String {
    let text = crate::http::excerpt(&crate::http::read_error_body(body, MAX_ERROR_BODY).await);
    if text.is_empty() { "no body".into() } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_first_delay_up_to_a_minute_and_honours_a_floor() {
        let mut backoff = Backoff { first: FIRST_DELAY, attempts: 0 };
        let delays: Vec<u64> = (0..8).map(|_| backoff.next(Duration::ZERO).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff.next(Duration::from_secs(120)), Duration::from_secs(120));
        backoff.server_retry(5);
        backoff.attempts = 0;
        assert_eq!(backoff.next(Duration::ZERO), MIN_DELAY);
    }
}
