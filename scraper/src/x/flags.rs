//! The X stream source's flags, and when it runs: whenever X_BEARER_TOKEN is set. It builds one source per
//! stream: one for sample or search, one per partition for sample10.

use std::num::NonZeroU32;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use contract::topic::TWEETS;

use super::backfill;
use super::partitions::Partitions;
use super::rules::{self, Rule};
use super::stream::{self, Endpoint, XStream, XStreamConfig};
use crate::registry::{Choice, Kind, Register, Shared};
use crate::secret::Secret;
use crate::source::{Source, Waiter};

/// The X source's registration, in [`crate::registry::SOURCES`].
pub static X: XSource = XSource;

pub struct XSource;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum XStreamKind {
    /// /2/tweets/sample/stream (1 %)
    Sample,
    /// /2/tweets/sample10/stream (10 %, one connection per partition)
    Sample10,
    /// /2/tweets/search/stream (the filtered stream; rules from X_STREAM_RULES)
    Search,
}

#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "X stream (--source x)")]
pub struct XArgs {
    /// X API bearer token (app-only)
    ///
    /// Enables the `x` source. Never logged; `--help` hides its value.
    #[arg(long, env = "X_BEARER_TOKEN", hide_env_values = true)]
    pub x_bearer_token: Option<Secret>,

    /// X API base URL
    // Hidden: a URL may carry user info (a gateway's basic auth).
    #[arg(long, env = "X_API_BASE_URL", hide_env_values = true, default_value = "https://api.x.com")]
    pub x_api_base_url: String,

    /// Which X stream to read
    #[arg(long, env = "X_STREAM", value_enum, default_value_t = XStreamKind::Sample)]
    pub x_stream: XStreamKind,

    /// The sample10 partitions to read, e.g. `1-4` or `1,3,5` (each 1-20), one connection each [default: 1 with X_STREAM=sample10]
    ///
    /// Each partition is a source of its own (`x.sample10.pN` in logs and metrics). Needs X_STREAM=sample10.
    #[arg(long, env = "X_STREAM_PARTITIONS")]
    pub x_stream_partitions: Option<Partitions>,

    /// One sample10 partition to read (1-20): the older form of X_STREAM_PARTITIONS
    ///
    /// Setting both is refused.
    #[arg(long, env = "X_STREAM_PARTITION", value_parser = clap::value_parser!(u8).range(1..=20))]
    pub x_stream_partition: Option<u8>,

    /// On a reconnect, ask X to resend what it sent while disconnected, up to this many minutes (0-5; 0 for
    /// plans without backfill)
    ///
    /// `backfill_minutes` is the gap rounded up to whole minutes, at most this.
    #[arg(long, env = "X_BACKFILL_MINUTES", default_value_t = 0,
          value_parser = clap::value_parser!(u8).range(0..=i64::from(backfill::MAX_MINUTES)))]
    pub x_backfill_minutes: u8,

    /// tweet.fields to request
    ///
    /// The default fields fill every column of `twitter_data` and `twitter_users`.
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
    ///
    /// Needs X_STREAM=search.
    #[arg(long, env = "X_STREAM_RULES")]
    pub x_stream_rules: Option<String>,

    /// Validate the rules with X (dry_run) and log the difference, without changing them
    #[arg(long, env = "X_STREAM_RULES_DRY_RUN", default_value_t = false)]
    pub x_stream_rules_dry_run: bool,

    /// Reconnect when nothing, not even a heartbeat, arrived for this long
    #[arg(long, env = "X_STALL_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub x_stall_timeout: Duration,

    /// Connection attempts allowed per 15 minutes
    ///
    /// For each stream (each sample10 partition) on its own.
    #[arg(long, env = "X_CONNECTIONS_PER_15_MIN", default_value_t = NonZeroU32::new(50).expect("non-zero"))]
    pub x_connections_per_15_min: NonZeroU32,
}

impl XArgs {
    fn token(&self) -> Option<Secret> {
        self.x_bearer_token.clone().filter(|t| !t.is_empty())
    }

    /// The streams to read: one, or one per sample10 partition.
    fn endpoints(&self) -> anyhow::Result<Vec<Endpoint>> {
        if self.x_stream_partitions.is_some() && self.x_stream != XStreamKind::Sample10 {
            bail!("X_STREAM_PARTITIONS apply to the sample10 stream only: set X_STREAM=sample10");
        }
        Ok(match self.x_stream {
            XStreamKind::Sample => vec![Endpoint::Sample],
            XStreamKind::Search => vec![Endpoint::Search],
            XStreamKind::Sample10 => {
                let partitions = match (&self.x_stream_partitions, self.x_stream_partition) {
                    (Some(_), Some(_)) => {
                        bail!("set X_STREAM_PARTITIONS or X_STREAM_PARTITION (one partition), not both")
                    }
                    (Some(Partitions(list)), None) => list.clone(),
                    (None, one) => vec![one.unwrap_or(1)],
                };
                partitions.into_iter().map(|partition| Endpoint::Sample10 { partition }).collect()
            }
        })
    }
}

impl Register for XSource {
    type Args = XArgs;

    fn kinds(&self) -> &'static [Kind] {
        &[Kind {
            name: "x",
            help: "The X API v2 stream chosen by X_STREAM",
            by_default: "when X_BEARER_TOKEN is set",
            topics: &[&TWEETS],
        }]
    }

    fn choice(&self, _: &Kind, args: &XArgs) -> Choice {
        if args.token().is_some() { Choice::Yes } else { Choice::No }
    }

    fn build(&self, _: &Kind, x: &XArgs, shared: &Shared) -> anyhow::Result<Vec<Box<dyn Source>>> {
        let Some(token) = x.token() else {
            bail!("the x source needs X_BEARER_TOKEN (without it, the replay source runs by default)")
        };
        let rules: Option<Vec<Rule>> = x
            .x_stream_rules
            .as_deref()
            .map(rules::parse_rules_json)
            .transpose()
            .context("X_STREAM_RULES must be a JSON array of {\"value\": ..., \"tag\": ...}")?;
        if rules.is_some() && x.x_stream != XStreamKind::Search {
            bail!("X_STREAM_RULES apply to the filtered stream only: set X_STREAM=search");
        }
        let endpoints = x.endpoints()?;
        let config = XStreamConfig {
            base_url: x.x_api_base_url.clone(),
            token,
            endpoint: endpoints[0],
            tweet_fields: x.x_tweet_fields.clone(),
            expansions: x.x_expansions.clone(),
            user_fields: x.x_user_fields.clone(),
            topic: shared.topics.name(&TWEETS).to_owned(),
            stall_timeout: x.x_stall_timeout,
            max_line_bytes: shared.max_record_bytes,
            connections_per_15_min: x.x_connections_per_15_min,
            rules,
            rules_dry_run: x.x_stream_rules_dry_run,
            backfill_minutes: x.x_backfill_minutes,
            resume_from: Some(shared.kafka.clone()),
        };
        // Each stream its own connection, reconnect state and connection quota.
        Ok(endpoints
            .into_iter()
            .map(|endpoint| {
                let config = XStreamConfig { endpoint, ..config.clone() };
                Box::new(XStream::new(config, Waiter::sleeping())) as Box<dyn Source>
            })
            .collect())
    }
}
