//! Instagram's web profile endpoint as a source: `GET /api/v1/users/web_profile_info/?username=NAME` with the
//! web app's `x-ig-app-id`, no credentials. Its answer, `{"data":{"user":{...}},"status":"ok"}`, holds the
//! profile and its latest posts (`user.edge_owner_to_timeline_media.edges[].node`); each becomes one record,
//! the object's bytes exactly as Instagram sent them (docs/architecture.md, "Instagram records").
//!
//! Instagram throttles this endpoint hard and without warning: a 429, a 401/403 saying `require_login`, or a
//! login page (HTML) instead of JSON. Each makes the source stay away for minutes, 5 doubling to 60 (a client
//! that retries a throttled call quickly meets longer blocks), then ask for the same user again: throttling
//! never skips anyone. Server and network errors are retried sooner,
//! five times a user and round; other refusals skip the user until the next round.

use std::num::NonZeroU32;
use std::time::Duration;

use futures::future::BoxFuture;
use governor::clock::Clock;
use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::InstagramTopics;
use super::offer::{offer, prefix};
use super::quota::WindowQuota;
use super::schedule::Schedule;
use crate::http::{Redirect, excerpt};
use crate::metrics::Reconnect;
use crate::queue::{Closed, Emitter};
use crate::source::{Source, Waiter};
use common::backoff::Backoff;
use contract::reject::Reject;

/// The `source` header of this source's records.
pub const SOURCE_NAME: &str = contract::source::INSTAGRAM_WEB_PROFILE;
pub const DEFAULT_BASE_URL: &str = "https://i.instagram.com";
/// Instagram web's public app id (sent by every browser that opens instagram.com; not a secret).
pub const DEFAULT_APP_ID: &str = "936619743392459";
/// About what instaloader finds the endpoint tolerates: 200 requests in any 11 minutes.
pub const DEFAULT_REQUESTS_PER_WINDOW: u32 = 200;
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(11 * 60);

const PATH: &str = "/api/v1/users/web_profile_info/";
/// The endpoint answers browsers; a library's user agent gets the login wall sooner.
const BROWSER_USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
                                  Chrome/126.0.0.0 Safari/537.36";
/// Every read of a response must complete within this.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A profile with its first page of posts is tens of KiB; a larger body is not what we asked for.
const MAX_BODY_BYTES: usize = 8 << 20;
/// Enough of an error body to tell a login wall or a throttling message from anything else.
const MAX_ERROR_BODY: usize = 64 << 10;
/// Staying away after throttling: 5 minutes, doubling, up to an hour.
const THROTTLE_FIRST: Duration = Duration::from_secs(5 * 60);
const THROTTLE_MAX: Duration = Duration::from_secs(60 * 60);
/// A `Retry-After` beyond this is more likely a mistake than a plan.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 60 * 60);
/// Server and network errors: 30 s, doubling, up to 10 minutes; five attempts a user and round.
const TRANSIENT_FIRST: Duration = Duration::from_secs(30);
const TRANSIENT_MAX: Duration = Duration::from_secs(10 * 60);
const TRANSIENT_ATTEMPTS: u32 = 5;

#[derive(Clone, Debug)]
pub struct WebConfig {
    /// [`DEFAULT_BASE_URL`]; with or without a trailing slash.
    pub base_url: String,
    /// The `x-ig-app-id` header: [`DEFAULT_APP_ID`].
    pub app_id: String,
    /// Accounts to visit each round; a leading `@` and surrounding blanks are ignored, invalid names are
    /// logged and skipped.
    pub usernames: Vec<String>,
    pub schedule: Schedule,
    /// At most this many requests in any `window` ([`DEFAULT_REQUESTS_PER_WINDOW`] in [`DEFAULT_WINDOW`]).
    pub requests_per_window: NonZeroU32,
    pub window: Duration,
    pub topics: InstagramTopics,
    /// A profile or media object larger than this goes to the rejects topic (its first KiB), with the reason.
    pub max_record_bytes: usize,
}

/// Polls the web profile of each configured username, once a round.
pub struct WebProfileSource {
    config: WebConfig,
    waiter: Waiter,
    /// The configured usernames, cleaned and checked.
    usernames: Vec<String>,
}

impl WebProfileSource {
    pub fn new(config: WebConfig, waiter: Waiter) -> Self {
        let usernames = super::usernames(&config.usernames);
        Self { config, waiter, usernames }
    }
}

