//! The Instagram Graph API source: for each configured account, business discovery (the profile and its media,
//! page after page, until a configured number of pages or posts already seen); for each hashtag, its id (looked
//! up once and kept) and its `recent_media` (and `top_media` if asked), following `paging.next`. Every call
//! passes an hourly quota; the usage headers slow the source down before Meta blocks it; an error body is read
//! by its code (`verdict.rs`): throttled waits and retries, transient retries with backoff, an unknown account
//! is skipped, a refused token stops the source with what to fix.

pub mod pages;
pub mod usage;
pub mod verdict;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use anyhow::bail;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use reqwest::{StatusCode, Url};
use tokio_util::sync::CancellationToken;

use self::pages::{Discovered, Discovery, HashtagSearch, Media, MediaPage};
use self::usage::Usage;
use self::verdict::{GraphError, Verdict};
use super::offer::{KeyedBy, offer, offer_keyed, redacted_prefix};
use super::quota::WindowQuota;
use super::schedule::Schedule;
use contract::header;

use super::{InstagramTopics, numeric_id};
use crate::http::Redirect;
use crate::queue::Emitter;
use crate::secret::Secret;
use crate::source::{Source, Waiter};
use common::backoff::Backoff;
use contract::reject::Reject;

/// The profile fields business discovery asks for. `ig_id` is the account's web id: the record is keyed by
/// it, and the inserter keys the account's row by it, so both APIs' scrapes of one account meet.
pub const PROFILE_FIELDS: &str =
    "id,ig_id,username,name,biography,website,profile_picture_url,followers_count,follows_count,media_count";
/// The media fields business discovery asks for.
pub const MEDIA_FIELDS: &str = "id,caption,media_type,media_url,permalink,timestamp,like_count,comments_count,username";
/// Hashtag media have no owner fields.
pub const HASHTAG_MEDIA_FIELDS: &str = "id,caption,media_type,media_url,permalink,timestamp,like_count,comments_count";

/// The `source` header of business-discovery records.
pub const DISCOVERY_SOURCE: &str = contract::source::INSTAGRAM_BUSINESS_DISCOVERY;

/// Responses larger than this are not read: a page of 50 media is a few hundred KiB.
const MAX_BODY_BYTES: usize = 16 << 20;
/// Attempts at one call that keeps failing transiently before it is left for the next round.
const TRANSIENT_ATTEMPTS: u32 = 5;

#[derive(Clone, Debug)]
pub struct GraphConfig {
    /// e.g. `https://graph.facebook.com/v25.0`
    pub base_url: String,
    pub token: Secret,
    /// The app's own Instagram professional account, through which business discovery and hashtag search ask.
    pub ig_user_id: String,
    pub usernames: Vec<String>,
    pub hashtags: Vec<String>,
    /// Also read each hashtag's `top_media`.
    pub top_media: bool,
    /// Media pages (25 media each) per account and round.
    pub max_pages: u32,
    /// `paging.next` pages per hashtag edge and round.
    pub max_hashtag_pages: u32,
    pub schedule: Schedule,
    /// Calls allowed per hour (Meta's limit for an Instagram app is 200 per user and hour).
    pub requests_per_hour: NonZeroU32,
    /// Usage (from the usage headers, in %) from which the source pauses before each call.
    pub slowdown_percent: f64,
    pub topics: InstagramTopics,
    pub max_record_bytes: usize,
}

pub struct GraphSource {
    config: GraphConfig,
    waiter: Waiter,
}

impl GraphSource {
    pub fn new(config: GraphConfig, waiter: Waiter) -> Self {
        Self { config, waiter }
    }
}

impl Source for GraphSource {
    fn name(&self) -> String {
        "instagram.graph".into()
    }

    fn topics(&self) -> Vec<String> {
        vec![self.config.topics.profiles.clone(), self.config.topics.media.clone()]
    }

    fn run(self: Box<Self>, out: Emitter, shutdown: CancellationToken) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async move {
            let mut poller = Poller::new(self.config, self.waiter, &out, shutdown)?;
            poller.poll().await
        })
    }
}

