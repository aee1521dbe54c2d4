//! The X stream source's flags, and when it runs: whenever X_BEARER_TOKEN is set.

use std::num::NonZeroU32;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use contract::topic::TWEETS;

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
    /// /2/tweets/sample10/stream (10 %, one partition per connection)
    Sample10,
    /// /2/tweets/search/stream (the filtered stream; rules from X_STREAM_RULES)
    Search,
}

#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "X stream (--source x)")]
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

impl XArgs {
    fn token(&self) -> Option<Secret> {
        self.x_bearer_token.clone().filter(|t| !t.is_empty())
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
        let config = XStreamConfig {
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
            topic: shared.topics.name(&TWEETS).to_owned(),
            stall_timeout: x.x_stall_timeout,
            max_line_bytes: shared.max_record_bytes,
            connections_per_15_min: x.x_connections_per_15_min,
            rules,
            rules_dry_run: x.x_stream_rules_dry_run,
        };
        Ok(vec![Box::new(XStream::new(config, Waiter::sleeping()))])
    }
}