impl Source for WebProfileSource {
    fn name(&self) -> String {
        SOURCE_NAME.into()
    }

    fn topics(&self) -> Vec<String> {
        vec![self.config.topics.profiles.clone(), self.config.topics.media.clone()]
    }

    fn run(self: Box<Self>, out: Emitter, shutdown: CancellationToken) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async move { self.poll_until_stopped(out, shutdown).await })
    }
}

/// What one round did, for its log line.
#[derive(Debug, Default)]
struct Round {
    profiles: u64,
    media: u64,
    rejected: u64,
    missing: u64,
    /// Refused, unreadable, or given up on after repeated errors: visited again next round.
    skipped: u64,
    throttled_waits: u64,
    transient_waits: u64,
}

/// The one endpoint this source asks, and what it remembers about asking it.
struct Endpoint {
    client: reqwest::Client,
    url: reqwest::Url,
    quota: WindowQuota,
    /// Shared by all users: Instagram throttles the client, not a user.
    throttle: Backoff,
}

/// How the visit of one user ended.
enum Visit {
    Done,
    Stopped,
}

/// What Instagram's answer to one request means.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// A 200 with JSON: the body, to be split into records.
    Profile(Vec<u8>),
    NoSuchUser,
    /// Stay away, then ask again: what Instagram said, and its `Retry-After`.
    Throttled {
        said: String,
        retry_after: Option<Duration>,
    },
    /// Try again soon (5xx, network).
    Transient(String),
    /// Not worth asking again this round.
    Skip(String),
    Stopped,
}

impl WebProfileSource {
    async fn poll_until_stopped(self, out: Emitter, shutdown: CancellationToken) -> anyhow::Result<()> {
        let base = self.config.base_url.trim_end_matches('/');
        let url = reqwest::Url::parse(&format!("{base}{PATH}"))
            .map_err(|e| anyhow::anyhow!("the Instagram web base URL {base:?} is not a URL: {e}"))?;
        if self.usernames.is_empty() {
            tracing::warn!(source = SOURCE_NAME, "no valid Instagram username configured: nothing to poll");
            return Ok(());
        }
        let mut endpoint = Endpoint {
            client: crate::http::client(READ_TIMEOUT)?,
            url,
            quota: WindowQuota::new(self.config.requests_per_window, self.config.window, &self.waiter),
            throttle: Backoff::new(THROTTLE_FIRST, THROTTLE_MAX),
        };
        let mut round = 0u64;
        loop {
            round += 1;
            let started = self.waiter.clock().now();
            let mut stats = Round::default();
            for user in &self.usernames {
                match self.visit(user, &mut endpoint, &mut stats, &out, &shutdown).await {
                    Ok(Visit::Done) => {}
                    Ok(Visit::Stopped) => return Ok(()),
                    Err(Closed) => anyhow::bail!("the queue to Kafka closed"),
                }
            }
            tracing::info!(
                source = SOURCE_NAME,
                round,
                users = self.usernames.len(),
                profiles = stats.profiles,
                media = stats.media,
                rejected = stats.rejected,
                missing = stats.missing,
                skipped = stats.skipped,
                throttled_waits = stats.throttled_waits,
                transient_waits = stats.transient_waits,
                "Instagram web round done"
            );
            if !self.config.schedule.next_round(round, started, &self.waiter, &shutdown).await {
                return Ok(());
            }
        }
    }