/// How one call ended.
enum Fetched {
    Body(Vec<u8>),
    /// Give up on this item for this round, and why.
    Skip(String),
    /// Shutdown.
    Stopped,
}

/// What one round did, for its log line.
#[derive(Default)]
struct Tally {
    profiles: u64,
    media: u64,
    rejected: u64,
    skipped: u64,
}

struct Poller {
    config: GraphConfig,
    base: Url,
    waiter: Waiter,
    shutdown: CancellationToken,
    client: reqwest::Client,
    quota: WindowQuota,
    throttle: Backoff,
    transient: Backoff,
    /// A pause the usage headers asked for, taken before the next call.
    pause: Duration,
    /// Per account: the newest post seen, where paging stops.
    newest_seen: HashMap<String, DateTime<Utc>>,
    /// Hashtag ids never change: searched once per tag (Meta counts unique hashtags searched per week).
    hashtag_ids: HashMap<String, String>,
    /// The source's own emitter: every object read is counted under `instagram.graph`.
    out: Emitter,
    discovery: Emitter,
    recent: Emitter,
    top: Emitter,
    tally: Tally,
}

impl Poller {
    fn new(config: GraphConfig, waiter: Waiter, out: &Emitter, shutdown: CancellationToken) -> anyhow::Result<Self> {
        if config.token.is_empty() {
            bail!("INSTAGRAM_ACCESS_TOKEN is empty: the Graph API source needs an access token");
        }
        if numeric_id(&config.ig_user_id.clone().into()).is_none() {
            bail!("INSTAGRAM_USER_ID must be the numeric id of the app's Instagram professional account");
        }
        let base = Url::parse(config.base_url.trim_end_matches('/'))
            .map_err(|e| anyhow::anyhow!("INSTAGRAM_GRAPH_BASE_URL `{}` is not a URL: {e}", config.base_url))?;
        let quota = WindowQuota::new(config.requests_per_hour, Duration::from_secs(3600), &waiter);
        Ok(Self {
            base,
            client: crate::http::client(Duration::from_secs(60))?,
            quota,
            throttle: Backoff::new(Duration::from_secs(5 * 60), Duration::from_secs(60 * 60)),
            transient: Backoff::new(Duration::from_secs(5), Duration::from_secs(5 * 60)),
            pause: Duration::ZERO,
            newest_seen: HashMap::new(),
            hashtag_ids: HashMap::new(),
            out: out.clone(),
            discovery: out.for_source(DISCOVERY_SOURCE),
            recent: out.for_source(contract::source::INSTAGRAM_HASHTAG_RECENT),
            top: out.for_source(contract::source::INSTAGRAM_HASHTAG_TOP),
            tally: Tally::default(),
            config,
            waiter,
            shutdown,
        })
    }

    async fn poll(&mut self) -> anyhow::Result<()> {
        let usernames = super::usernames(&self.config.usernames);
        let hashtags = super::hashtags(&self.config.hashtags);
        let mut round = 0;
        loop {
            round += 1;
            let started = governor::clock::Clock::now(&self.waiter.clock());
            self.tally = Tally::default();
            for username in &usernames {
                if !self.discover(username).await? {
                    return Ok(());
                }
            }
            for tag in &hashtags {
                if !self.hashtag(tag).await? {
                    return Ok(());
                }
            }
            let t = &self.tally;
            tracing::info!(
                round,
                profiles = t.profiles,
                media = t.media,
                rejected = t.rejected,
                skipped = t.skipped,
                "instagram graph round done"
            );
            if !self.config.schedule.next_round(round, started, &self.waiter, &self.shutdown).await {
                return Ok(());
            }
        }
    }

