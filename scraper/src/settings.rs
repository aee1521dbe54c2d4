//! The scraper's configuration: flags, each also read from the environment (and `.env`), validated into the
//! sources to run before anything connects.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, ValueEnum};
use common::telemetry::LogFormat;

use crate::instagram::graph::{GraphConfig, GraphSource};
use crate::instagram::schedule::Schedule;
use crate::instagram::web::{self, WebConfig, WebProfileSource};
use crate::instagram::{self, InstagramTopics};
use crate::replay::{Replay, ReplayConfig};
use crate::secret::Secret;
use crate::source::{Source, Waiter};
use crate::sse::{SseConfig, SseSource};
use crate::topics::Topics;
use crate::x::rules::{self, Rule};
use crate::x::stream::{self, Endpoint, XStream, XStreamConfig};

#[derive(Clone, Debug, Parser)]
#[command(name = "scraper", version, about = "Scrapes social-media sources into Kafka.")]
pub struct Settings {
    /// Kafka bootstrap servers; other librdkafka properties pass through as KAFKA_<PROPERTY> variables
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", default_value = "localhost:9092")]
    pub bootstrap_servers: String,

    /// Partitions for topics the scraper creates (existing topics are left as they are)
    #[arg(long, env = "TOPIC_PARTITIONS", default_value_t = 6, value_parser = clap::value_parser!(i32).range(1..))]
    pub partitions: i32,

    #[command(flatten)]
    pub topics: Topics,

    /// Sources to run, comma-separated [default: x when X_BEARER_TOKEN is set, else replay; plus sse when
    /// SSE_URL is set; plus instagram-graph when INSTAGRAM_ACCESS_TOKEN and accounts or hashtags are set, else
    /// instagram-web when accounts are set]
    #[arg(long = "source", env = "SCRAPER_SOURCES", value_enum, value_delimiter = ',')]
    pub sources: Vec<SourceKind>,

    #[command(flatten)]
    pub x: XArgs,

    #[command(flatten)]
    pub sse: SseArgs,

    #[command(flatten)]
    pub replay: ReplayArgs,

    #[command(flatten)]
    pub instagram: InstagramArgs,

    /// Longest line or event accepted, in bytes; a longer one goes to the rejects topic (its first KiB). The
    /// default leaves room for the key and headers under Kafka's default 1 MB message limit
    #[arg(long, env = "MAX_RECORD_BYTES", default_value_t = 900_000)]
    pub max_record_bytes: usize,

    /// Memory for records between reading and the broker's acknowledgement (each counts twice its size plus
    /// 512 bytes: our copy and librdkafka's); when spent, reading waits
    #[arg(long, env = "QUEUE_BYTES", default_value_t = 64 << 20, value_parser = clap::value_parser!(u32).range(1 << 20..))]
    pub queue_bytes: u32,

    /// After SIGTERM, how long the broker gets to acknowledge what was read before the scraper gives up
    #[arg(long, env = "FLUSH_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub flush_timeout: Duration,

    /// Where to serve /metrics and /healthz
    #[arg(long, env = "SCRAPER_METRICS_ADDR", default_value = "0.0.0.0:9101")]
    pub metrics_addr: SocketAddr,

    /// How often to log a progress line
    #[arg(long, env = "PROGRESS_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub progress_interval: Duration,