    /// Asks for one user until Instagram answers with the profile, says there is none, or refuses in a way
    /// that waiting cannot fix; throttling makes it wait and ask again, as often as it takes.
    async fn visit(
        &self,
        user: &str,
        endpoint: &mut Endpoint,
        stats: &mut Round,
        out: &Emitter,
        shutdown: &CancellationToken,
    ) -> Result<Visit, Closed> {
        let mut failures = 0u32;
        loop {
            if !endpoint.quota.acquire(&self.waiter, shutdown).await {
                return Ok(Visit::Stopped);
            }
            let (delay, reason, reconnect) = match self.fetch(endpoint, user, shutdown).await {
                Answer::Stopped => return Ok(Visit::Stopped),
                Answer::Profile(body) => {
                    endpoint.throttle.reset();
                    self.produce(user, &body, stats, out).await?;
                    return Ok(Visit::Done);
                }
                Answer::NoSuchUser => {
                    endpoint.throttle.reset();
                    tracing::info!(source = SOURCE_NAME, username = user, "no such Instagram user: skipped");
                    stats.missing += 1;
                    return Ok(Visit::Done);
                }
                Answer::Skip(why) => {
                    tracing::warn!(source = SOURCE_NAME, username = user, why, "skipped the user for this round");
                    stats.skipped += 1;
                    return Ok(Visit::Done);
                }
                Answer::Throttled { said, retry_after } => {
                    let mut delay = endpoint.throttle.next_delay();
                    if let Some(retry_after) = retry_after {
                        delay = delay.max(retry_after.min(MAX_RETRY_AFTER));
                    }
                    tracing::warn!(
                        source = SOURCE_NAME,
                        username = user,
                        said,
                        ?delay,
                        "Instagram throttled the web profile endpoint: waiting, then asking for the same user again"
                    );
                    stats.throttled_waits += 1;
                    (delay, "throttled", Reconnect::RateLimited)
                }
                Answer::Transient(why) => {
                    failures += 1;
                    if failures >= TRANSIENT_ATTEMPTS {
                        tracing::warn!(
                            source = SOURCE_NAME,
                            username = user,
                            why,
                            attempts = failures,
                            "giving up on the user for this round (it is visited again next round)"
                        );
                        stats.skipped += 1;
                        return Ok(Visit::Done);
                    }
                    let delay = TRANSIENT_FIRST.saturating_mul(1 << (failures - 1)).min(TRANSIENT_MAX);
                    tracing::warn!(source = SOURCE_NAME, username = user, why, ?delay, "request failed: retrying");
                    stats.transient_waits += 1;
                    (delay, "transient", Reconnect::HttpError)
                }
            };
            out.metrics().reconnect(SOURCE_NAME, reconnect);
            if !self.waiter.wait(delay, reason, shutdown).await {
                return Ok(Visit::Stopped);
            }
        }
    }

    /// One request, and what its answer means.
    async fn fetch(&self, endpoint: &Endpoint, user: &str, shutdown: &CancellationToken) -> Answer {
        let request = endpoint
            .client
            .get(endpoint.url.clone())
            .query(&[("username", user)])
            .header("x-ig-app-id", &self.config.app_id)
            .header(USER_AGENT, BROWSER_USER_AGENT)
            .header(ACCEPT, "*/*")
            .send();
        let response = tokio::select! {
            _ = shutdown.cancelled() => return Answer::Stopped,
            response = request => match response {
                Ok(response) => response,
                Err(e) => return Answer::Transient(format!("{:#}", anyhow::Error::from(e))),
            },
        };
        let status = response.status().as_u16();
        let headers = response.headers();
        let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        if let Some(redirect) = Redirect::of(response.status(), headers, response.url()) {
            return redirected(redirect, retry_after);
        }
        let body = if status == 200 {
            let read = tokio::select! {
                _ = shutdown.cancelled() => return Answer::Stopped,
                read = crate::http::read_capped(response, MAX_BODY_BYTES) => read,
            };
            match read {
                Ok(Some(body)) => body,
                Ok(None) => return Answer::Skip(format!("the answer is larger than {MAX_BODY_BYTES} bytes")),
                Err(e) => {
                    return Answer::Transient(format!("reading the answer failed: {:#}", anyhow::Error::from(e)));
                }
            }
        } else {
            tokio::select! {
                _ = shutdown.cancelled() => return Answer::Stopped,
                body = crate::http::read_error_body(response.bytes_stream(), MAX_ERROR_BODY) => body,
            }
        };
        classify(status, &content_type, retry_after, body)
    }

