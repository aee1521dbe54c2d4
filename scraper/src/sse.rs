//! A server-sent-events stream (e.g. Mastodon's `/api/v1/streaming/public`) as a source: each event of a kept
//! type carries one JSON record, comments are heartbeats, and reconnecting (with its delays) is ours rather
//! than eventsource-client's, so that every wait goes through the [`Waiter`] and shows in the metrics.
//!
//! eventsource-client 0.18 brings no HTTP client of its own: [`ReqwestTransport`] lends it the scraper's
//! (rustls on ring), and watches the body for stalls and for an event too large to buffer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use eventsource_client::{Client, ClientBuilder, Error as SseError, Event, ReconnectOptions, SSE};
use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use launchdarkly_sdk_transport::{ByteStream, HttpTransport, Request, Response, ResponseFuture, TransportError};
use serde::Deserialize;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::queue::{Closed, Emitter};
use crate::secret::Secret;
use crate::source::{Source, Waiter};

/// The environment variable operators set the token with; named in the error when the server refuses it.
pub const TOKEN_VARIABLE: &str = "SSE_BEARER_TOKEN";

/// How much of an oversize event the rejects topic keeps: enough to tell what it was.
const REJECT_PREFIX_BYTES: usize = 1024;
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
    /// The `source` header, e.g. `sse.mastodon`.
    pub name: String,
    pub url: String,
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

    fn run(self: Box<Self>, out: Emitter, shutdown: CancellationToken) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async move { self.read_until_stopped(out, shutdown).await })
    }
}

/// Why a connection ended, as the `reason` label of `scraper_reconnects_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    /// The server closed the stream (or we did, over a runaway event).
    Disconnected,
    Network,
    /// Nothing arrived for the stall timeout.
    Stalled,
    Http,
    RateLimited,
}

impl Why {
    fn label(self) -> &'static str {
        match self {
            Self::Disconnected => "disconnected",
            Self::Network => "network",
            Self::Stalled => "stalled",
            Self::Http => "http_error",
            Self::RateLimited => "rate_limited",
        }
    }
}

/// How one connection ended.
enum Ended {
    /// Try again after at least `floor` (the server's `Retry-After`, if any).
    Reconnect(Why, Duration),
    Shutdown,
    /// Retrying cannot help (a bad token, a wrong URL): the message says what to fix.
    Fatal(String),
}

