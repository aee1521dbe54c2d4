//! The X API v2 stream source: connects to the sample, sample10 or filtered stream, frames the never-ending
//! response into lines, produces each post keyed by its id (bad lines to the rejects topic, with why), and
//! reconnects as X documents. Connection attempts also pass a governor quota, so that a flapping connection
//! never exceeds X's per-15-minutes connection limit; a bad token stops the source with a clear message. A
//! reconnect may ask X to resend what it sent meanwhile ([`super::backfill`]).

use std::num::NonZeroU32;
use std::time::Duration;

use anyhow::bail;
use contract::reject::Reject;
use futures::StreamExt;
use futures::future::BoxFuture;
use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::backfill::{Ask, Backfill};
use super::backoff::Backoff;
use super::framing::{Frame, LineFramer};
use super::produce::produce;
use super::rules::{self, Rule, RulesError};
use crate::http::Redirect;
use crate::metrics::Reconnect;
use crate::queue::{Closed, Emitter};
use crate::secret::Secret;
use crate::source::{Source, Waiter};

/// Which stream to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/2/tweets/sample/stream`: about 1 % of all posts.
    Sample,
    /// `/2/tweets/sample10/stream`: about 10 %, in 20 partitions (1-based), one connection each.
    Sample10 { partition: u8 },
    /// `/2/tweets/search/stream`: posts matching the rules.
    Search,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Self::Sample => "/2/tweets/sample/stream",
            Self::Sample10 { .. } => "/2/tweets/sample10/stream",
            Self::Search => "/2/tweets/search/stream",
        }
    }

    /// The `source` header of its records.
    pub fn source_name(self) -> &'static str {
        match self {
            Self::Sample => contract::source::X_SAMPLE,
            Self::Sample10 { .. } => contract::source::X_SAMPLE10,
            Self::Search => contract::source::X_SEARCH,
        }
    }

    /// The name of its task in logs and metrics: a sample10 task's names its partition, since several may run
    /// side by side.
    pub fn task_name(self) -> String {
        match self {
            Self::Sample10 { partition } => format!("{}.p{partition}", contract::source::X_SAMPLE10),
            other => other.source_name().to_owned(),
        }
    }
}

/// Field selections that fill every column of `twitter_data` and `twitter_users`.
pub const DEFAULT_TWEET_FIELDS: &str = "author_id,conversation_id,created_at,entities,in_reply_to_user_id,lang,possibly_sensitive,public_metrics,referenced_tweets";
pub const DEFAULT_EXPANSIONS: &str = "author_id";
pub const DEFAULT_USER_FIELDS: &str =
    "created_at,description,location,profile_image_url,protected,public_metrics,url,verified,verified_type";

#[derive(Clone, Debug)]
pub struct XStreamConfig {
    /// e.g. `https://api.x.com`
    pub base_url: String,
    pub token: Secret,
    pub endpoint: Endpoint,
    pub tweet_fields: String,
    pub expansions: String,
    pub user_fields: String,
    pub topic: String,
    /// Reconnect when nothing, not even a heartbeat, arrived for this long (X sends one every ~20 s).
    pub stall_timeout: Duration,
    pub max_line_bytes: usize,
    /// Connection attempts allowed per 15 minutes (X allows 50 on these endpoints).
    pub connections_per_15_min: NonZeroU32,
    /// For the filtered stream: the rules to sync before connecting (`None`: leave the rules as they are).
    pub rules: Option<Vec<Rule>>,
    pub rules_dry_run: bool,
    /// On a reconnect, the most minutes of backfill to ask for (0: none, for plans without backfill).
    pub backfill_minutes: u8,
    /// The Kafka client that reads, at start-up, when the last run's newest record of this stream was
    /// scraped, for the first connection's backfill; `None`: the first connection asks for none.
    pub resume_from: Option<rdkafka::ClientConfig>,
}

pub struct XStream {
    config: XStreamConfig,
    waiter: Waiter,
}

impl XStream {
    pub fn new(config: XStreamConfig, waiter: Waiter) -> Self {
        Self { config, waiter }
    }

