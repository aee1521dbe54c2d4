//! Bluesky's open firehose as a source, through Jetstream: a WebSocket service that sends every public
//! commit (posts, likes, reposts, follows), handle change and account status change as one JSON text message
//! each, free and without an account. Each kept event is forwarded as it came, keyed by its record URI
//! (`at://DID/COLLECTION/RKEY`) or, for account events, its DID ([`contract::atproto`]).
//!
//! Reconnecting follows the other streams' rules (backoff from 1 s doubling to a minute, reset by an event; a
//! stall timeout; an error status that retrying cannot fix stops the source with what to fix), and resumes
//! from a cursor, so that nothing is lost across a disconnect or a restart ([`cursor`]).

use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use rdkafka::ClientConfig;
use tokio_tungstenite::tungstenite::client::ClientRequestBuilder;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;

use common::backoff::Backoff;
use contract::reject::Reject;

use crate::metrics::Reconnect;
use crate::queue::{Closed, Emitter};
use crate::record::Record;
use crate::source::{Ended, Source, Waiter};

pub mod cursor;
pub mod event;
pub mod flags;

use cursor::InFlight;
use event::Read;

/// How much of an oversize event the rejects topic keeps: enough to tell what it was.
const REJECT_PREFIX_BYTES: usize = contract::reject::KEPT_OF_OVERSIZE;
/// How long the start-up read of the topic may take before it is tried again.
const TOPIC_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of an error body worth reading for the log or the stop message.
const MAX_ERROR_BODY: usize = 1024;
/// A `Retry-After` longer than this is more likely a mistake than a plan; we come back after this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// The most messages a connection may hold in a row that end it unread (over the hard limit, or text that is
/// not UTF-8) with no event read between them: Jetstream would replay the same one for ever.
const MAX_UNREADABLE: u32 = 3;
/// The size a message must pass to end a connection, at least: far beyond any event Jetstream sends (a record
/// is at most 1 MB), so that only a server gone wrong reaches it.
const MIN_HARD_LIMIT: usize = 16 << 20;

#[derive(Clone, Debug)]
pub struct BlueskyConfig {
    /// The `source` header and the task's name: `bluesky.jetstream`.
    pub name: String,
    /// Jetstream's `/subscribe` endpoint, with no query (the source adds it).
    pub url: String,
    /// Collections kept (`wantedCollections`), as NSIDs.
    pub collections: Vec<String>,
    /// Repositories kept (`wantedDids`); empty: all.
    pub dids: Vec<String>,
    pub topic: String,
    /// Larger events go to the rejects topic (their first 1 KiB); Jetstream is asked not to send them at all.
    pub max_event_bytes: usize,
    /// Reconnect when nothing (not even a ping) arrived for this long.
    pub stall_timeout: Duration,
    /// A resumed subscription starts this long before the last event read.
    pub rewind: Duration,
    /// The Kafka client that reads where the last run stopped from the topic, at start-up; `None`: do not.
    pub resume_from: Option<ClientConfig>,
    /// Where a first run starts, when the topic holds no cursor (microseconds since the epoch); `None`: now.
    pub first_cursor: Option<i64>,
}

/// Reads Jetstream into Kafka until shutdown, or until the server refuses us for good.
pub struct BlueskySource {
    config: BlueskyConfig,
    waiter: Waiter,
}

impl BlueskySource {
    pub fn new(config: BlueskyConfig, waiter: Waiter) -> Self {
        Self { config, waiter }
    }
}

impl Source for BlueskySource {
    fn name(&self) -> String {
        self.config.name.clone()
    }

    fn topics(&self) -> Vec<String> {
        vec![self.config.topic.clone()]
    }

    fn run(self: Box<Self>, out: Emitter, shutdown: CancellationToken) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async move { self.read_until_stopped(out, shutdown).await })
    }
}

/// What one connection keeps across messages.
struct Connection<'a> {
    out: &'a Emitter,
    /// `scraper_event_timestamp_seconds` of this source, looked up once.
    event_time: prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
    in_flight: &'a InFlight,
    /// The time of the last event read, over every connection: where a reconnect resumes.
    last_read: &'a mut Option<i64>,
    kept: u64,
    skipped: u64,
}

