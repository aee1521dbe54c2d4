//! A local Jetstream: Bluesky's JSON firehose (`wss://jetstream2.us-east.bsky.network/subscribe`) served on a
//! loopback port, with the real server's query parameters, filtering, cursor replay and wire framing, plus the
//! faults a client must survive (fragmented frames, pings, stalls, dropped and closed connections, refused
//! handshakes).
//!
//! # What Jetstream does, and where it says so
//!
//! Sources read (2026-08): the Jetstream that served the public instances until its 2026 rewrite (now
//! `bluesky-social/jetstream-legacy`), at upstream commit `7d7efa58d7f14101a80ccc4f1085953948b7d5de`
//! (2025-10-09, as mirrored by the fork `sriganesh/jetstream`) — cited as `legacy:<file>:<line>` — and the
//! rewrite, `bluesky-social/jetstream@9a30defd224e9058814a7d6ce8d9e4fc48d5493c`, whose `/subscribe` endpoint is
//! kept wire-compatible with the legacy one — cited as `rewrite:<file>:<line>`. This server follows the legacy
//! code; where the rewrite differs it is said below.
//!
//! - **Endpoint.** `GET /subscribe` upgrades to a WebSocket (legacy:cmd/jetstream/main.go:226-229; `/` answers
//!   "Welcome to Jetstream", anything else is echo's 404; here every other path is a 404). Every event is one
//!   Text message holding one JSON object `{"did", "time_us", "kind": "commit"|"identity"|"account",
//!   "commit"|"identity"|"account": {..}}` (legacy:pkg/models/models.go:14-40, README.md:79-164); `time_us` is
//!   stamped by Jetstream from a monotonic microsecond clock, so it is unique and strictly increasing
//!   (legacy:pkg/consumer/consumer.go:352, pkg/monotonic/clock.go:34-56).
//! - **Query parsing** (legacy:pkg/server/server.go:69-105): `wantedCollections` and `wantedDids` are repeated
//!   parameters; `cursor`, `maxMessageSizeBytes`, `requireHello` and `compress` take their first value.
//!   `requireHello` and `compress` are on only when exactly `true` (server.go:76, :80). Errors are answered
//!   before the upgrade with HTTP 400 and a plain-text body: `invalid cursor: <value>` when the cursor is not
//!   an int64 (server.go:85-92), and the options error (server.go:101-105): `invalid subscriber options:
//!   invalid collection: <nsid>`, a bare `invalid subscriber options` for a bad DID, `... too many wanted DIDs`
//!   (more than 10,000 distinct) or `... too many wanted collections` (more than 100)
//!   (legacy:pkg/server/subscriber.go:150-193).
//! - **wantedCollections** (subscriber.go:161-174, :259-280): a value ending in `.*` is a prefix wildcard stored
//!   with only the `*` trimmed (`app.bsky.feed.*` matches `app.bsky.feed.post`, not `app.bsky.feedgen`) and is
//!   *not* validated (README.md:53 says the head must be a valid NSID; the code does not check, and
//!   rewrite:internal/subscribe/doc.go:101-105 keeps that); any other value must be a valid NSID (indigo's
//!   `syntax.ParseNSID`), so `app.bsky.feed.po*` is a 400. Empty = all collections.
//! - **Identity and account events** bypass `wantedCollections`: the filter only sees a commit's collection and
//!   treats the empty collection of every other kind as wanted (server.go:305-308 sets the collection only for
//!   `kind == "commit"`; subscriber.go:261 `collection == ""` returns true). README.md:54: "Regardless of
//!   desired collections, all subscribers receive Account and Identity events". The same holds in the rewrite
//!   (rewrite:internal/subscribe/filter.go:299-325, and line 580 of its design document, the README under docs).
//! - **wantedDids** applies to every kind, matched against the event's top-level `did` (subscriber.go:58-62).
//! - **maxMessageSizeBytes** (subscriber.go:69-72, :311-333, README.md:58): an event whose message is longer
//!   than the limit is skipped for that subscriber, silently (no error, no close, and it does not advance the
//!   subscriber's position); 0, empty, negative or unparsable means no limit. The legacy server compared the
//!   bytes it was about to send (the zstd frame when compressing); the rewrite compares the uncompressed JSON
//!   (rewrite:internal/subscribe/doc.go:214-215, handler.go:681). Here nothing is compressed, so both agree.
//! - **cursor** is unix microseconds and **inclusive**: replay starts at the first stored event with
//!   `time_us >= cursor` (legacy:pkg/consumer/persist.go:163-166: a pebble iterator whose inclusive
//!   `LowerBound` is the decimal cursor, over keys `<time_us>_<did>[_<collection>]`, persist.go:94-101; rewrite:
//!   internal/subscribe/cursor.go:239-242 "the smallest seq whose WitnessedAt >= timeUS"). Replayed events are
//!   filtered like live ones, in `time_us` order, then the subscriber cuts over to live events
//!   (server.go:214-245). Without a cursor: live events only. A **cursor in the future** (greater than the
//!   server's wall clock) is dropped and the subscriber live-tails (server.go:94-97, README.md:60;
//!   rewrite:cursor.go:193-196). A **cursor older than the retention** is not an error: replay simply starts at
//!   the oldest event still stored (events are kept for `--event-ttl`, 24h by default, trimmed periodically:
//!   cmd/jetstream/main.go:79-84, :195-205, persist.go:120-145; rewrite:internal/subscribe/doc.go:157-168 "the
//!   timestamp cursor path always clamps"). (Legacy quirk not reproduced: its lower bound is compared as a
//!   string, so a cursor with fewer digits than `time_us` misbehaves; here the comparison is numeric.)
//! - **No duplicates, no going back**: a subscriber is sent an event only if its `time_us` is greater than the
//!   last one it was sent (subscriber.go:64-67, :88, :104); that is what joins replay to live without
//!   duplicates, and it also means that, on one connection, `time_us` strictly increases.
//! - **compress=true** (or a `Socket-Encoding` header containing `zstd`) makes the legacy server send Binary
//!   messages, each a zstd frame made with its custom dictionary (server.go:79-80, :265-272, README.md:166-174).
//!   **Not reproduced here**: testkit has no zstd; the request is recorded ([`Subscription::compress`]) and
//!   events are still sent as Text. [`Jetstream::send_binary`] sends a binary message.
//! - **requireHello=true** holds back replay and live events until the client sends an `options_update`
//!   (README.md:176-228, server.go:189-212). A client Text message is a `{"type", "payload"}` object; type
//!   `options_update` replaces `wantedCollections` and `wantedDids` (empty = all) with the payload's
//!   (server.go:154-192); the legacy server ignores an update's `maxMessageSizeBytes` (subscriber.go:282-290
//!   does not copy it; the rewrite applies it, rewrite:filter.go:247-261); other types are ignored
//!   (server.go:193-194). A message that does not parse, or options that do not validate, end the connection
//!   with a close frame 1000 whose reason is `failed to unmarshal subscriber sourced message: ..`,
//!   `failed to unmarshal subscriber options update: ..` or `failed to parse subscriber options: ..`
//!   (server.go:158-185, subscriber.go:292-295). (The rewrite closes with 1007/1008 instead,
//!   rewrite:handler.go:526-543.) Binary messages from the client are ignored (server.go:196-197).
//! - **Ping/pong**: the server sends an empty Ping every 30 s (server.go:248-249, :279-284; rewrite:handler.go:31)
//!   and answers the client's pings with pongs (server.go:142-147).
//! - **Slow subscribers**: each has a 50,000-event outbox; a live subscriber whose outbox is full is dropped by
//!   closing the socket without a close frame (subscriber.go:107-119, :217). [`Jetstream::drop_connections`]
//!   does the same on demand.
//!
//! # This server
//!
//! Events given to [`Jetstream::publish`] are stored for good (see [`Jetstream::trim_before`] for retention) and
//! fanned out, through one unbounded queue per connection, to tasks that filter them with that connection's
//! options and write them. Everything runs on tokio tasks of the caller's runtime; the methods are synchronous
//! and only take a mutex and queue. Dropping the [`Jetstream`] stops it and drops its connections.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{self, StatusCode};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{Bytes, Message};