impl From<Closed> for Ended {
    fn from(_: Closed) -> Self {
        Self::Fatal("the queue to Kafka closed".into())
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
            out.metrics().reconnect(&name, why.label());
            let delay = backoff.next(floor);
            tracing::info!(source = %name, reason = why.label(), delay = ?delay, "reconnecting to the SSE stream");
            if !self.waiter.wait(delay, why.label(), &shutdown).await {
                return Ok(());
            }
        }
    }

    /// A client for one connection: eventsource-client's own reconnecting is off, ours decides.
    fn client(&self, transport: ReqwestTransport, last_event_id: Option<&str>) -> anyhow::Result<impl Client + use<>> {
        let mut builder = ClientBuilder::for_url(&self.config.url)
            .map_err(|e| anyhow::anyhow!("the SSE URL {} is not a valid URL: {e}", without_query(&self.config.url)))?
            .reconnect(ReconnectOptions::reconnect(false).build());
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
        let name = self.name();
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
                    out.metrics().heartbeat(&name);
                    out.metrics().received_now();
                    continue;
                }
                Some(Ok(SSE::Connected(details))) => {
                    connected = true;
                    tracing::info!(source = %name, status = details.response().status(), "connected to the SSE stream");
                    continue;
                }
                Some(Err(e)) => {
                    tracing::info!(source = %name, kept, skipped, "the SSE connection ended");
                    return self.ended_by(e, connected, out).await;
                }
                None => return Ended::Reconnect(Why::Disconnected, Duration::ZERO),
            };
            out.metrics().line_read(&name);
            out.metrics().received_now();
            backoff.reset();
            if let Some(millis) = event.retry {
                backoff.server_retry(millis);
            }
            if event.id.as_deref().is_some_and(|id| !id.is_empty()) {
                last_event_id.clone_from(&event.id);
            }
            if !self.config.event_types.contains(&event.event_type) {
                tracing::debug!(source = %name, event_type = %event.event_type, "skipped an event of a type not kept");
                skipped += 1;
                continue;
            }
            kept += 1;
            if let Err(closed) = self.emit(event, out).await {
                return closed.into();
            }
        }
    }

    /// Sends a kept event's data to the data topic, keyed by its id, or to the rejects topic with the reason.
    async fn emit(&self, event: Event, out: &Emitter) -> Result<(), Closed> {
        match record_id(&event.data, self.config.max_event_bytes) {
            Ok(id) => out.accept(&self.config.topic, id, event.data.into_bytes()).await,
            Err(invalid @ Invalid::TooLarge { .. }) => {
                let mut data = event.data.into_bytes();
                data.truncate(REJECT_PREFIX_BYTES);
                out.reject(data, &invalid.to_string()).await
            }
            Err(invalid) => out.reject(event.data.into_bytes(), &invalid.to_string()).await,
        }
    }

    /// Sorts what ended a connection into reconnecting (and why) or stopping. A transport error after the
    /// server accepted the request is a dropped connection (e.g. no final chunk); before, a network error.
    async fn ended_by(&self, error: SseError, connected: bool, out: &Emitter) -> Ended {
        let name = self.name();
        match error {
            SseError::Eof => Ended::Reconnect(Why::Disconnected, Duration::ZERO),
            SseError::UnexpectedEof => {
                // The SSE spec discards an event the connection cut short; the server may send it again.
                tracing::warn!(source = %name, "the SSE connection ended in the middle of an event, which is discarded");
                Ended::Reconnect(Why::Disconnected, Duration::ZERO)
            }
            SseError::TimedOut => self.stalled(),
            SseError::Transport(e) => {
                if let Some(runaway) = e.inner().downcast_ref::<RunawayEvent>() {
                    let reason = format!(
                        "event larger than {} bytes on the wire (limit for its data: {} bytes): the connection was \
                         dropped to bound memory; this is its first {} bytes",
                        runaway.limit,
                        self.config.max_event_bytes,
                        runaway.prefix.len()
                    );
                    if let Err(closed) = out.reject(runaway.prefix.clone(), &reason).await {
                        return closed.into();
                    }
                    return Ended::Reconnect(Why::Disconnected, Duration::ZERO);
                }
                let stalled = e.inner().downcast_ref::<Stalled>().is_some()
                    || e.inner().downcast_ref::<reqwest::Error>().is_some_and(reqwest::Error::is_timeout);
                if stalled {
                    return self.stalled();
                }
                let error = format!("{:#}", anyhow::Error::from(e));
                if connected {
                    tracing::info!(source = %name, %error, "the SSE connection dropped");
                    return Ended::Reconnect(Why::Disconnected, Duration::ZERO);
                }
                tracing::warn!(source = %name, %error, "could not connect to the SSE stream");
                Ended::Reconnect(Why::Network, Duration::ZERO)
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
                tracing::warn!(source = %name, error = %error, "the SSE stream sent something that is not SSE");
                Ended::Reconnect(Why::Network, Duration::ZERO)
            }
            other => {
                Ended::Fatal(format!("the SSE stream at {} cannot be read: {other}", without_query(&self.config.url)))
            }
        }
    }

    fn stalled(&self) -> Ended {
        tracing::warn!(source = %self.name(), timeout = ?self.config.stall_timeout, "nothing from the SSE stream, not even a comment");
        Ended::Reconnect(Why::Stalled, Duration::ZERO)
    }

    /// An error status: whether retrying can help, and how long the server asked us to wait.
    fn refused(&self, status: u16, problem: &str, retry_after: Option<Duration>) -> Ended {
        let url = without_query(&self.config.url);
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
                tracing::warn!(source = %self.name(), %problem, ?retry_after, "the SSE server says too many requests (429)");
                Ended::Reconnect(Why::RateLimited, retry_after.unwrap_or(RATE_LIMITED_DELAY))
            }
            408 | 500..=599 => {
                tracing::warn!(source = %self.name(), status, %problem, "the SSE server answered with an error");
                Ended::Reconnect(Why::Http, retry_after.unwrap_or_default())
            }
            _ => Ended::Fatal(format!("the SSE server at {url} answered {status}: {problem}")),
        }
    }
}

/// Why a kept event's data is not a record.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("event data is {len} bytes, over the {max}-byte limit (only its first 1 KiB is kept here)")]
    TooLarge { len: usize, max: usize },
    #[error("event data is not JSON: {0}")]
    NotJson(String),
    #[error("event data is JSON but not an object: {0}")]
    NotAnObject(String),
    #[error("event data has no `id`")]
    NoId,
    #[error("event data has an `id` that is neither a string of digits nor a non-negative integer: {0}")]
    BadId(String),
}