impl Connection<'_> {
    /// An event of `time_us` was read: where a reconnect resumes, and how far behind Jetstream we read.
    /// Returns the time the cursor goes by: `time_us`, or now when it is ahead of now, since a cursor in the
    /// future would make Jetstream skip everything up to it (it serves a future cursor as live), while one a
    /// little early only replays a little more. Jetstream stamps `time_us` itself: only a clock a little
    /// ahead of ours, or a server gone wrong, sends such times.
    fn read(&mut self, time_us: i64) -> i64 {
        let time_us = time_us.min(chrono::Utc::now().timestamp_micros());
        *self.last_read = Some(time_us);
        self.event_time.set(time_us as f64 / 1e6);
        time_us
    }
}

impl BlueskySource {
    async fn read_until_stopped(self, out: Emitter, shutdown: CancellationToken) -> anyhow::Result<()> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Fail at start-up, not at the first reconnect, on a URL that cannot make a request.
        self.subscribe_url(None)?;
        let Some(mut resume) = self.resume_point(&shutdown).await else { return Ok(()) };
        let name = self.name();
        let in_flight = InFlight::default();
        let mut last_read = None;
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut unreadable = 0;
        loop {
            let read_before = last_read;
            let (ended, unread) =
                self.connect_and_read(resume, &in_flight, &mut last_read, &mut backoff, &out, &shutdown).await;
            let (why, floor) = match ended {
                Ended::Shutdown => return Ok(()),
                Ended::Fatal(message) => anyhow::bail!(message),
                Ended::Reconnect(why, floor) => (why, floor),
            };
            unreadable = if unread && last_read == read_before { unreadable + 1 } else { u32::from(unread) };
            if unreadable >= MAX_UNREADABLE {
                anyhow::bail!(
                    "Jetstream at {} sent, {unreadable} times in a row, a message that cannot be read where the \
                     cursor {resume:?} resumes (over {} bytes, or text that is not UTF-8): check that BLUESKY_URL is \
                     a Jetstream",
                    self.config.url,
                    self.hard_limit()
                );
            }
            if let Some(last) = last_read {
                resume = Some(cursor::rewound(last, self.config.rewind));
            }
            out.metrics().reconnect(&name, why);
            let delay = backoff.next_delay().max(floor.min(MAX_RETRY_AFTER));
            tracing::info!(reason = why.label(), ?delay, cursor = resume, "reconnecting to Jetstream");
            if !self.waiter.wait(delay, why.label(), &shutdown).await {
                return Ok(());
            }
        }
    }

    /// Where the first subscription starts: where the last run stopped, from the topic (rewound), or now.
    /// `None` on shutdown. The broker is asked until it answers: starting from now instead would lose what
    /// was posted while the scraper was down.
    async fn resume_point(&self, shutdown: &CancellationToken) -> Option<Option<i64>> {
        let first = self.config.first_cursor;
        let Some(config) = self.config.resume_from.clone() else { return Some(first) };
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        loop {
            let read = cursor::from_topic(config.clone(), self.config.topic.clone(), TOPIC_READ_TIMEOUT);
            let result = tokio::select! {
                result = read => result,
                _ = shutdown.cancelled() => return None,
            };
            match result {
                Ok(Some(found)) => {
                    let resume = cursor::rewound(found, self.config.rewind);
                    tracing::info!(cursor = resume, topic = %self.config.topic, "resuming where the last run stopped");
                    return Some(Some(resume));
                }
                Ok(None) => {
                    match first {
                        Some(cursor) => tracing::info!(
                            cursor,
                            "no earlier run left a cursor in the topic: starting from BLUESKY_CURSOR"
                        ),
                        None => {
                            tracing::info!(topic = %self.config.topic, "no earlier run left a cursor in the topic: starting from now")
                        }
                    }
                    return Some(first);
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %format!("{e:#}"), retry_in = ?delay, "cannot read where the last run stopped");
                    if !self.waiter.wait(delay, "reading the topic", shutdown).await {
                        return None;
                    }
                }
            }
        }
    }

    /// The subscription URL: the wanted collections and DIDs, the size limit, and the cursor.
    fn subscribe_url(&self, cursor: Option<i64>) -> anyhow::Result<reqwest::Url> {
        let mut url = reqwest::Url::parse(&self.config.url)
            .map_err(|e| anyhow::anyhow!("BLUESKY_URL `{}` is not a URL: {e}", self.config.url))?;
        if !matches!(url.scheme(), "ws" | "wss") {
            anyhow::bail!("BLUESKY_URL `{}` is not a WebSocket URL (ws:// or wss://)", self.config.url);
        }
        {
            let mut query = url.query_pairs_mut();
            for collection in &self.config.collections {
                query.append_pair("wantedCollections", collection);
            }
            for did in &self.config.dids {
                query.append_pair("wantedDids", did);
            }
            query.append_pair("maxMessageSizeBytes", &self.config.max_event_bytes.to_string());
            if let Some(cursor) = cursor {
                query.append_pair("cursor", &cursor.to_string());
            }
        }
        Ok(url)
    }

    /// The size a message must pass to end the connection: Jetstream skips what is over `max_event_bytes`
    /// itself (`maxMessageSizeBytes`), so this only bounds what a server that does not would make us buffer.
    fn hard_limit(&self) -> usize {
        self.config.max_event_bytes.saturating_mul(2).saturating_add(64 * 1024).max(MIN_HARD_LIMIT)
    }

    /// One connection, until it ends; and whether a message that could not be read ended it.
    async fn connect_and_read(
        &self,
        resume: Option<i64>,
        in_flight: &InFlight,
        last_read: &mut Option<i64>,
        backoff: &mut Backoff,
        out: &Emitter,
        shutdown: &CancellationToken,
    ) -> (Ended, bool) {
        let url = match self.subscribe_url(resume) {
            Ok(url) => url,
            Err(e) => return (Ended::Fatal(format!("{e:#}")), false),
        };
        let request = match url.as_str().parse() {
            Ok(uri) => ClientRequestBuilder::new(uri)
                .with_header("User-Agent", concat!("ingest-scraper/", env!("CARGO_PKG_VERSION"))),
            Err(e) => {
                return (Ended::Fatal(format!("BLUESKY_URL `{}` cannot be requested: {e}", self.config.url)), false);
            }
        };
        let hard_limit = self.hard_limit();
        let ws_config = WebSocketConfig::default().max_message_size(Some(hard_limit)).max_frame_size(Some(hard_limit));
        let connecting = tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true);
        let connected = tokio::select! {
            _ = shutdown.cancelled() => return (Ended::Shutdown, false),
            connected = tokio::time::timeout(self.config.stall_timeout, connecting) => connected,
        };
        let mut socket = match connected {
            Err(_) => {
                tracing::warn!(timeout = ?self.config.stall_timeout, "Jetstream did not answer the connection");
                return (Ended::Reconnect(Reconnect::Network, Duration::ZERO), false);
            }
            Ok(Err(e)) => return (self.refused(e), false),
            Ok(Ok((socket, _))) => socket,
        };
        tracing::info!(cursor = resume, "connected to Jetstream");
        if resume.is_none() && last_read.is_none() {
            // Live from now: a connection that drops before its first event resumes from here, not from
            // whenever the next one connects.
            *last_read = Some(chrono::Utc::now().timestamp_micros());
        }
        let event_time = out.metrics().event_time.get_or_create(&vec![("source", self.name())]).clone();
        let mut connection = Connection { out, event_time, in_flight, last_read, kept: 0, skipped: 0 };
        let mut unread = false;
        let ended = loop {
            // Shutdown interrupts waiting for the server, never the handling of a message already read.
            let next = tokio::select! {
                _ = shutdown.cancelled() => break Ended::Shutdown,
                next = tokio::time::timeout(self.config.stall_timeout, socket.next()) => next,
            };
            let message = match next {
                Err(_) => {
                    tracing::warn!(timeout = ?self.config.stall_timeout, "nothing from Jetstream, not even a ping");
                    break Ended::Reconnect(Reconnect::Stalled, Duration::ZERO);
                }
                Ok(None) => break Ended::Reconnect(Reconnect::Disconnected, Duration::ZERO),
                Ok(Some(Err(e))) => {
                    unread = matches!(e, WsError::Capacity(_) | WsError::Utf8(_));
                    break self.dropped(e, &connection).await;
                }
                Ok(Some(Ok(message))) => message,
            };
            out.metrics().received_now();
            let handled = match message {
                Message::Text(text) => self.emit(text.as_str(), &mut connection).await,
                // Jetstream sends binary messages only when asked to compress, which the source does not.
                Message::Binary(bytes) => match std::str::from_utf8(&bytes) {
                    Ok(text) => self.emit(text, &mut connection).await,
                    Err(e) => {
                        out.line_read();
                        let mut bytes = bytes.to_vec();
                        bytes.truncate(REJECT_PREFIX_BYTES);
                        out.reject(bytes, &Reject::NotUtf8(e.to_string())).await
                    }
                },
                Message::Ping(_) | Message::Pong(_) => {
                    out.heartbeat();
                    Ok(())
                }
                Message::Close(frame) => {
                    let (code, reason) = frame.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or_default();
                    tracing::info!(code, %reason, "Jetstream closed the connection");
                    break Ended::Reconnect(Reconnect::Disconnected, Duration::ZERO);
                }
                Message::Frame(_) => Ok(()),
            };
            if let Err(closed) = handled {
                break closed.into();
            }
            if connection.kept + connection.skipped > 0 {
                backoff.reset();
            }
        };
        tracing::info!(kept = connection.kept, skipped = connection.skipped, "the Jetstream connection ended");
        // A close frame tells the server we left on purpose; it may fail on a connection already gone.
        let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
        (ended, unread)
    }

    /// Sends one message to the topic, keyed, with the resume cursor in its headers; or to the rejects topic
    /// with the reason.
    async fn emit(&self, text: &str, connection: &mut Connection<'_>) -> Result<(), Closed> {
        let out = connection.out;
        out.line_read();
        match event::read(text, self.config.max_event_bytes, &self.config.collections) {
            Ok(Read::Keep { key, time_us }) => {
                connection.kept += 1;
                let time_us = connection.read(time_us);
                let (settled, cursor) = connection.in_flight.hold(time_us);
                let mut record = Record::accepted(
                    &self.config.topic,
                    key,
                    text.as_bytes().to_vec(),
                    out.source().into(),
                    chrono::Utc::now(),
                );
                record.extra_headers.push((contract::header::BLUESKY_CURSOR, cursor.to_string()));
                out.send_settled(record, Some(settled)).await
            }
            Ok(Read::Skip { time_us, why }) => {
                connection.skipped += 1;
                connection.read(time_us);
                out.metrics().skipped(&self.config.name, why.label());
                Ok(())
            }
            Err(invalid @ Reject::TooLarge { .. }) => {
                let mut data = text.as_bytes().to_vec();
                data.truncate(REJECT_PREFIX_BYTES);
                out.reject(data, &invalid).await
            }
            Err(invalid) => out.reject(text.as_bytes().to_vec(), &invalid).await,
        }
    }

    /// What ended a connection that was up.
    async fn dropped(&self, error: WsError, connection: &Connection<'_>) -> Ended {
        match error {
            WsError::Capacity(e) => {
                // A message over the hard limit: the connection cannot go on, and its bytes were never held.
                let reason =
                    Reject::EventTooLong { wire: self.hard_limit(), max: self.config.max_event_bytes, kept: 0 };
                tracing::warn!(error = %e, "Jetstream sent a message over the limit, which ended the connection");
                if let Err(closed) = connection.out.reject(Vec::new(), &reason).await {
                    return closed.into();
                }
                Ended::Reconnect(Reconnect::Disconnected, Duration::ZERO)
            }
            other => {
                tracing::info!(error = %other, "the Jetstream connection dropped");
                Ended::Reconnect(Reconnect::Disconnected, Duration::ZERO)
            }
        }
    }

    /// What failed a connection attempt: whether retrying can help, and how long the server asked us to wait.
    fn refused(&self, error: WsError) -> Ended {
        let url = &self.config.url;
        let WsError::Http(response) = error else {
            tracing::warn!(error = %error, "could not connect to Jetstream");
            return Ended::Reconnect(Reconnect::Network, Duration::ZERO);
        };
        let status = response.status().as_u16();
        let body = response.body().as_deref().unwrap_or_default();
        let problem = crate::http::excerpt(&body[..body.len().min(MAX_ERROR_BODY)]);
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        match status {
            429 => {
                tracing::warn!(%problem, ?retry_after, "Jetstream says too many requests (429)");
                Ended::Reconnect(Reconnect::RateLimited, retry_after.unwrap_or(Duration::from_secs(30)))
            }
            408 | 500..=599 => {
                tracing::warn!(status, %problem, "Jetstream answered with an error");
                Ended::Reconnect(Reconnect::HttpError, retry_after.unwrap_or_default())
            }
            404 | 410 => {
                Ended::Fatal(format!("Jetstream has no stream at {url} ({status}: {problem}): check BLUESKY_URL"))
            }
            _ => Ended::Fatal(format!(
                "Jetstream at {url} refused the subscription ({status}: {problem}): check BLUESKY_URL, \
                 BLUESKY_COLLECTIONS and BLUESKY_DIDS"
            )),
        }
    }
}