/// How often Jetstream pings each subscriber (legacy:pkg/server/server.go:248).
pub const PING_EVERY: Duration = Duration::from_secs(30);
const MAX_WANTED_DIDS: usize = 10_000;
const MAX_WANTED_COLLECTIONS: usize = 100;
/// The longest close reason a close frame can carry (125 bytes of payload minus the code).
const MAX_CLOSE_REASON: usize = 123;

/// One handshake request, as Jetstream parses it (legacy:pkg/server/server.go:69-98).
#[derive(Clone, Debug, PartialEq)]
pub struct Subscription {
    /// The `cursor` parameter; None when absent, empty or not an int64 (the last is answered with a 400). Kept
    /// as asked, even when it is in the future and therefore ignored.
    pub cursor: Option<i64>,
    /// Every `wantedCollections` value, in order, percent-decoded.
    pub wanted_collections: Vec<String>,
    /// Every `wantedDids` value, in order, percent-decoded.
    pub wanted_dids: Vec<String>,
    /// The `maxMessageSizeBytes` parameter as Jetstream reads it: None when absent or empty, else the limit
    /// (0 = none, which is also what negative and unparsable values become).
    pub max_message_size_bytes: Option<usize>,
    /// `compress=true`, or a `Socket-Encoding` header containing `zstd`.
    pub compress: bool,
    /// `requireHello=true`.
    pub require_hello: bool,
    /// The request path (`/subscribe` for a client that gets it right).
    pub path: String,
    /// The query string as sent (without the `?`).
    pub raw_query: String,
}

