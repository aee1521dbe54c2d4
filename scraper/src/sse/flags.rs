//! The SSE source's flags, and when it runs: whenever SSE_URL is set.

use std::time::Duration;

use anyhow::bail;
use clap::Args;
use contract::topic::MASTODON_STATUSES;

use super::{SseConfig, SseSource};
use crate::registry::{Choice, Kind, Register, Shared};
use crate::secret::{Secret, SecretUrl};
use crate::source::{Source, Waiter};

/// The SSE source's registration, in [`crate::registry::SOURCES`].
pub static SSE: SseRegistration = SseRegistration;

pub struct SseRegistration;

#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Server-sent events (--source sse)")]
pub struct SseArgs {
    /// Server-sent-event stream URLs, comma-separated, e.g. https://mastodon.social/api/v1/streaming/public;
    /// each is a stream of its own (connection, reconnects), its records keyed by its instance (its host)
    ///
    /// Enables the `sse` source. A stream's task is named `sse.mastodon@<instance>` when there are several; its
    /// records carry the `instance` header, the URL's host (with a non-default port), which keys their statuses.
    /// One stream per instance. A `?access_token=` in a URL is never logged, and `--help` hides the value.
    // Hidden like the tokens: Mastodon takes `?access_token=` in the URL.
    #[arg(long, env = "SSE_URL", hide_env_values = true, value_delimiter = ',')]
    pub sse_url: Vec<SecretUrl>,

    /// Bearer token for the SSE streams, if they need one: one for all, or one per URL, comma-separated
    ///
    /// Several tokens go to the URLs of SSE_URL in their order. Never logged.
    #[arg(long, env = "SSE_BEARER_TOKEN", hide_env_values = true, value_delimiter = ',')]
    pub sse_bearer_token: Vec<Secret>,

    /// Event types to keep, comma-separated: Mastodon's new statuses (update), edits (status.update) and
    /// deletions (delete); each record says its type in the `sse_event` header
    ///
    /// Other types are counted and skipped. The inserter upserts `update` and `status.update` and marks the status
    /// deleted on `delete`.
    #[arg(long, env = "SSE_EVENT_TYPES", value_delimiter = ',', default_value = "update,status.update,delete")]
    pub sse_event_types: Vec<String>,

    /// Topic for kept events [default: the Mastodon statuses topic, --topic-mastodon-statuses]
    #[arg(long, env = "SSE_TOPIC")]
    pub sse_topic: Option<String>,

    /// The `source` header of SSE records (the inserter maps `sse*` sources on the Mastodon topic)
    ///
    /// It must start with `sse`: the scraper refuses another name at start-up.
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
        if args.sse_url.is_empty() { Choice::No } else { Choice::Yes }
    }

    fn build(&self, _: &Kind, sse: &SseArgs, shared: &Shared) -> anyhow::Result<Vec<Box<dyn Source>>> {
        let urls: Vec<&str> = sse.sse_url.iter().map(SecretUrl::expose).filter(|url| !url.trim().is_empty()).collect();
        if urls.is_empty() {
            bail!("the sse source needs SSE_URL");
        }
        let tokens: Vec<Option<Secret>> = match sse.sse_bearer_token.as_slice() {
            [] => vec![None; urls.len()],
            [one] => vec![Some(one.clone()).filter(|t| !t.is_empty()); urls.len()],
            many if many.len() == urls.len() => {
                many.iter().map(|t| Some(t.clone()).filter(|t| !t.is_empty())).collect()
            }
            many => bail!(
                "SSE_BEARER_TOKEN has {} tokens for {} SSE_URLs: give one for all, or one per URL",
                many.len(),
                urls.len()
            ),
        };
        if !sse.sse_source_name.starts_with(contract::source::SSE_PREFIX) {
            bail!(
                "SSE_SOURCE_NAME must start with `{}`: the inserter reads Mastodon statuses from sources so named",
                contract::source::SSE_PREFIX
            );
        }
        let mut sources: Vec<Box<dyn Source>> = Vec::new();
        let mut instances: Vec<String> = Vec::new();
        for (url, token) in urls.into_iter().zip(tokens) {
            let instance = instance_of(url)?;
            if instances.contains(&instance) {
                bail!("SSE_URL names instance {instance} twice: one stream per instance");
            }
            instances.push(instance.clone());
            let source = sse.sse_source_name.clone();
            let config = SseConfig {
                name: if sse.sse_url.len() > 1 { format!("{source}@{instance}") } else { source.clone() },
                source,
                instance,
                url: SecretUrl::new(url.trim()),
                token,
                event_types: sse.sse_event_types.clone(),
                topic: sse.sse_topic.clone().unwrap_or_else(|| shared.topics.name(&MASTODON_STATUSES).to_owned()),
                max_event_bytes: shared.max_record_bytes,
                stall_timeout: sse.sse_stall_timeout,
            };
            sources.push(Box::new(SseSource::new(config, Waiter::sleeping())));
        }
        Ok(sources)
    }
}

/// The instance a stream URL serves: its host, and its port when it is not the scheme's default.
pub fn instance_of(url: &str) -> anyhow::Result<String> {
    // The message leaves out the query, which may hold a token.
    let shown = url.split('?').next().unwrap_or_default();
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| anyhow::anyhow!("SSE_URL `{shown}` is not a URL: {e}"))?;
    let Some(host) = parsed.host_str() else { bail!("SSE_URL `{shown}` has no host") };
    Ok(match parsed.port() {
        Some(port) => format!("{}:{port}", host.to_lowercase()),
        None => host.to_lowercase(),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{SseArgs, instance_of};

    #[test]
    fn an_instance_is_the_url_host_with_a_port_that_is_not_the_default() {
        assert_eq!(instance_of("https://Mastodon.Social/api/v1/streaming/public").unwrap(), "mastodon.social");
        assert_eq!(instance_of("https://mastodon.social:443/api/v1/streaming").unwrap(), "mastodon.social");
        assert_eq!(instance_of("http://127.0.0.1:4000/api/v1/streaming").unwrap(), "127.0.0.1:4000");
        assert!(instance_of("not a url").is_err());
    }

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