    /// Splits a profile answer into its records: the profile, then each of its media.
    async fn produce(&self, user: &str, body: &[u8], stats: &mut Round, out: &Emitter) -> Result<(), Closed> {
        let envelope = match serde_json::from_slice::<Envelope>(body) {
            Ok(Envelope { data: Some(data), .. }) => data,
            Ok(Envelope { data: None, .. }) => return self.reject_answer(user, body, "no `data`", stats, out).await,
            Err(e) => return self.reject_answer(user, body, &e.to_string(), stats, out).await,
        };
        let Some(profile) = envelope.user else {
            tracing::info!(
                source = SOURCE_NAME,
                username = user,
                "no such Instagram user (data.user is null): skipped"
            );
            stats.missing += 1;
            return Ok(());
        };
        out.line_read();
        let topic = &self.config.topics.profiles;
        if offer(out, topic, "Instagram web profile", profile, &[], self.config.max_record_bytes).await?.is_some() {
            stats.profiles += 1;
        } else {
            stats.rejected += 1;
        }
        let media = match serde_json::from_str::<Profile>(profile.get()) {
            Ok(Profile { edge_owner_to_timeline_media: Some(timeline) }) => timeline.edges,
            Ok(Profile { edge_owner_to_timeline_media: None }) => Vec::new(),
            Err(e) => {
                tracing::warn!(source = SOURCE_NAME, username = user, error = %e, "the profile's media list is not readable");
                Vec::new()
            }
        };
        for edge in media {
            let node = match serde_json::from_str::<Edge>(edge.get()) {
                Ok(Edge { node: Some(node) }) => node,
                _ => {
                    out.line_read();
                    stats.rejected += 1;
                    let reason = Reject::Shape("without a `node` object".into())
                        .of("Instagram web media edge (data.user.edge_owner_to_timeline_media.edges)");
                    out.reject(prefix(edge.get().as_bytes(), self.config.max_record_bytes), &reason).await?;
                    continue;
                }
            };
            out.line_read();
            let topic = &self.config.topics.media;
            if offer(out, topic, "Instagram web media", node, &[], self.config.max_record_bytes).await?.is_some() {
                stats.media += 1;
            } else {
                stats.rejected += 1;
            }
        }
        Ok(())
    }

    /// A 200 answer that is not the profile JSON: kept in the rejects topic, the user skipped for the round.
    async fn reject_answer(
        &self,
        user: &str,
        body: &[u8],
        why: &str,
        stats: &mut Round,
        out: &Emitter,
    ) -> Result<(), Closed> {
        tracing::warn!(source = SOURCE_NAME, username = user, why, body = %excerpt(body), "not a web profile answer");
        out.line_read();
        stats.skipped += 1;
        stats.rejected += 1;
        let reason = Reject::Shape(format!("not {{\"data\":{{\"user\":...}}}}: {why}"))
            .of(format!("Instagram web profile answer for {user:?}"));
        out.reject(prefix(body, self.config.max_record_bytes), &reason).await
    }
}

/// What a status and body mean. Order matters: a 404 is no such user and a 5xx a server error, whatever
/// their body; any other answer that is a web page is the login wall (Instagram redirects a client it
/// throttles to `/accounts/login/`).
fn classify(status: u16, content_type: &str, retry_after: Option<Duration>, body: Vec<u8>) -> Answer {
    let said = excerpt(&body);
    if status == 404 {
        return Answer::NoSuchUser;
    }
    if (500..600).contains(&status) {
        return Answer::Transient(format!("HTTP {status}: {said}"));
    }
    let html = content_type.trim_start().to_ascii_lowercase().starts_with("text/html")
        || body.trim_ascii_start().starts_with(b"<");
    if html {
        return Answer::Throttled { said: format!("HTTP {status}, a web page (the login wall): {said}"), retry_after };
    }
    let error = serde_json::from_slice::<ErrorBody>(&body).ok();
    let throttling = error.as_ref().is_some_and(ErrorBody::says_throttled);
    if status == 429 || throttling {
        return Answer::Throttled { said: format!("HTTP {status}: {said}"), retry_after };
    }
    if status == 200 {
        if error.as_ref().is_some_and(|e| e.status.as_deref() == Some("fail")) {
            return Answer::Skip(format!("Instagram answered status \"fail\": {said}"));
        }
        return Answer::Profile(body);
    }
    Answer::Skip(format!("HTTP {status}: {said}"))
}

/// A redirect, which the scraper never follows (`crate::http`): to the login page (or a challenge), Instagram's
/// login wall, it is throttling, as the page itself would be; elsewhere, it is no answer, and the user waits
/// for the next round.
fn redirected(redirect: Redirect, retry_after: Option<Duration>) -> Answer {
    let path = redirect.target.as_ref().map(|target| target.path()).unwrap_or_default();
    if path.starts_with("/accounts/login") || path.starts_with("/challenge") {
        return Answer::Throttled { said: format!("{redirect} (the login wall), not followed"), retry_after };
    }
    Answer::Skip(format!("{redirect}, not followed: check INSTAGRAM_WEB_BASE_URL"))
}