/// The record id of an event's data: a JSON object whose `id` is a string of digits or a number.
pub fn record_id(data: &str, max_bytes: usize) -> Result<String, Invalid> {
    /// Only the id is read: the other fields are skipped, not built.
    #[derive(Deserialize)]
    struct Keyed {
        id: Option<serde_json::Value>,
    }
    if data.len() > max_bytes {
        return Err(Invalid::TooLarge { len: data.len(), max: max_bytes });
    }
    // Checked first because serde would also read a struct from an array (`["113"]`).
    if !data.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(data) {
            Ok(_) => Invalid::NotAnObject(data.chars().take(100).collect()),
            Err(e) => Invalid::NotJson(e.to_string()),
        });
    }
    let keyed: Keyed = serde_json::from_str(data).map_err(|e| match e.classify() {
        // In an object, only a duplicate `id` is a type error.
        serde_json::error::Category::Data => Invalid::BadId(e.to_string()),
        _ => Invalid::NotJson(e.to_string()),
    })?;
    match keyed.id {
        None | Some(serde_json::Value::Null) => Err(Invalid::NoId),
        Some(serde_json::Value::String(id)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        Some(serde_json::Value::Number(id)) if id.is_u64() => Ok(id.to_string()),
        Some(other) => Err(Invalid::BadId(other.to_string().chars().take(100).collect())),
    }
}

/// The URL without its query, which may hold a token (Mastodon accepts `?access_token=`).
fn without_query(url: &str) -> &str {
    url.split('?').next().unwrap_or_default()
}

