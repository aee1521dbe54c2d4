//! The SSE source's flags, and when it runs: whenever SSE_URL is set.

use std::time::Duration;

use anyhow::bail;
use clap::Args;
use contract::topic::MASTODON_STATUSES;

use super::{SseConfig, SseSource};
use crate::registry::{Choice, Kind, Register, Shared};
use crate::secret::Secret;
use crate::source::{Source, Waiter};

/// The SSE source's registration, in [`crate::registry::SOURCES`].
pub static SSE: SseRegistration = SseRegistration;

pub struct SseRegistration;

#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Server-sent events (--source sse)")]
pub struct SseArgs {
    /// Server-sent-event stream URL, e.g. https://mastodon.social/api/v1/streaming/public
    #[arg(long, env = "SSE_URL")]
    pub sse_url: Option<String>,

    /// Bearer token for the SSE stream, if it needs one
    #[arg(long, env = "SSE_BEARER_TOKEN", hide_env_values = true)]
    pub sse_bearer_token: Option<Secret>,

    /// Event types to keep, comma-separated: Mastodon's new statuses (update), edits (status.update) and
    /// deletions (delete); each record says its type in the `sse_event` header
    #[arg(long, env = "SSE_EVENT_TYPES", value_delimiter = ',', default_value = "update,status.update,delete")]
    pub sse_event_types: Vec<String>,

    /// Topic for kept events [default: the Mastodon statuses topic, --topic-mastodon-statuses]
    #[arg(long, env = "SSE_TOPIC")]
    pub sse_topic: Option<String>,

    /// The `source` header of SSE records (the inserter maps `sse*` sources on the Mastodon topic)
    #[arg(long, env = "SSE_SOURCE_NAME", default_value = contract::source::SSE_DEFAULT)]
    pub sse_source_name: String,

    /// Reconnect when nothing, not even a comment, arrived for this long
    #[arg(long, env = "SSE_STALL_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub sse_stall_timeout: Duration,
}

impl Register for SseRegistration {
    type Args = SseArgs;

    fn kinds(&self) -> &'static [Kind] {
        &[Kind {
            name: "sse",
            help: "A server-sent-event stream (SSE_URL), e.g. Mastodon's public timeline",
            by_default: "when SSE_URL is set",
            topics: &[&MASTODON_STATUSES],
        }]
    }

    fn choice(&self, _: &Kind, args: &SseArgs) -> Choice {
        if args.sse_url.is_some() { Choice::Yes } else { Choice::No }
    }

    fn build(&self, _: &Kind, sse: &SseArgs, shared: &Shared) -> anyhow::Result<Vec<Box<dyn Source>>> {
        let Some(url) = sse.sse_url.clone() else { bail!("the sse source needs SSE_URL") };
        if !sse.sse_source_name.starts_with(contract::source::SSE_PREFIX) {
            bail!(
                "SSE_SOURCE_NAME must start with `{}`: the inserter reads Mastodon statuses from sources so named",
                contract::source::SSE_PREFIX
            );
        }
        let config = SseConfig {
            name: sse.sse_source_name.clone(),
            url,
            token: sse.sse_bearer_token.clone().filter(|t| !t.is_empty()),
            event_types: sse.sse_event_types.clone(),
            topic: sse.sse_topic.clone().unwrap_or_else(|| shared.topics.name(&MASTODON_STATUSES).to_owned()),
            max_event_bytes: shared.max_record_bytes,
            stall_timeout: sse.sse_stall_timeout,
        };
        Ok(vec![Box::new(SseSource::new(config, Waiter::sleeping()))])
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::SseArgs;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sse: SseArgs,
    }

    #[test]
    fn the_kept_event_types_are_the_contracts_by_default() {
        let cli = Cli::try_parse_from(["cli"]).unwrap();
        assert_eq!(cli.sse.sse_event_types, contract::event::MASTODON_KEPT);
    }
}