    /// Business discovery of one account, page by page. `false` on shutdown.
    async fn discover(&mut self, username: &str) -> anyhow::Result<bool> {
        let seen_before = self.newest_seen.get(username).copied();
        let mut cursor: Option<String> = None;
        for page in 1..=self.config.max_pages.max(1) {
            let media = match &cursor {
                None => format!("media{{{MEDIA_FIELDS}}}"),
                Some(after) => format!("media.after({after}){{{MEDIA_FIELDS}}}"),
            };
            let fields = format!("business_discovery.username({username}){{{PROFILE_FIELDS},{media}}}");
            let url = self.url(&self.config.ig_user_id, &[("fields", &fields)]);
            let body = match self.fetch(url, &format!("business discovery of @{username}, page {page}")).await? {
                Fetched::Body(body) => body,
                Fetched::Skip(why) => {
                    tracing::warn!(username, why, "skipped this account for this round");
                    self.tally.skipped += 1;
                    return Ok(true);
                }
                Fetched::Stopped => return Ok(false),
            };
            let parsed = serde_json::from_slice::<Discovery>(&body).map_err(|e| e.to_string()).and_then(|d| {
                let discovered =
                    serde_json::from_str::<Discovered>(d.business_discovery.get()).map_err(|e| e.to_string())?;
                Ok((d.business_discovery, discovered))
            });
            let (profile, discovered) = match parsed {
                Ok(parsed) => parsed,
                Err(why) => {
                    let kept = redacted_prefix(&body, self.config.max_record_bytes);
                    let reason = Reject::Shape(why).of(format!("business discovery of @{username}"));
                    self.discovery.reject(kept, &reason).await?;
                    self.tally.rejected += 1;
                    return Ok(true);
                }
            };
            let owner = match contract::id::from_json(&discovered.id) {
                Ok(id) => contract::id::canonical(id),
                Err(error) => {
                    let reason = Reject::BadId { field: "id", error }.of("business_discovery object");
                    self.discovery.reject(profile.get().as_bytes().to_vec(), &reason).await?;
                    self.tally.rejected += 1;
                    return Ok(true);
                }
            };
            if page == 1 {
                let topic = self.config.topics.profiles.clone();
                self.out.line_read();
                let max = self.config.max_record_bytes;
                let keyed = KeyedBy::WebIdElseId;
                if offer_keyed(&self.discovery, &topic, "Instagram Graph profile", profile, keyed, &[], max)
                    .await?
                    .is_some()
                {
                    self.tally.profiles += 1;
                } else {
                    self.tally.rejected += 1;
                }
            }
            let Some(media) = discovered.media else { break };
            let newest =
                self.emit_media(&media, &self.discovery.clone(), &[(header::INSTAGRAM_OWNER_ID, owner)]).await?;
            if let Some(newest) = newest {
                let entry = self.newest_seen.entry(username.to_owned()).or_insert(newest);
                *entry = (*entry).max(newest);
            }
            let reached_seen = seen_before.is_some_and(|seen| {
                media.data.iter().any(|item| {
                    serde_json::from_str::<Media>(item.get())
                        .ok()
                        .and_then(|m| m.taken_at())
                        .is_some_and(|at| at <= seen)
                })
            });
            match media.after() {
                Some(after) if !reached_seen && !media.data.is_empty() => cursor = Some(after.to_owned()),
                _ => break,
            }
        }
        Ok(true)
    }