/// The local Jetstream: a server task on `127.0.0.1:<free port>`.
pub struct Jetstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

struct Shared {
    state: Mutex<State>,
    settings: watch::Sender<Settings>,
}

#[derive(Clone, Copy, Debug)]
struct Settings {
    fragment: Option<usize>,
    ping_every: Option<Duration>,
    stalled: bool,
}

#[derive(Default)]
struct State {
    /// Stored events by (time_us, publication order).
    events: BTreeMap<(i64, u64), Arc<Event>>,
    published: u64,
    conns: HashMap<u64, Conn>,
    next_conn: u64,
    requests: Vec<Subscription>,
    client_messages: Vec<String>,
    refusal: Option<Refusal>,
    /// The [`Jetstream`] was dropped: a handshake still under way is turned away.
    stopped: bool,
}

struct Refusal {
    remaining: usize,
    status: StatusCode,
    retry_after: Option<u64>,
}

struct Conn {
    commands: mpsc::UnboundedSender<Command>,
    abort: AbortHandle,
}

#[derive(Debug)]
struct Event {
    time_us: i64,
    did: String,
    /// The commit's collection; empty for every other kind (legacy:pkg/server/server.go:305-308).
    collection: String,
    text: String,
}

enum Command {
    Send(Outgoing),
    Close(u16, String),
}

enum Outgoing {
    Event(Arc<Event>),
    Text(String),
    Binary(Vec<u8>),
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn broadcast(&self, make: impl Fn() -> Command) {
        for conn in self.lock().conns.values() {
            let _ = conn.commands.send(make());
        }
    }
}