/// The fields of Instagram's error answers (`{"message":...,"require_login":true,"status":"fail"}`).
#[derive(Debug, Deserialize)]
struct ErrorBody {
    message: Option<String>,
    status: Option<String>,
    #[serde(default)]
    require_login: bool,
    #[serde(default)]
    spam: bool,
}

impl ErrorBody {
    fn says_throttled(&self) -> bool {
        let message = self.message.as_deref().unwrap_or_default().to_ascii_lowercase();
        let throttle_message = ["wait a few minutes", "rate limit", "too many requests", "checkpoint_required"]
            .iter()
            .any(|phrase| message.contains(phrase));
        self.require_login || self.spam || (self.status.as_deref() == Some("fail") && throttle_message)
    }
}

/// `{"data":{"user":...},"status":"ok"}`, with the user as the bytes Instagram sent.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    data: Option<Data<'a>>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow, default)]
    user: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Profile<'a> {
    #[serde(borrow, default)]
    edge_owner_to_timeline_media: Option<Timeline<'a>>,
}

#[derive(Deserialize)]
struct Timeline<'a> {
    #[serde(borrow, default)]
    edges: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Edge<'a> {
    #[serde(borrow, default)]
    node: Option<&'a RawValue>,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Answer, classify, redirected};
    use crate::http::Redirect;

    #[test]
    fn throttling_looks_like_a_429_a_login_demand_a_wait_message_or_a_web_page() {
        let throttled = |answer: Answer| matches!(answer, Answer::Throttled { .. });
        let json = "application/json; charset=utf-8";
        assert!(throttled(classify(429, json, None, b"{}".to_vec())));
        let login = br#"{"message":"","require_login":true,"status":"fail"}"#.to_vec();
        assert!(throttled(classify(401, json, None, login)));
        let wait = br#"{"message":"Please wait a few minutes before you try again.","status":"fail"}"#.to_vec();
        assert!(throttled(classify(403, json, None, wait.clone())));
        assert!(throttled(classify(200, json, None, wait)));
        assert!(throttled(classify(200, "text/html; charset=utf-8", None, b"<!DOCTYPE html>".to_vec())));
        assert!(throttled(classify(200, "", None, b"  <html>".to_vec())));
        assert_eq!(
            classify(429, json, Some(Duration::from_secs(7)), b"x".to_vec()),
            Answer::Throttled { said: "HTTP 429: x".into(), retry_after: Some(Duration::from_secs(7)) }
        );

        assert_eq!(classify(404, "text/html", None, b"<html>".to_vec()), Answer::NoSuchUser);
        assert!(matches!(classify(502, "text/html", None, b"<html>".to_vec()), Answer::Transient(_)));
        assert!(matches!(classify(400, json, None, br#"{"message":"bad","status":"fail"}"#.to_vec()), Answer::Skip(_)));
        assert!(matches!(
            classify(200, json, None, br#"{"message":"nope","status":"fail"}"#.to_vec()),
            Answer::Skip(_)
        ));
        assert!(matches!(classify(200, json, None, br#"{"data":{"user":null}}"#.to_vec()), Answer::Profile(_)));
    }

    #[test]
    fn a_redirect_to_the_login_page_is_throttling_and_any_other_skips_the_user() {
        let to = |location: &str| Redirect { status: 302, target: Some(location.parse().unwrap()) };
        let login = redirected(to("https://www.instagram.com/accounts/login/"), Some(Duration::from_secs(9)));
        assert_eq!(
            login,
            Answer::Throttled {
                said: "a 302 redirect to https://www.instagram.com/accounts/login/ (the login wall), not followed"
                    .into(),
                retry_after: Some(Duration::from_secs(9))
            }
        );
        assert!(matches!(redirected(to("https://i.instagram.com/challenge/"), None), Answer::Throttled { .. }));
        let elsewhere = redirected(to("https://example.com/api/v1/users/web_profile_info/"), None);
        assert!(matches!(&elsewhere, Answer::Skip(why) if why.contains("INSTAGRAM_WEB_BASE_URL")), "{elsewhere:?}");
        assert!(matches!(redirected(Redirect { status: 301, target: None }, None), Answer::Skip(_)));
    }
}