    /// One hashtag: its id, then its media edges page by page. `false` on shutdown.
    async fn hashtag(&mut self, tag: &str) -> anyhow::Result<bool> {
        let id = match self.hashtag_ids.get(tag) {
            Some(id) => id.clone(),
            None => {
                let url = self.url("ig_hashtag_search", &[("user_id", &self.config.ig_user_id), ("q", tag)]);
                let body = match self.fetch(url, &format!("hashtag search of #{tag}")).await? {
                    Fetched::Body(body) => body,
                    Fetched::Skip(why) => {
                        tracing::warn!(hashtag = tag, why, "skipped this hashtag for this round");
                        self.tally.skipped += 1;
                        return Ok(true);
                    }
                    Fetched::Stopped => return Ok(false),
                };
                let found = serde_json::from_slice::<HashtagSearch>(&body)
                    .ok()
                    .and_then(|search| search.data.first().and_then(|hashtag| numeric_id(&hashtag.id)));
                let Some(id) = found else {
                    tracing::warn!(hashtag = tag, body = %crate::http::excerpt(&body), "hashtag search found no id: skipped");
                    self.tally.skipped += 1;
                    return Ok(true);
                };
                self.hashtag_ids.insert(tag.to_owned(), id.clone());
                id
            }
        };
        let mut edges = vec![("recent_media", self.recent.clone())];
        if self.config.top_media {
            edges.push(("top_media", self.top.clone()));
        }
        let headers = [(header::INSTAGRAM_HASHTAG, tag.to_owned()), (header::INSTAGRAM_HASHTAG_ID, id.clone())];
        for (edge, emitter) in edges {
            let mut url = self.url(
                &format!("{id}/{edge}"),
                &[("user_id", &self.config.ig_user_id), ("fields", HASHTAG_MEDIA_FIELDS), ("limit", "50")],
            );
            for page in 1..=self.config.max_hashtag_pages.max(1) {
                let body = match self.fetch(url.clone(), &format!("#{tag} {edge}, page {page}")).await? {
                    Fetched::Body(body) => body,
                    Fetched::Skip(why) => {
                        tracing::warn!(
                            hashtag = tag,
                            edge,
                            why,
                            "skipped the rest of this hashtag edge for this round"
                        );
                        self.tally.skipped += 1;
                        break;
                    }
                    Fetched::Stopped => return Ok(false),
                };
                let media = match serde_json::from_slice::<MediaPage>(&body) {
                    Ok(media) => media,
                    Err(e) => {
                        let kept = redacted_prefix(&body, self.config.max_record_bytes);
                        emitter.reject(kept, &Reject::Shape(e.to_string()).of(format!("#{tag} {edge}"))).await?;
                        self.tally.rejected += 1;
                        break;
                    }
                };
                self.emit_media(&media, &emitter, &headers).await?;
                let Some(next) = media.next() else { break };
                match self.next_url(next) {
                    Some(next) => url = next,
                    None => {
                        tracing::warn!(
                            hashtag = tag,
                            edge,
                            "paging.next points away from the Graph API base URL: not followed"
                        );
                        break;
                    }
                }
            }
        }
        Ok(true)
    }