impl Jetstream {
    /// Listens on a free loopback port and serves `/subscribe` on tasks of the current tokio runtime. Pings
    /// every [`PING_EVERY`], as Jetstream does, until [`Jetstream::ping_every`] says otherwise.
    pub async fn start() -> Result<Jetstream> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.context("bind the local Jetstream")?;
        let addr = listener.local_addr()?;
        let (settings, _) = watch::channel(Settings { fragment: None, ping_every: Some(PING_EVERY), stalled: false });
        let shared = Arc::new(Shared { state: Mutex::new(State::default()), settings });
        let accepting = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let (abort_tx, abort_rx) = oneshot::channel();
                let task = tokio::spawn(serve(stream, accepting.clone(), abort_rx));
                let _ = abort_tx.send(task.abort_handle());
            }
        });
        Ok(Jetstream { addr, shared, accept })
    }

    /// `ws://127.0.0.1:PORT/subscribe`
    pub fn url(&self) -> String {
        format!("ws://{}/subscribe", self.addr)
    }

    /// Stores an event (a JSON object; its `time_us` orders it and makes it replayable by cursor) and sends it to
    /// every live subscriber whose filters want it. Give increasing `time_us`, as Jetstream's clock does: a
    /// subscriber is never sent an event whose `time_us` is not above the last one it was sent.
    ///
    /// Panics unless `event` is a JSON object with an integer `time_us` (use [`Jetstream::send_raw`] for
    /// anything else). `did` is the top-level `did`; the collection is `commit.collection` when `kind` is
    /// `commit`.
    pub fn publish(&self, event: &str) {
        let parsed: Value = serde_json::from_str(event)
            .unwrap_or_else(|e| panic!("Jetstream::publish takes a JSON object ({e}); got {event}"));
        let time_us = parsed
            .get("time_us")
            .and_then(Value::as_i64)
            .unwrap_or_else(|| panic!("Jetstream::publish needs an integer time_us; got {event}"));
        let did = parsed.get("did").and_then(Value::as_str).unwrap_or_default().to_owned();
        let collection = match parsed.get("kind").and_then(Value::as_str) {
            Some("commit") => parsed.pointer("/commit/collection").and_then(Value::as_str).unwrap_or_default(),
            _ => "",
        };
        let event = Arc::new(Event { time_us, did, collection: collection.to_owned(), text: event.to_owned() });
        let mut state = self.shared.lock();
        let order = state.published;
        state.published += 1;
        state.events.insert((time_us, order), event.clone());
        for conn in state.conns.values() {
            let _ = conn.commands.send(Command::Send(Outgoing::Event(event.clone())));
        }
    }

    /// Sends this text as-is to live subscribers (not stored, not filtered): invalid JSON, oversize, anything.
    pub fn send_raw(&self, text: &str) {
        self.shared.broadcast(|| Command::Send(Outgoing::Text(text.to_owned())));
    }

    /// Sends a Binary message to live subscribers (not stored, not filtered), e.g. what a compressed stream
    /// carries.
    pub fn send_binary(&self, bytes: &[u8]) {
        self.shared.broadcast(|| Command::Send(Outgoing::Binary(bytes.to_vec())));
    }

    /// From now on, split each message longer than `bytes` into frames of at most `bytes` (a first Text or
    /// Binary frame, then continuation frames; text may be split inside a UTF-8 character, as the protocol
    /// allows); None: whole messages.
    pub fn fragment(&self, bytes: Option<usize>) {
        self.shared.settings.send_modify(|s| s.fragment = bytes.map(|b| b.max(1)));
    }

    /// From now on, send an empty Ping every `every` (None: never), the first one `every` from now.
    pub fn ping_every(&self, every: Option<Duration>) {
        self.shared.settings.send_modify(|s| s.ping_every = every.filter(|e| !e.is_zero()));
    }

    /// Drops every connection abruptly: the TCP connection is closed with no close frame, and whatever was
    /// queued for it is lost. [`Jetstream::connections`] is 0 right after.
    pub fn drop_connections(&self) {
        let aborts: Vec<AbortHandle> = self.shared.lock().conns.drain().map(|(_, conn)| conn.abort).collect();
        for abort in aborts {
            abort.abort();
        }
    }

    /// Closes every connection with a close frame of this code and reason (cut to 123 bytes), sent after what
    /// was queued before it (unless stalled: then at once, and the queue is lost); the server then waits up to
    /// 5 s for the client's close frame and closes the TCP connection.
    pub fn close_connections(&self, code: u16, reason: &str) {
        self.shared.broadcast(|| Command::Close(code, reason.to_owned()));
    }

    /// Stops sending anything at all, like a hung server: no events (they queue up), no pings, and no pongs or
    /// reads of the client's messages either; `false` resumes. Handshakes still succeed, and
    /// [`Jetstream::drop_connections`] and [`Jetstream::close_connections`] still act.
    pub fn stall(&self, stalled: bool) {
        self.shared.settings.send_modify(|s| s.stalled = stalled);
    }

    /// Answers the next `n` handshakes with this HTTP status (and an optional `Retry-After: <seconds>` header)
    /// instead of upgrading. They are still recorded in [`Jetstream::requests`]. Panics on a 1xx or 2xx status,
    /// which would not be a refusal.
    pub fn refuse_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        let status = StatusCode::from_u16(status).unwrap_or_else(|e| panic!("refuse_next({status}): {e}"));
        assert!(status.as_u16() >= 300, "refuse_next needs a status of 300 or more, not {status}");
        self.shared.lock().refusal = (n > 0).then_some(Refusal { remaining: n, status, retry_after });
    }

    /// Every subscription request so far (refused and invalid ones included), in order: its parsed query.
    pub fn requests(&self) -> Vec<Subscription> {
        self.shared.lock().requests.clone()
    }

    /// Every Text message subscribers have sent (e.g. `options_update`s), in order.
    pub fn client_messages(&self) -> Vec<String> {
        self.shared.lock().client_messages.clone()
    }

    /// Forgets stored events with `time_us` below this, as Jetstream's retention does: a cursor older than
    /// what is left replays from the oldest event left.
    pub fn trim_before(&self, time_us: i64) {
        let mut state = self.shared.lock();
        let kept = state.events.split_off(&(time_us, 0));
        state.events = kept;
    }

    /// Open connections now (upgraded, or being upgraded, and not yet gone).
    pub fn connections(&self) -> usize {
        self.shared.lock().conns.len()
    }
}

impl Drop for Jetstream {
    fn drop(&mut self) {
        self.accept.abort();
        self.shared.lock().stopped = true;
        self.drop_connections();
    }
}