    fn url(&self, ask: Option<Ask>) -> String {
        let config = &self.config;
        let mut url = format!("{}{}", config.base_url.trim_end_matches('/'), config.endpoint.path());
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Endpoint::Sample10 { partition } = config.endpoint {
            query.push(("partition", partition.to_string()));
        }
        if let Some(ask) = ask {
            query.push(("backfill_minutes", ask.minutes.to_string()));
        }
        for (name, value) in [
            ("tweet.fields", &config.tweet_fields),
            ("expansions", &config.expansions),
            ("user.fields", &config.user_fields),
        ] {
            if !value.trim().is_empty() {
                query.push((name, value.trim().to_owned()));
            }
        }
        for (i, (name, value)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(name);
            url.push('=');
            url.push_str(&value.replace(',', "%2C"));
        }
        url
    }
}

/// What outlives one connection.
struct Between {
    framer: LineFramer,
    backoff: Backoff,
    backfill: Backfill,
}

/// How one connection ended.
enum Ended {
    Reconnect(Reconnect),
    Shutdown,
    /// Retrying cannot help (a bad token, a wrong URL): the message says what to fix.
    Fatal(String),
}

impl From<Closed> for Ended {
    fn from(_: Closed) -> Self {
        Self::Fatal("the queue to Kafka closed".into())
    }
}

impl Source for XStream {
    fn name(&self) -> String {
        self.config.endpoint.task_name()
    }

    fn record_source(&self) -> String {
        self.config.endpoint.source_name().to_owned()
    }

    fn topics(&self) -> Vec<String> {
        vec![self.config.topic.clone()]
    }

    fn run(self: Box<Self>, out: Emitter, shutdown: CancellationToken) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async move { self.read_until_stopped(out, shutdown).await })
    }
}

impl XStream {
    async fn read_until_stopped(self, out: Emitter, shutdown: CancellationToken) -> anyhow::Result<()> {
        if self.config.token.is_empty() {
            bail!("X_BEARER_TOKEN is empty: set it to the app's bearer token, or use the replay source");
        }
        let client = crate::http::client(self.config.stall_timeout)?;
        if let (Endpoint::Search, Some(desired)) = (self.config.endpoint, &self.config.rules)
            && !self.sync_rules(&client, desired, &shutdown).await?
        {
            return Ok(());
        }
        let clock = DefaultClock::default();
        let per_connection = Duration::from_secs(15 * 60) / self.config.connections_per_15_min.get();
        let quota = Quota::with_period(per_connection)
            .expect("a positive period")
            .allow_burst(self.config.connections_per_15_min);
        let limiter = RateLimiter::direct_with_clock(quota, clock.clone());
        let name = self.name();
        let backfilled = out.metrics().backfill_lines.get_or_create(&vec![("source", name.clone())]).clone();
        let mut between = Between {
            framer: LineFramer::new(self.config.max_line_bytes),
            backoff: Backoff::new(),
            backfill: Backfill::new(self.config.backfill_minutes, self.waiter.clock(), backfilled),
        };
        self.find_restart_gap(&mut between.backfill).await;
        loop {
            if let Err(not_until) = limiter.check() {
                let delay = not_until.wait_time_from(clock.now());
                tracing::warn!(delay = ?delay, "connection quota spent: waiting before reconnecting");
                if !self.waiter.wait(delay, "connection_quota", &shutdown).await {
                    return Ok(());
                }
            }
            let ask = between.backfill.ask();
            if let Some(ask) = ask {
                tracing::info!(
                    backfill_minutes = ask.minutes,
                    disconnected = ?ask.disconnected,
                    "reconnecting with backfill: X resends what it sent while disconnected"
                );
            }
            let ended = self.connect_and_read(&client, &self.url(ask), ask, &out, &mut between, &shutdown).await;
            if let Some(partial) = between.framer.take_unfinished() {
                let reason = Reject::Truncated(partial.len());
                out.reject(partial, &reason).await?;
            }
            let why = match ended {
                Ended::Shutdown => return Ok(()),
                Ended::Fatal(message) => bail!(message),
                Ended::Reconnect(why) => why,
            };
            out.metrics().reconnect(&name, why);
            let delay = between.backoff.next_delay(why);
            tracing::info!(reason = why.label(), delay = ?delay, "reconnecting to the X stream");
            if !self.waiter.wait(delay, why.label(), &shutdown).await {
                return Ok(());
            }
        }
    }