    /// Emits each media object of `page`; returns the newest `timestamp` among them.
    async fn emit_media(
        &mut self,
        page: &MediaPage<'_>,
        emitter: &Emitter,
        headers: &[(&'static str, String)],
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        let mut newest = None;
        for item in &page.data {
            self.out.line_read();
            if let Some(media) = serde_json::from_str::<Media>(item.get()).ok().filter(|m| numeric_id(&m.id).is_some())
            {
                newest = newest.max(media.taken_at());
            }
            let (topic, max) = (&self.config.topics.media, self.config.max_record_bytes);
            if offer(emitter, topic, "Instagram Graph media", item, headers, max).await?.is_some() {
                self.tally.media += 1;
            } else {
                self.tally.rejected += 1;
            }
        }
        Ok(newest)
    }

    /// `{base}/{path}?{params}&access_token=...`
    fn url(&self, path: &str, params: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut().expect("an http(s) base URL").pop_if_empty().extend(path.split('/'));
        url.query_pairs_mut().extend_pairs(params).append_pair("access_token", self.config.token.expose());
        url
    }

    /// A `paging.next` URL, if it points where the token may go (the configured base URL's origin); it gets
    /// the token if it does not carry one.
    fn next_url(&self, next: &str) -> Option<Url> {
        let mut url = Url::parse(next).ok().filter(|url| url.origin() == self.base.origin())?;
        if !url.query_pairs().any(|(name, _)| name == "access_token") {
            url.query_pairs_mut().append_pair("access_token", self.config.token.expose());
        }
        Some(url)
    }

    /// One call, with the waits around it: the usage pause, the quota, and the retries its answer asks for.
    /// `what` names the call in logs (the URL carries the token, so it is never logged).
    async fn fetch(&mut self, url: Url, what: &str) -> anyhow::Result<Fetched> {
        let mut transient_attempts = 0;
        loop {
            let pause = std::mem::take(&mut self.pause);
            if !pause.is_zero() {
                tracing::info!(?pause, what, "Graph API usage is high: pausing before the next call");
                if !self.waiter.wait(pause, "usage_slowdown", &self.shutdown).await {
                    return Ok(Fetched::Stopped);
                }
            }
            if !self.quota.acquire(&self.waiter, &self.shutdown).await {
                return Ok(Fetched::Stopped);
            }
            let (verdict, why) = match self.request(url.clone()).await {
                Err(why) => (Verdict::Transient, why),
                Ok((status, headers, body)) => {
                    if let Some(redirect) = Redirect::of(status, &headers, &url) {
                        bail!(
                            "the Graph API answered {what} with {redirect}, which the scraper does not follow, so \
                             that INSTAGRAM_ACCESS_TOKEN (in the query) reaches no other host: check \
                             INSTAGRAM_GRAPH_BASE_URL"
                        );
                    }
                    self.pause = Usage::from_headers(&headers).pause(self.config.slowdown_percent);
                    if let Some(error) = GraphError::parse(&body) {
                        let why = format!(
                            "HTTP {status}, Graph error {}{}: {} (fbtrace_id {})",
                            error.code,
                            error.error_subcode.map(|s| format!("/{s}")).unwrap_or_default(),
                            error.message,
                            error.fbtrace_id.as_deref().unwrap_or("-")
                        );
                        (error.verdict(), why)
                    } else if status.is_success() {
                        self.throttle.reset();
                        self.transient.reset();
                        return Ok(Fetched::Body(body));
                    } else if status == StatusCode::TOO_MANY_REQUESTS {
                        (Verdict::Throttled, format!("HTTP 429: {}", crate::http::excerpt(&body)))
                    } else if status.is_server_error() {
                        (Verdict::Transient, format!("HTTP {status}: {}", crate::http::excerpt(&body)))
                    } else {
                        (Verdict::SkipItem, format!("HTTP {status}: {}", crate::http::excerpt(&body)))
                    }
                }
            };
            let (delay, reason) = match verdict {
                Verdict::SkipItem => return Ok(Fetched::Skip(why)),
                Verdict::TokenRefused => bail!(
                    "the Graph API refused INSTAGRAM_ACCESS_TOKEN ({why}): it is invalid or expired; renew the token, \
                     then restart the scraper"
                ),
                Verdict::PermissionMissing => bail!(
                    "the Graph API refused a call for lack of permission ({why}): the app needs instagram_basic and \
                     instagram_manage_insights (business discovery) and instagram_basic for hashtag search"
                ),
                Verdict::Throttled => {
                    let delay = self.throttle.next_delay().max(std::mem::take(&mut self.pause));
                    tracing::warn!(what, why, ?delay, "Graph API throttled the app: waiting, then asking again");
                    (delay, "throttled")
                }
                Verdict::Transient => {
                    transient_attempts += 1;
                    if transient_attempts >= TRANSIENT_ATTEMPTS {
                        return Ok(Fetched::Skip(format!("{transient_attempts} attempts failed, the last: {why}")));
                    }
                    let delay = self.transient.next_delay();
                    tracing::warn!(what, why, ?delay, attempt = transient_attempts, "Graph API call failed: retrying");
                    (delay, "transient")
                }
            };
            if !self.waiter.wait(delay, reason, &self.shutdown).await {
                return Ok(Fetched::Stopped);
            }
        }
    }

    /// Sends one GET and reads its body (at most `MAX_BODY_BYTES`). Errors never carry the URL: it holds the
    /// token.
    async fn request(&self, url: Url) -> Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>), String> {
        let response = self.client.get(url).send().await.map_err(|e| e.without_url().to_string())?;
        let (status, headers) = (response.status(), response.headers().clone());
        match crate::http::read_capped(response, MAX_BODY_BYTES).await {
            Ok(Some(body)) => Ok((status, headers, body)),
            Ok(None) => Err(format!("response larger than {MAX_BODY_BYTES} bytes")),
            Err(e) => Err(e.without_url().to_string()),
        }
    }
}