/// Removes a connection from the open ones however its task ends (finished, failed or aborted).
struct Registered {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.shared.lock().conns.remove(&self.id);
    }
}

/// What the handshake decided for an upgraded connection.
struct Accepted {
    replay: Vec<Arc<Event>>,
    filter: Filter,
    require_hello: bool,
}

#[expect(clippy::result_large_err, reason = "tungstenite's handshake callback returns its own ErrorResponse")]
async fn serve(stream: TcpStream, shared: Arc<Shared>, abort: oneshot::Receiver<AbortHandle>) {
    let Ok(abort) = abort.await else { return };
    let id = {
        let mut state = shared.lock();
        state.next_conn += 1;
        state.next_conn
    };
    let _registered = Registered { shared: shared.clone(), id };
    let (commands_tx, commands) = mpsc::unbounded_channel();
    let mut accepted = None;
    let callback = |request: &Request, response: Response| {
        handshake(&shared, id, request, response, &mut accepted, || Conn { commands: commands_tx.clone(), abort })
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else { return };
    let Some(accepted) = accepted else { return };
    let mut session = Session {
        ws,
        commands,
        settings: shared.settings.subscribe(),
        shared: shared.clone(),
        filter: accepted.filter,
        hello: !accepted.require_hello,
        pending: accepted.replay.into_iter().map(Outgoing::Event).collect(),
        last_time_us: 0,
    };
    let _ = session.run().await;
}

/// The upgrade decision, taken while the handshake request is read: records the request, then refuses it,
/// answers Jetstream's 400/404, or registers the connection and takes its replay (atomically with registering,
/// so that replay and live events neither miss nor repeat one).
#[expect(clippy::result_large_err, reason = "tungstenite's handshake callback returns its own ErrorResponse")]
fn handshake(
    shared: &Shared,
    id: u64,
    request: &Request,
    response: Response,
    accepted: &mut Option<Accepted>,
    conn: impl FnOnce() -> Conn,
) -> std::result::Result<Response, ErrorResponse> {
    let path = request.uri().path().to_owned();
    let raw_query = request.uri().query().unwrap_or_default().to_owned();
    let query = parse_query(&raw_query);
    let all = |name: &str| query.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect::<Vec<_>>();
    let first = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_default();
    let cursor_text = first("cursor");
    let cursor = (!cursor_text.is_empty()).then(|| cursor_text.parse::<i64>());
    let max_text = first("maxMessageSizeBytes");
    let socket_encoding = request.headers().get("Socket-Encoding").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let subscription = Subscription {
        cursor: cursor.clone().and_then(|c| c.ok()),
        wanted_collections: all("wantedCollections"),
        wanted_dids: all("wantedDids"),
        max_message_size_bytes: (!max_text.is_empty()).then(|| parse_max_message_size(max_text)),
        compress: socket_encoding.contains("zstd") || first("compress") == "true",
        require_hello: first("requireHello") == "true",
        path: path.clone(),
        raw_query,
    };

    let mut state = shared.lock();
    if state.stopped {
        let body = "the local Jetstream has stopped".to_owned();
        return Err(error_response(StatusCode::SERVICE_UNAVAILABLE, "text/plain; charset=UTF-8", body, None));
    }
    state.requests.push(subscription.clone());
    if let Some(refusal) = state.refusal.as_mut() {
        refusal.remaining -= 1;
        let (status, retry_after) = (refusal.status, refusal.retry_after);
        if refusal.remaining == 0 {
            state.refusal = None;
        }
        let body = format!("refused by the test: {status}");
        return Err(error_response(status, "text/plain; charset=UTF-8", body, retry_after));
    }
    if path != "/subscribe" {
        let body = r#"{"message":"Not Found"}"#.to_owned();
        return Err(error_response(StatusCode::NOT_FOUND, "application/json", body, None));
    }
    let cursor = match cursor {
        Some(Err(_)) => {
            let body = format!("invalid cursor: {cursor_text}");
            return Err(error_response(StatusCode::BAD_REQUEST, "text/plain; charset=UTF-8", body, None));
        }
        // A cursor in the future means live tail (legacy:pkg/server/server.go:94-97).
        Some(Ok(cursor)) if cursor <= now_us() => Some(cursor),
        _ => None,
    };
    let (collections, dids) = match parse_filter(&subscription.wanted_collections, &subscription.wanted_dids) {
        Ok(parsed) => parsed,
        Err(message) => {
            return Err(error_response(StatusCode::BAD_REQUEST, "text/plain; charset=UTF-8", message, None));
        }
    };
    let replay = match cursor {
        Some(cursor) => state.events.range((cursor, 0)..).map(|(_, e)| e.clone()).collect(),
        None => Vec::new(),
    };
    state.conns.insert(id, conn());
    let filter =
        Filter { collections, dids, max_message_size_bytes: subscription.max_message_size_bytes.unwrap_or_default() };
    *accepted = Some(Accepted { replay, filter, require_hello: subscription.require_hello });
    Ok(response)
}

fn error_response(status: StatusCode, content_type: &str, body: String, retry_after: Option<u64>) -> ErrorResponse {
    let mut builder = http::Response::builder()
        .status(status)
        .header("Content-Type", content_type)
        .header("Content-Length", body.len())
        .header("Connection", "close");
    if let Some(seconds) = retry_after {
        builder = builder.header("Retry-After", seconds);
    }
    builder.body(Some(body)).expect("a valid error response")
}

type WsResult<T> = std::result::Result<T, tokio_tungstenite::tungstenite::Error>;

/// One upgraded connection: its options, what is queued for it, and where it is.
struct Session {
    ws: WebSocketStream<TcpStream>,
    commands: mpsc::UnboundedReceiver<Command>,
    settings: watch::Receiver<Settings>,
    shared: Arc<Shared>,
    filter: Filter,
    /// False while a `requireHello` subscriber has not sent its `options_update`.
    hello: bool,
    /// Replay first, then live events and raw messages, in order.
    pending: VecDeque<Outgoing>,
    /// The `time_us` of the last event sent (legacy:pkg/server/subscriber.go:64-67).
    last_time_us: i64,
}

impl Session {
    async fn run(&mut self) -> WsResult<()> {
        let mut ping_every = self.settings.borrow_and_update().ping_every;
        let mut ping = ping_interval(ping_every);
        loop {
            let stalled = self.settings.borrow().stalled;
            loop {
                match self.commands.try_recv() {
                    Ok(Command::Send(outgoing)) => self.pending.push_back(outgoing),
                    Ok(Command::Close(code, reason)) => return self.close(stalled, code, &reason).await,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return Ok(()),
                }
            }
            if !stalled
                && self.hello
                && let Some(outgoing) = self.pending.pop_front()
            {
                self.deliver(outgoing).await?;
                continue;
            }
            // Jetstream pings from its send loop, which a requireHello subscriber reaches after its hello
            // (legacy:pkg/server/server.go:202-212, :248-284).
            let pinging = !stalled && self.hello;
            // Settings first, so that a change made before a client's message is seen before that message; then
            // the client, so that a stream of events cannot starve its pings and close frames.
            tokio::select! {
                biased;
                changed = self.settings.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let every = self.settings.borrow_and_update().ping_every;
                    if every != ping_every {
                        ping_every = every;
                        ping = ping_interval(every);
                    }
                }
                message = self.ws.next(), if !stalled => match message {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(reason) = self.on_text(text.as_str()) {
                            // Terminate (a close frame 1000), then the socket is closed without waiting
                            // (legacy:pkg/server/server.go:161-163, subscriber.go:292-295).
                            self.ws.send(close_message(1000, &reason)).await?;
                            return Ok(());
                        }
                    }
                    // tungstenite answers pings as it reads, and a client's close frame on the next read, which
                    // then ends the stream; binary messages are ignored (server.go:196-197).
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return Ok(()),
                },
                _ = tick(&mut ping), if pinging => self.ws.send(Message::Ping(Bytes::new())).await?,
                command = self.commands.recv() => match command {
                    Some(Command::Send(outgoing)) => self.pending.push_back(outgoing),
                    Some(Command::Close(code, reason)) => return self.close(stalled, code, &reason).await,
                    None => return Ok(()),
                },
            }
        }
    }

    /// Sends an event if this subscriber wants it (legacy:pkg/server/subscriber.go:53-72), or a raw message.
    async fn deliver(&mut self, outgoing: Outgoing) -> WsResult<()> {
        match outgoing {
            Outgoing::Event(event) => {
                let max = self.filter.max_message_size_bytes;
                if !self.filter.wants(&event)
                    || event.time_us <= self.last_time_us
                    || (max > 0 && event.text.len() > max)
                {
                    return Ok(());
                }
                self.send(Message::text(event.text.as_str())).await?;
                self.last_time_us = event.time_us;
                Ok(())
            }
            Outgoing::Text(text) => self.send(Message::text(text)).await,
            Outgoing::Binary(bytes) => self.send(Message::binary(bytes)).await,
        }
    }

    /// Sends a Text or Binary message whole, or in frames of the configured size.
    async fn send(&mut self, message: Message) -> WsResult<()> {
        let fragment = self.settings.borrow().fragment;
        let Some(size) = fragment.filter(|&size| message.len() > size) else {
            return self.ws.send(message).await;
        };
        let kind = if message.is_binary() { Data::Binary } else { Data::Text };
        let payload = message.into_data();
        let mut start = 0;
        while start < payload.len() {
            let end = (start + size).min(payload.len());
            let opcode = OpCode::Data(if start == 0 { kind } else { Data::Continue });
            let frame = Frame::message(payload.slice(start..end), opcode, end == payload.len());
            self.ws.feed(Message::Frame(frame)).await?;
            start = end;
        }
        self.ws.flush().await
    }

    /// Sends the close frame after what is queued (unless stalled), then waits a while for the client's.
    async fn close(&mut self, stalled: bool, code: u16, reason: &str) -> WsResult<()> {
        if !stalled && self.hello {
            while let Some(outgoing) = self.pending.pop_front() {
                self.deliver(outgoing).await?;
            }
        }
        self.ws.send(close_message(code, reason)).await?;
        let ws = &mut self.ws;
        let _ = tokio::time::timeout(Duration::from_secs(5), async move { while let Some(Ok(_)) = ws.next().await {} })
            .await;
        Ok(())
    }

    /// A Text message from the client: an `options_update` changes the filter (and is the hello); Some(reason)
    /// when the connection must end (legacy:pkg/server/server.go:154-195).
    fn on_text(&mut self, text: &str) -> Option<String> {
        self.shared.lock().client_messages.push(text.to_owned());
        match options_update(text) {
            Ok(None) => None,
            Ok(Some((collections, dids))) => match parse_filter(&collections, &dids) {
                Ok((collections, dids)) => {
                    // The update's maxMessageSizeBytes is not applied (legacy:pkg/server/subscriber.go:282-290).
                    self.filter.collections = collections;
                    self.filter.dids = dids;
                    self.hello = true;
                    None
                }
                Err(e) => Some(format!("failed to parse subscriber options: {e}")),
            },
            Err(reason) => Some(reason),
        }
    }
}