    /// After a restart, the gap since the last run's newest record of this stream, for the first connection's
    /// backfill. A topic that cannot be read costs the backfill, not the stream: it starts without.
    async fn find_restart_gap(&self, backfill: &mut Backfill) {
        let Some(config) = self.config.resume_from.clone().filter(|_| self.config.backfill_minutes > 0) else {
            return;
        };
        let (topic, source) = (self.config.topic.clone(), self.record_source());
        let minutes = self.config.backfill_minutes;
        // The gap is as of now; reading the topic takes a while, which the first connection asks for too.
        let at = self.waiter.clock().now();
        match super::restart::gap(config, topic, source, minutes, chrono::Utc::now()).await {
            Ok(Some(gap)) => {
                tracing::info!(
                    ?gap,
                    "the last run's newest record of this stream is in the topic: backfilling the gap"
                );
                backfill.restarted(gap, at);
            }
            Ok(None) => tracing::info!("the topic holds no record yet: nothing to backfill"),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot read the topic for the gap since the last run: no backfill")
            }
        }
    }

    /// Syncs the filtered stream's rules, retrying what X may answer differently later (429, 5xx, the
    /// network) with X's backoff; a refused token or rule stops the source. `false` on shutdown.
    async fn sync_rules(
        &self,
        client: &reqwest::Client,
        desired: &[Rule],
        shutdown: &CancellationToken,
    ) -> anyhow::Result<bool> {
        let config = &self.config;
        let mut backoff = Backoff::new();
        loop {
            let why = match rules::sync(client, &config.base_url, &config.token, desired, config.rules_dry_run).await {
                Ok(synced) => {
                    tracing::info!(
                        added = synced.added.len(),
                        deleted = synced.deleted.len(),
                        kept = synced.kept,
                        dry_run = config.rules_dry_run,
                        "stream rules synced"
                    );
                    return Ok(true);
                }
                Err(
                    e @ (RulesError::Unauthorized { .. }
                    | RulesError::Rejected { .. }
                    | RulesError::Parse(_)
                    | RulesError::Redirected(_)),
                ) => {
                    return Err(e.into());
                }
                Err(RulesError::Http { status: 429, body }) => {
                    tracing::warn!(%body, "X rate-limited the rules request (429)");
                    Reconnect::RateLimited
                }
                Err(e @ (RulesError::Http { .. } | RulesError::TooLarge { .. })) => {
                    tracing::warn!(error = %e, "the rules request failed");
                    Reconnect::HttpError
                }
                Err(e @ RulesError::Network(_)) => {
                    tracing::warn!(error = %format!("{e:#}"), "the rules request failed");
                    Reconnect::Network
                }
            };
            let delay = backoff.next_delay(why);
            if !self.waiter.wait(delay, &format!("rules_{}", why.label()), shutdown).await {
                return Ok(false);
            }
        }
    }

    async fn connect_and_read(
        &self,
        client: &reqwest::Client,
        url: &str,
        ask: Option<Ask>,
        out: &Emitter,
        between: &mut Between,
        shutdown: &CancellationToken,
    ) -> Ended {
        let request = client.get(url).bearer_auth(self.config.token.expose()).send();
        let response = tokio::select! {
            _ = shutdown.cancelled() => return Ended::Shutdown,
            response = request => match response {
                Ok(response) => response,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "could not connect to the X stream");
                    return Ended::Reconnect(Reconnect::Network);
                }
            },
        };
        let status = response.status();
        if !status.is_success() {
            return self.refused(status.as_u16(), response).await;
        }
        tracing::info!(endpoint = self.config.endpoint.path(), "connected to the X stream");
        between.backfill.connected(ask);
        let mut body = response.bytes_stream();
        let mut received = false;
        loop {
            let next = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ended::Shutdown,
                next = tokio::time::timeout(self.config.stall_timeout, body.next()) => next,
            };
            let chunk = match next {
                Ok(Some(Ok(chunk))) => chunk,
                Err(_) => return self.stalled(),
                Ok(Some(Err(e))) if e.is_timeout() => return self.stalled(),
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %format!("{e:#}"), "the X stream broke off");
                    return Ended::Reconnect(if received { Reconnect::Disconnected } else { Reconnect::Network });
                }
                Ok(None) => {
                    tracing::warn!("X closed the stream");
                    return Ended::Reconnect(if received { Reconnect::Disconnected } else { Reconnect::Network });
                }
            };
            if !received {
                received = true;
                between.backoff.reset();
            }
            out.metrics().received_now();
            between.backfill.received();
            for frame in between.framer.push(&chunk) {
                if !matches!(frame, Frame::Heartbeat) {
                    between.backfill.line();
                }
                match self.handle(frame, out).await {
                    Ok(None) => {}
                    Ok(Some(ended)) => return ended,
                    Err(closed) => return closed.into(),
                }
            }
        }
    }

    /// Produces one frame; `Some` when X asked us to reconnect.
    async fn handle(&self, frame: Frame, out: &Emitter) -> Result<Option<Ended>, Closed> {
        let errors = produce(frame, &self.config.topic, self.config.max_line_bytes, out).await?;
        for error in &errors {
            tracing::warn!(title = %error.title, detail = %error.detail, "X sent an error line");
        }
        Ok(errors.iter().any(|e| e.is_disconnect()).then_some(Ended::Reconnect(Reconnect::Disconnected)))
    }

    fn stalled(&self) -> Ended {
        tracing::warn!(timeout = ?self.config.stall_timeout, "nothing from the X stream, not even a heartbeat");
        Ended::Reconnect(Reconnect::Stalled)
    }

    /// An error status: read X's problem body and decide whether retrying can help.
    async fn refused(&self, status: u16, response: reqwest::Response) -> Ended {
        if let Some(redirect) = Redirect::of(response.status(), response.headers(), response.url()) {
            return Ended::Fatal(format!(
                "the X stream {} answered with {redirect}, which the scraper does not follow, so that the bearer \
                 token reaches no other host: check X_API_BASE_URL",
                self.config.endpoint.path()
            ));
        }
        let problem = Problem::read(response).await;
        match status {
            401 => {
                Ended::Fatal(format!("X rejected the bearer token (401 Unauthorized: {problem}): check X_BEARER_TOKEN"))
            }
            403 => Ended::Fatal(format!(
                "X refused access to {} (403 Forbidden: {problem}): the app's access level may not include this endpoint",
                self.config.endpoint.path()
            )),
            429 => {
                tracing::warn!(%problem, "X says too many requests or connections (429)");
                Ended::Reconnect(Reconnect::RateLimited)
            }
            408 | 500..=599 => {
                tracing::warn!(status, %problem, "the X stream answered with a server error");
                Ended::Reconnect(Reconnect::HttpError)
            }
            _ => Ended::Fatal(format!("the X stream answered {status}: {problem}")),
        }
    }
}

/// X's error body (RFC 7807 problem details, or the older `errors` list).
#[derive(Debug, Default, Deserialize)]
struct Problem {
    #[serde(default)]
    title: String,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    connection_issue: Option<String>,
    #[serde(default)]
    errors: Vec<serde_json::Value>,
    /// The body, when it was not JSON.
    #[serde(skip)]
    text: String,
}

/// Bytes of an error body worth reading: X's are small; anything bigger is not an X error body.
const MAX_ERROR_BODY: usize = 16 * 1024;

impl Problem {
    async fn read(response: reqwest::Response) -> Self {
        let body = crate::http::read_error_body(response.bytes_stream(), MAX_ERROR_BODY).await;
        serde_json::from_slice(&body).unwrap_or_else(|_| Self { text: crate::http::excerpt(&body), ..Self::default() })
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        for part in [&self.title, &self.detail, &self.text] {
            if !part.is_empty() {
                parts.push(part.clone());
            }
        }
        if let Some(issue) = &self.connection_issue {
            parts.push(format!("connection_issue={issue}"));
        }
        for error in &self.errors {
            parts.push(error.to_string());
        }
        if parts.is_empty() { f.write_str("no error body") } else { f.write_str(&parts.join(": ")) }
    }
}