/// The start of an error body, as text for a log line or a stop message.
async fn read_error_body(mut body: ByteStream) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_ERROR_BODY {
        match tokio::time::timeout(Duration::from_secs(5), body.next()).await {
            Ok(Some(Ok(chunk))) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(MAX_ERROR_BODY);
    let text: String = String::from_utf8_lossy(&bytes).trim().chars().take(300).collect();
    if text.is_empty() { "no body".into() } else { text }
}

/// Lends eventsource-client the scraper's reqwest client, and watches each response body.
#[derive(Clone)]
struct ReqwestTransport {
    client: reqwest::Client,
    stall_timeout: Duration,
    /// Bytes one event may take on the wire before the connection is dropped.
    event_limit: usize,
}

impl HttpTransport for ReqwestTransport {
    fn request(&self, request: Request<Option<Bytes>>) -> ResponseFuture {
        let (parts, body) = request.into_parts();
        let mut builder = self.client.request(parts.method, parts.uri.to_string()).headers(parts.headers);
        if let Some(body) = body {
            builder = builder.body(body);
        }
        let (stall_timeout, event_limit) = (self.stall_timeout, self.event_limit);
        let pending = builder.send();
        Box::pin(Exclusive::new(async move {
            let response = pending.await.map_err(TransportError::new)?;
            let (status, headers) = (response.status(), response.headers().clone());
            let watched = Watched {
                inner: Box::pin(response.bytes_stream()),
                stall_timeout,
                deadline: Box::pin(tokio::time::sleep(stall_timeout)),
                bound: EventBound::new(event_limit),
            };
            let body: ByteStream = Box::pin(Exclusive::new(watched));
            let mut response = Response::new(body);
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            Ok(response)
        }))
    }
}

/// Nothing arrived on a response body for the stall timeout.
#[derive(Debug, thiserror::Error)]
#[error("nothing arrived for {0:?}")]
struct Stalled(Duration);

/// An event grew past the limit on the wire before it ended.
#[derive(Debug, thiserror::Error)]
#[error("an event exceeded {limit} bytes")]
struct RunawayEvent {
    limit: usize,
    /// Its first bytes on the wire, for the rejects topic.
    prefix: Vec<u8>,
}

/// A response body that fails when it stalls or when one event grows past the limit.
struct Watched {
    inner: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    stall_timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    bound: EventBound,
}

impl Stream for Watched {
    type Item = Result<Bytes, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                this.deadline.as_mut().reset(Instant::now() + this.stall_timeout);
                match this.bound.feed(&bytes) {
                    Ok(()) => Poll::Ready(Some(Ok(bytes))),
                    Err(runaway) => Poll::Ready(Some(Err(TransportError::new(runaway)))),
                }
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(TransportError::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(TransportError::new(Stalled(this.stall_timeout))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// Counts the bytes of the event being received, from the raw stream: an event ends at an empty line, and
/// comment lines do not count (the parser hands them out at once instead of buffering them), though a
/// single endless line of any kind does.
struct EventBound {
    limit: usize,
    /// Bytes of the current event so far, terminators included.
    event: usize,
    /// Bytes of the current line so far.
    line: usize,
    line_is_comment: bool,
    at_line_start: bool,
    /// The last byte was `\r`, so a `\n` now completes the same terminator.
    after_cr: bool,
    /// Whether that `\n` belongs to the event (it does not after a comment or an empty line).
    lf_counts: bool,
    prefix: Vec<u8>,
}

impl EventBound {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            event: 0,
            line: 0,
            line_is_comment: false,
            at_line_start: true,
            after_cr: false,
            lf_counts: false,
            prefix: Vec::new(),
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), RunawayEvent> {
        for &byte in bytes {
            if byte == b'\n' && self.after_cr {
                self.after_cr = false;
                if self.lf_counts {
                    self.record(byte);
                }
                continue;
            }
            let terminator = byte == b'\n' || byte == b'\r';
            self.after_cr = byte == b'\r';
            if terminator && self.at_line_start {
                // An empty line: the event is complete.
                self.event = 0;
                self.prefix.clear();
                self.lf_counts = false;
                continue;
            }
            if self.at_line_start {
                self.line_is_comment = byte == b':';
                self.line = 0;
            }
            self.line += 1;
            if !self.line_is_comment {
                self.record(byte);
            }
            self.at_line_start = terminator;
            self.lf_counts = !self.line_is_comment;
            if self.event > self.limit || self.line > self.limit {
                let prefix = std::mem::take(&mut self.prefix);
                return Err(RunawayEvent { limit: self.limit, prefix });
            }
        }
        Ok(())
    }

    fn record(&mut self, byte: u8) {
        self.event += 1;
        if self.prefix.len() < REJECT_PREFIX_BYTES {
            self.prefix.push(byte);
        }
    }
}

/// Makes a `Send` future or stream `Sync` too, as eventsource-client requires of its transport: it is only
/// ever polled through `&mut`, so the lock is never taken, let alone contended.
struct Exclusive<T>(Mutex<Pin<Box<T>>>);

impl<T> Exclusive<T> {
    fn new(inner: T) -> Self {
        Self(Mutex::new(Box::pin(inner)))
    }

    fn get(self: Pin<&mut Self>) -> Pin<&mut T> {
        self.get_mut().0.get_mut().unwrap_or_else(|e| e.into_inner()).as_mut()
    }
}

impl<T: Future> Future for Exclusive<T> {
    type Output = T::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get().poll(cx)
    }
}

impl<T: Stream> Stream for Exclusive<T> {
    type Item = T::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get().poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_a_string_of_digits_or_a_number() {
        assert_eq!(record_id(r#"{"id":"113","content":"hi"}"#, 1000), Ok("113".into()));
        assert_eq!(record_id(r#"{"content":"hi","id":42}"#, 1000), Ok("42".into()));
        assert_eq!(record_id(r#"{"id":"abc"}"#, 1000), Err(Invalid::BadId("\"abc\"".into())));
        assert_eq!(record_id(r#"{"id":-1}"#, 1000), Err(Invalid::BadId("-1".into())));
        assert_eq!(record_id(r#"{"id":null}"#, 1000), Err(Invalid::NoId));
        assert_eq!(record_id(r#"{"content":"hi"}"#, 1000), Err(Invalid::NoId));
        assert!(matches!(record_id(r#"{"id":"1","id":"2"}"#, 1000), Err(Invalid::BadId(_))));
    }

    #[test]
    fn data_that_is_not_a_json_object_says_which_it_is() {
        assert!(matches!(record_id("113", 1000), Err(Invalid::NotAnObject(_))));
        assert!(matches!(record_id(r#"["113"]"#, 1000), Err(Invalid::NotAnObject(_))));
        assert!(matches!(record_id("<html>", 1000), Err(Invalid::NotJson(_))));
        assert!(matches!(record_id(r#"{"id":"1""#, 1000), Err(Invalid::NotJson(_))));
        assert_eq!(record_id(r#"{"id":"1"}"#, 5), Err(Invalid::TooLarge { len: 10, max: 5 }));
    }

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

    #[test]
    fn the_event_bound_counts_one_event_at_a_time_and_not_comments() {
        let mut bound = EventBound::new(24);
        for _ in 0..100 {
            bound.feed(b":thump\n:thump\r\n").unwrap();
        }
        bound.feed(b"event: update\r\ndata: 1\r\n\r\n").unwrap();
        bound.feed(b"data: 0123456789\n\ndata: 0123").unwrap();
        let runaway = bound.feed(b"456789abcdefghij").unwrap_err();
        assert_eq!(runaway.prefix, b"data: 0123456789abcdefghi");
    }
}