fn close_message(code: u16, reason: &str) -> Message {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame { code: code.into(), reason: reason[..end].into() }))
}

fn ping_interval(every: Option<Duration>) -> Option<Interval> {
    every.map(|every| {
        let mut interval = tokio::time::interval_at(Instant::now() + every, every);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        interval
    })
}

async fn tick(ping: &mut Option<Interval>) {
    match ping {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or_default()
}

/// A subscriber's options (legacy:pkg/server/subscriber.go:24-48).
#[derive(Debug, Default)]
struct Filter {
    /// None: every collection.
    collections: Option<Collections>,
    /// Empty: every DID.
    dids: HashSet<String>,
    /// 0: no limit.
    max_message_size_bytes: usize,
}

#[derive(Debug)]
struct Collections {
    /// `app.bsky.feed.*` kept as `app.bsky.feed.`.
    prefixes: Vec<String>,
    full_paths: HashSet<String>,
}

impl Filter {
    /// legacy:pkg/server/subscriber.go:54-62 and :259-280: the collection filter passes an empty collection
    /// (every kind but commit), the DID filter applies to all.
    fn wants(&self, event: &Event) -> bool {
        if let Some(collections) = &self.collections
            && !event.collection.is_empty()
            && !collections.full_paths.contains(&event.collection)
            && !collections.prefixes.iter().any(|prefix| event.collection.starts_with(prefix.as_str()))
        {
            return false;
        }
        self.dids.is_empty() || self.dids.contains(&event.did)
    }
}

/// legacy:pkg/server/subscriber.go:150-193, with its error messages.
fn parse_filter(
    wanted_collections: &[String],
    wanted_dids: &[String],
) -> std::result::Result<(Option<Collections>, HashSet<String>), String> {
    let mut collections = None;
    if !wanted_collections.is_empty() {
        let mut parsed = Collections { prefixes: Vec::new(), full_paths: HashSet::new() };
        for wanted in wanted_collections {
            if wanted.ends_with(".*") {
                parsed.prefixes.push(wanted.trim_end_matches('*').to_owned());
            } else if is_nsid(wanted) {
                parsed.full_paths.insert(wanted.clone());
            } else {
                return Err(format!("invalid subscriber options: invalid collection: {wanted}"));
            }
        }
        collections = Some(parsed);
    }
    let mut dids = HashSet::new();
    for did in wanted_dids {
        if !is_did(did) {
            return Err("invalid subscriber options".to_owned());
        }
        dids.insert(did.clone());
    }
    if dids.len() > MAX_WANTED_DIDS {
        return Err("invalid subscriber options: too many wanted DIDs".to_owned());
    }
    if collections.as_ref().is_some_and(|c| c.prefixes.len() + c.full_paths.len() > MAX_WANTED_COLLECTIONS) {
        return Err("invalid subscriber options: too many wanted collections".to_owned());
    }
    Ok((collections, dids))
}

/// indigo's `syntax.ParseNSID`: `^[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}
/// [a-zA-Z0-9])?)+(\.[a-zA-Z]([a-zA-Z]{0,61}[a-zA-Z])?)$`, at most 317 characters.
fn is_nsid(text: &str) -> bool {
    let segments: Vec<&str> = text.split('.').collect();
    let domain_segment = |segment: &str, first: bool| {
        let bytes = segment.as_bytes();
        (1..=63).contains(&bytes.len())
            && if first { bytes[0].is_ascii_alphabetic() } else { bytes[0].is_ascii_alphanumeric() }
            && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && bytes[bytes.len() - 1] != b'-'
    };
    let Some((name, domain)) = segments.split_last() else { return false };
    text.len() <= 317
        && domain.len() >= 2
        && domain.iter().enumerate().all(|(i, segment)| domain_segment(segment, i == 0))
        && (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphabetic())
}

/// indigo's `syntax.ParseDID`: `^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]$`, at most 2048 characters.
fn is_did(text: &str) -> bool {
    let Some((method, id)) = text.strip_prefix("did:").and_then(|rest| rest.split_once(':')) else {
        return false;
    };
    text.len() <= 2048
        && !method.is_empty()
        && method.bytes().all(|b| b.is_ascii_lowercase())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:%-".contains(&b))
        && id.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// legacy:pkg/server/subscriber.go:311-333: 0 (no limit) for anything but a positive integer.
fn parse_max_message_size(text: &str) -> usize {
    match text.parse::<i64>() {
        Ok(n) if n > 0 && n <= i64::from(u32::MAX) => n as usize,
        _ => 0,
    }
}

/// A client's Text message as Jetstream reads it (legacy:pkg/server/server.go:158-195): Ok(None) for a type it
/// ignores, the new wantedCollections and wantedDids for an `options_update`, Err(close reason) otherwise.
type OptionsUpdate = (Vec<String>, Vec<String>);

fn options_update(text: &str) -> std::result::Result<Option<OptionsUpdate>, String> {
    let envelope = |e: &dyn std::fmt::Display| format!("failed to unmarshal subscriber sourced message: {e}");
    let message: Value = serde_json::from_str(text).map_err(|e| envelope(&e))?;
    let kind = match &message {
        Value::Null => "",
        Value::Object(fields) => match fields.get("type") {
            None | Some(Value::Null) => "",
            Some(Value::String(kind)) => kind.as_str(),
            Some(other) => return Err(envelope(&format!("type is {other}, not a string"))),
        },
        other => return Err(envelope(&format!("{other} is not an object"))),
    };
    if kind != "options_update" {
        return Ok(None);
    }
    let update = |e: &dyn std::fmt::Display| format!("failed to unmarshal subscriber options update: {e}");
    let payload = match message.get("payload") {
        None => return Err(update(&"unexpected end of JSON input")),
        Some(Value::Null) => return Ok(Some((Vec::new(), Vec::new()))),
        Some(Value::Object(payload)) => payload,
        Some(other) => return Err(update(&format!("{other} is not an object"))),
    };
    let strings = |name: &str| match payload.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str().map(str::to_owned).ok_or_else(|| update(&format!("{name}: {item} is not a string")))
            })
            .collect(),
        Some(other) => Err(update(&format!("{name}: {other} is not an array"))),
    };
    match payload.get("maxMessageSizeBytes") {
        None | Some(Value::Null) => {}
        Some(n) if n.is_i64() || n.is_u64() => {}
        Some(other) => return Err(update(&format!("maxMessageSizeBytes: {other} is not an integer"))),
    }
    Ok(Some((strings("wantedCollections")?, strings("wantedDids")?)))
}

/// Go's `url.ParseQuery`, which Jetstream's `c.Request().URL.Query()` uses: `&`-separated pairs, `+` and
/// `%XX` decoded; pairs with a `;` or a bad escape are dropped.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.contains(';'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((unescape(name)?, unescape(value)?))
        })
        .collect()
}

fn unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}