    /// Log format
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SourceKind {
    /// The X API v2 stream chosen by X_STREAM
    X,
    /// A server-sent-event stream (SSE_URL), e.g. Mastodon's public timeline
    Sse,
    /// An NDJSON file of X stream lines (REPLAY_FILE), or the synthetic generator
    Replay,
    /// Instagram's Graph API: business discovery of INSTAGRAM_USERNAMES, media of INSTAGRAM_HASHTAGS
    InstagramGraph,
    /// Instagram's web profile endpoint for INSTAGRAM_USERNAMES (no credentials, tight limits)
    InstagramWeb,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum XStreamKind {
    /// /2/tweets/sample/stream (1 %)
    Sample,
    /// /2/tweets/sample10/stream (10 %, one partition per connection)
    Sample10,
    /// /2/tweets/search/stream (the filtered stream; rules from X_STREAM_RULES)
    Search,
}

#[derive(Clone, Debug, Args)]
pub struct XArgs {
    /// X API bearer token (app-only)
    #[arg(long, env = "X_BEARER_TOKEN", hide_env_values = true)]
    pub x_bearer_token: Option<Secret>,

    /// X API base URL
    #[arg(long, env = "X_API_BASE_URL", default_value = "https://api.x.com")]
    pub x_api_base_url: String,

    /// Which X stream to read
    #[arg(long, env = "X_STREAM", value_enum, default_value_t = XStreamKind::Sample)]
    pub x_stream: XStreamKind,

    /// The sample10 partition to read (1-20)
    #[arg(long, env = "X_STREAM_PARTITION", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=20))]
    pub x_stream_partition: u8,

    /// tweet.fields to request
    #[arg(long, env = "X_TWEET_FIELDS", default_value = stream::DEFAULT_TWEET_FIELDS)]
    pub x_tweet_fields: String,

    /// expansions to request
    #[arg(long, env = "X_EXPANSIONS", default_value = stream::DEFAULT_EXPANSIONS)]
    pub x_expansions: String,

    /// user.fields to request
    #[arg(long, env = "X_USER_FIELDS", default_value = stream::DEFAULT_USER_FIELDS)]
    pub x_user_fields: String,

    /// Filtered-stream rules as X's JSON, e.g. '[{"value":"cat has:images","tag":"cats"}]'; the stream's rules
    /// are made exactly these before connecting (unset: the rules are left as they are)
    #[arg(long, env = "X_STREAM_RULES")]
    pub x_stream_rules: Option<String>,

    /// Validate the rules with X (dry_run) and log the difference, without changing them
    #[arg(long, env = "X_STREAM_RULES_DRY_RUN", default_value_t = false)]
    pub x_stream_rules_dry_run: bool,

    /// Reconnect when nothing, not even a heartbeat, arrived for this long
    #[arg(long, env = "X_STALL_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub x_stall_timeout: Duration,

    /// Connection attempts allowed per 15 minutes
    #[arg(long, env = "X_CONNECTIONS_PER_15_MIN", default_value_t = NonZeroU32::new(50).expect("non-zero"))]
    pub x_connections_per_15_min: NonZeroU32,
}

#[derive(Clone, Debug, Args)]
pub struct SseArgs {
    /// Server-sent-event stream URL, e.g. https://mastodon.social/api/v1/streaming/public
    #[arg(long, env = "SSE_URL")]
    pub sse_url: Option<String>,

    /// Bearer token for the SSE stream, if it needs one
    #[arg(long, env = "SSE_BEARER_TOKEN", hide_env_values = true)]
    pub sse_bearer_token: Option<Secret>,

    /// Event types to keep, comma-separated (Mastodon: update)
    #[arg(long, env = "SSE_EVENT_TYPES", value_delimiter = ',', default_value = "update")]
    pub sse_event_types: Vec<String>,

    /// Topic for kept events [default: the Mastodon statuses topic]
    #[arg(long, env = "SSE_TOPIC")]
    pub sse_topic: Option<String>,

    /// The `source` header of SSE records (the inserter maps `sse*` sources on the Mastodon topic)
    #[arg(long, env = "SSE_SOURCE_NAME", default_value = "sse.mastodon")]
    pub sse_source_name: String,

    /// Reconnect when nothing, not even a comment, arrived for this long
    #[arg(long, env = "SSE_STALL_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub sse_stall_timeout: Duration,
}

#[derive(Clone, Debug, Args)]
pub struct ReplayArgs {
    /// NDJSON file of X stream lines to replay (unset: the synthetic generator)
    #[arg(long, env = "REPLAY_FILE")]
    pub replay_file: Option<PathBuf>,

    /// Records a second; 0 = as fast as the broker takes them
    #[arg(long, env = "REPLAY_RATE", default_value_t = 20)]
    pub replay_rate: u32,

    /// Stop after this many records (unset: the whole file, or forever for the generator)
    #[arg(long, env = "REPLAY_COUNT")]
    pub replay_count: Option<u64>,

    /// Seed of the synthetic generator: the same seed gives the same posts
    #[arg(long, env = "REPLAY_SEED", default_value_t = 1)]
    pub replay_seed: u64,
}

#[derive(Clone, Debug, Args)]
pub struct InstagramArgs {
    /// Instagram accounts to poll, comma-separated (a leading @ is fine)
    #[arg(long, env = "INSTAGRAM_USERNAMES", value_delimiter = ',')]
    pub instagram_usernames: Vec<String>,

    /// Hashtags to poll through the Graph API, comma-separated (a leading # is fine)
    #[arg(long, env = "INSTAGRAM_HASHTAGS", value_delimiter = ',')]
    pub instagram_hashtags: Vec<String>,

    /// How often to poll every account and hashtag (from the start of one round to the next)
    #[arg(long, env = "INSTAGRAM_POLL_INTERVAL", default_value = "15m", value_parser = humantime::parse_duration)]
    pub instagram_poll_interval: Duration,

    /// Stop the Instagram sources after this many rounds (unset: poll until stopped)
    #[arg(long, env = "INSTAGRAM_ROUNDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub instagram_rounds: Option<u64>,

    /// Graph API access token (a long-lived user token with instagram_basic)
    #[arg(long, env = "INSTAGRAM_ACCESS_TOKEN", hide_env_values = true)]
    pub instagram_access_token: Option<Secret>,

    /// The numeric id of the app's own Instagram professional account, which the Graph API asks through
    #[arg(long, env = "INSTAGRAM_USER_ID")]
    pub instagram_user_id: Option<String>,

    /// Graph API base URL, with its version
    #[arg(long, env = "INSTAGRAM_GRAPH_BASE_URL", default_value = "https://graph.facebook.com/v25.0")]
    pub instagram_graph_base_url: String,

    /// Business-discovery media pages (25 posts each) per account and round; paging also stops at posts
    /// already seen
    #[arg(long, env = "INSTAGRAM_GRAPH_MAX_PAGES", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub instagram_graph_max_pages: u32,

    /// Pages (50 posts each) per hashtag edge and round
    #[arg(long, env = "INSTAGRAM_GRAPH_MAX_HASHTAG_PAGES", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub instagram_graph_max_hashtag_pages: u32,

    /// Also read each hashtag's top_media, besides recent_media
    #[arg(long, env = "INSTAGRAM_GRAPH_TOP_MEDIA", default_value_t = false)]
    pub instagram_graph_top_media: bool,

    /// Graph API calls allowed per hour (Meta allows an app 200 per user and hour)
    #[arg(long, env = "INSTAGRAM_GRAPH_REQUESTS_PER_HOUR", default_value_t = NonZeroU32::new(200).expect("non-zero"))]
    pub instagram_graph_requests_per_hour: NonZeroU32,

    /// Usage (in %, from the X-App-Usage and X-Business-Use-Case-Usage headers) from which calls slow down
    #[arg(long, env = "INSTAGRAM_GRAPH_SLOWDOWN_PERCENT", default_value_t = 80.0)]
    pub instagram_graph_slowdown_percent: f64,

    /// Web profile endpoint base URL
    #[arg(long, env = "INSTAGRAM_WEB_BASE_URL", default_value = web::DEFAULT_BASE_URL)]
    pub instagram_web_base_url: String,

    /// The x-ig-app-id header of web requests (Instagram web's public app id)
    #[arg(long, env = "INSTAGRAM_WEB_APP_ID", default_value = web::DEFAULT_APP_ID)]
    pub instagram_web_app_id: String,

    /// Web profile requests allowed in any INSTAGRAM_WEB_WINDOW
    #[arg(long, env = "INSTAGRAM_WEB_REQUESTS_PER_WINDOW", default_value_t = NonZeroU32::new(web::DEFAULT_REQUESTS_PER_WINDOW).expect("non-zero"))]
    pub instagram_web_requests_per_window: NonZeroU32,

    /// The sliding window of the web quota
    #[arg(long, env = "INSTAGRAM_WEB_WINDOW", default_value = "11m", value_parser = humantime::parse_duration)]
    pub instagram_web_window: Duration,
}

impl Settings {
    /// The sources to run, validated: a source that is asked for but not configured is an error here, before
    /// anything connects.
    pub fn sources(&self) -> anyhow::Result<Vec<Box<dyn Source>>> {
        let token = self.x.x_bearer_token.clone().filter(|t| !t.is_empty());
        let kinds = if self.sources.is_empty() {
            let mut kinds = vec![if token.is_some() { SourceKind::X } else { SourceKind::Replay }];
            if self.sse.sse_url.is_some() {
                kinds.push(SourceKind::Sse);
            }
            let ig = &self.instagram;
            let ig_token = ig.instagram_access_token.as_ref().is_some_and(|t| !t.is_empty());
            if ig_token && !(ig.instagram_usernames.is_empty() && ig.instagram_hashtags.is_empty()) {
                kinds.push(SourceKind::InstagramGraph);
            } else if !ig.instagram_usernames.is_empty() {
                kinds.push(SourceKind::InstagramWeb);
            }
            kinds
        } else {
            self.sources.clone()
        };
        let mut sources: Vec<Box<dyn Source>> = Vec::new();
        for kind in kinds {
            sources.push(match kind {
                SourceKind::X => {
                    let Some(token) = token.clone() else {
                        bail!("the x source needs X_BEARER_TOKEN (without it, the replay source runs by default)")
                    };
                    Box::new(XStream::new(self.x_config(token)?, Waiter::sleeping()))
                }
                SourceKind::Sse => Box::new(SseSource::new(self.sse_config()?, Waiter::sleeping())),
                SourceKind::Replay => Box::new(Replay::new(self.replay_config())),
                SourceKind::InstagramGraph => Box::new(GraphSource::new(self.graph_config()?, Waiter::sleeping())),
                SourceKind::InstagramWeb => Box::new(WebProfileSource::new(self.web_config()?, Waiter::sleeping())),
            });
        }
        Ok(sources)
    }

    fn x_config(&self, token: Secret) -> anyhow::Result<XStreamConfig> {
        let x = &self.x;
        let rules: Option<Vec<Rule>> = x
            .x_stream_rules
            .as_deref()
            .map(rules::parse_rules_json)
            .transpose()
            .context("X_STREAM_RULES must be a JSON array of {\"value\": ..., \"tag\": ...}")?;
        if rules.is_some() && x.x_stream != XStreamKind::Search {
            bail!("X_STREAM_RULES apply to the filtered stream only: set X_STREAM=search");
        }
        Ok(XStreamConfig {
            base_url: x.x_api_base_url.clone(),
            token,
            endpoint: match x.x_stream {
                XStreamKind::Sample => Endpoint::Sample,
                XStreamKind::Sample10 => Endpoint::Sample10 { partition: x.x_stream_partition },
                XStreamKind::Search => Endpoint::Search,
            },
            tweet_fields: x.x_tweet_fields.clone(),
            expansions: x.x_expansions.clone(),
            user_fields: x.x_user_fields.clone(),
            topic: self.topics.tweets.clone(),
            stall_timeout: x.x_stall_timeout,
            max_line_bytes: self.max_record_bytes,
            connections_per_15_min: x.x_connections_per_15_min,
            rules,
            rules_dry_run: x.x_stream_rules_dry_run,
        })
    }

    fn sse_config(&self) -> anyhow::Result<SseConfig> {
        let sse = &self.sse;
        let Some(url) = sse.sse_url.clone() else { bail!("the sse source needs SSE_URL") };
        Ok(SseConfig {
            name: sse.sse_source_name.clone(),
            url,
            token: sse.sse_bearer_token.clone().filter(|t| !t.is_empty()),
            event_types: sse.sse_event_types.clone(),
            topic: sse.sse_topic.clone().unwrap_or_else(|| self.topics.mastodon_statuses.clone()),
            max_event_bytes: self.max_record_bytes,
            stall_timeout: sse.sse_stall_timeout,
        })
    }

    fn instagram_topics(&self) -> InstagramTopics {
        InstagramTopics { profiles: self.topics.instagram_profiles.clone(), media: self.topics.instagram_media.clone() }
    }

    fn instagram_schedule(&self) -> Schedule {
        Schedule { interval: self.instagram.instagram_poll_interval, rounds: self.instagram.instagram_rounds }
    }

    fn graph_config(&self) -> anyhow::Result<GraphConfig> {
        let ig = &self.instagram;
        let Some(token) = ig.instagram_access_token.clone().filter(|t| !t.is_empty()) else {
            bail!("the instagram-graph source needs INSTAGRAM_ACCESS_TOKEN (without one, use instagram-web)")
        };
        let Some(ig_user_id) = ig.instagram_user_id.clone().filter(|id| !id.trim().is_empty()) else {
            bail!("the instagram-graph source needs INSTAGRAM_USER_ID: the app's own Instagram professional account id")
        };
        let (usernames, hashtags) =
            (instagram::usernames(&ig.instagram_usernames), instagram::hashtags(&ig.instagram_hashtags));
        if usernames.is_empty() && hashtags.is_empty() {
            bail!("the instagram-graph source needs INSTAGRAM_USERNAMES or INSTAGRAM_HASHTAGS");
        }
        if !(0.0..=100.0).contains(&ig.instagram_graph_slowdown_percent) {
            bail!("INSTAGRAM_GRAPH_SLOWDOWN_PERCENT must be between 0 and 100");
        }
        Ok(GraphConfig {
            base_url: ig.instagram_graph_base_url.clone(),
            token,
            ig_user_id: ig_user_id.trim().to_owned(),
            usernames,
            hashtags,
            top_media: ig.instagram_graph_top_media,
            max_pages: ig.instagram_graph_max_pages,
            max_hashtag_pages: ig.instagram_graph_max_hashtag_pages,
            schedule: self.instagram_schedule(),
            requests_per_hour: ig.instagram_graph_requests_per_hour,
            slowdown_percent: ig.instagram_graph_slowdown_percent,
            topics: self.instagram_topics(),
            max_record_bytes: self.max_record_bytes,
        })
    }

    fn web_config(&self) -> anyhow::Result<WebConfig> {
        let ig = &self.instagram;
        let usernames = instagram::usernames(&ig.instagram_usernames);
        if usernames.is_empty() {
            bail!("the instagram-web source needs INSTAGRAM_USERNAMES");
        }
        if !ig.instagram_hashtags.is_empty() {
            tracing::warn!(
                "INSTAGRAM_HASHTAGS are read by the instagram-graph source only: the web source ignores them"
            );
        }
        Ok(WebConfig {
            base_url: ig.instagram_web_base_url.clone(),
            app_id: ig.instagram_web_app_id.clone(),
            usernames,
            schedule: self.instagram_schedule(),
            requests_per_window: ig.instagram_web_requests_per_window,
            window: ig.instagram_web_window,
            topics: self.instagram_topics(),
            max_record_bytes: self.max_record_bytes,
        })
    }

    fn replay_config(&self) -> ReplayConfig {
        ReplayConfig {
            file: self.replay.replay_file.clone(),
            rate: NonZeroU32::new(self.replay.replay_rate),
            count: self.replay.replay_count,
            seed: self.replay.replay_seed,
            topic: self.topics.tweets.clone(),
            max_line_bytes: self.max_record_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Settings;

    fn source_names(args: &[&str]) -> anyhow::Result<Vec<String>> {
        let settings = Settings::try_parse_from(std::iter::once("scraper").chain(args.iter().copied()))?;
        Ok(settings.sources()?.iter().map(|source| source.name()).collect())
    }

    #[test]
    fn instagram_accounts_add_the_web_source_and_a_token_makes_it_the_graph_source() {
        let accounts = ["--instagram-usernames", "@nasa,natgeo"];
        assert_eq!(source_names(&accounts).unwrap(), ["replay", "instagram.web.profile"]);
        let graph =
            [&accounts[..], &["--instagram-access-token", "EAAG", "--instagram-user-id", "17841400000000001"]].concat();
        assert_eq!(source_names(&graph).unwrap(), ["replay", "instagram.graph"]);
        let hashtags_only =
            ["--instagram-hashtags", "coffee", "--instagram-access-token", "EAAG", "--instagram-user-id", "1"];
        assert_eq!(source_names(&hashtags_only).unwrap(), ["replay", "instagram.graph"]);
    }

    #[test]
    fn an_instagram_source_asked_for_without_what_it_needs_says_what_is_missing() {
        let error = source_names(&["--source", "instagram-graph", "--instagram-usernames", "nasa"]).unwrap_err();
        assert!(error.to_string().contains("INSTAGRAM_ACCESS_TOKEN"), "{error}");
        let error = source_names(&[
            "--source",
            "instagram-graph",
            "--instagram-access-token",
            "EAAG",
            "--instagram-usernames",
            "nasa",
        ])
        .unwrap_err();
        assert!(error.to_string().contains("INSTAGRAM_USER_ID"), "{error}");
        let error = source_names(&["--source", "instagram-web"]).unwrap_err();
        assert!(error.to_string().contains("INSTAGRAM_USERNAMES"), "{error}");
        let error = source_names(&["--source", "instagram-web", "--instagram-usernames", "bad)name"]).unwrap_err();
        assert!(error.to_string().contains("INSTAGRAM_USERNAMES"), "a list of only invalid names is none: {error}");
    }
}
