//! The Bluesky source's flags, and when it runs: only when `SCRAPER_SOURCES` (`--source`) names it, since it
//! needs the network (the synthetic generator stays the default of a first start).

use std::time::Duration;

use anyhow::bail;
use clap::Args;
use contract::topic::BLUESKY_EVENTS;

use super::{BlueskyConfig, BlueskySource};
use crate::registry::{Choice, Kind, Register, Shared};
use crate::source::{Source, Waiter};

/// The Bluesky source's registration, in [`crate::registry::SOURCES`].
pub static BLUESKY: BlueskyRegistration = BlueskyRegistration;

pub struct BlueskyRegistration;

/// The collections the inserter maps, by the short names the flag also takes.
pub const COLLECTIONS: &[(&str, &str)] = &[
    ("posts", "app.bsky.feed.post"),
    ("likes", "app.bsky.feed.like"),
    ("reposts", "app.bsky.feed.repost"),
    ("follows", "app.bsky.graph.follow"),
];

/// Jetstream takes at most this many `wantedDids`.
const MAX_DIDS: usize = 10_000;

#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Bluesky (--source bluesky)")]
pub struct BlueskyArgs {
    /// Jetstream's subscribe endpoint (no account or token needed); another public instance, or your own
    ///
    /// Public instances: jetstream1.us-east.bsky.network, jetstream2.us-east.bsky.network,
    /// jetstream1.us-west.bsky.network, jetstream2.us-west.bsky.network (each at wss://HOST/subscribe).
    #[arg(long, env = "BLUESKY_URL", default_value = "wss://jetstream2.us-east.bsky.network/subscribe")]
    pub bluesky_url: String,

    /// What to keep, comma-separated: posts, likes, reposts, follows (or their collections' NSIDs); handle
    /// changes and account events always come
    #[arg(long, env = "BLUESKY_COLLECTIONS", value_delimiter = ',', default_value = "posts", value_parser = collection)]
    pub bluesky_collections: Vec<String>,

    /// Keep only these accounts' records, comma-separated DIDs (did:plc:...); empty: everyone's
    #[arg(long, env = "BLUESKY_DIDS", value_delimiter = ',')]
    pub bluesky_dids: Vec<String>,

    /// Reconnect when nothing, not even a ping, arrived for this long
    #[arg(long, env = "BLUESKY_STALL_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub bluesky_stall_timeout: Duration,

    /// Where a first run starts, when the topic holds no cursor of an earlier run: a duration ago (e.g. 2h;
    /// Jetstream keeps about a day) or a Jetstream cursor (microseconds since the epoch) [default: now]
    ///
    /// A restart always resumes from the cursor its last run left in the topic instead.
    #[arg(long, env = "BLUESKY_CURSOR", value_parser = first_cursor)]
    pub bluesky_cursor: Option<FirstCursor>,

    /// A resumed subscription (after a disconnect, or a restart, from the cursor the topic holds) starts this
    /// long before the last event it had: the overlap comes again, and the inserter's upserts absorb it
    #[arg(long, env = "BLUESKY_REWIND", default_value = "5s", value_parser = humantime::parse_duration)]
    pub bluesky_rewind: Duration,
}

/// Where a first run starts: a time ago, or a cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstCursor {
    Ago(Duration),
    At(i64),
}

impl FirstCursor {
    /// The cursor, as of `now_us`.
    pub fn micros(self, now_us: i64) -> i64 {
        match self {
            Self::Ago(ago) => now_us.saturating_sub(i64::try_from(ago.as_micros()).unwrap_or(i64::MAX)).max(0),
            Self::At(cursor) => cursor,
        }
    }
}

fn first_cursor(text: &str) -> Result<FirstCursor, String> {
    let text = text.trim();
    if let Ok(cursor) = text.parse::<i64>() {
        return if cursor > 0 { Ok(FirstCursor::At(cursor)) } else { Err("a cursor is a positive number".into()) };
    }
    humantime::parse_duration(text)
        .map(FirstCursor::Ago)
        .map_err(|e| format!("{e}: a duration ago (2h) or a cursor in microseconds since the epoch"))
}

fn collection(text: &str) -> Result<String, String> {
    let text = text.trim();
    COLLECTIONS
        .iter()
        .find(|(short, nsid)| text.eq_ignore_ascii_case(short) || text == *nsid)
        .map(|(_, nsid)| (*nsid).to_owned())
        .ok_or_else(|| {
            let names: Vec<&str> = COLLECTIONS.iter().map(|(short, _)| *short).collect();
            format!("`{text}` is not a collection the inserter maps: one of {}", names.join(", "))
        })
}

impl Register for BlueskyRegistration {
    type Args = BlueskyArgs;

    fn kinds(&self) -> &'static [Kind] {
        &[Kind {
            name: "bluesky",
            help: "Bluesky's public firehose through Jetstream (BLUESKY_URL): posts, likes, reposts, follows",
            by_default: "only when named",
            topics: &[&BLUESKY_EVENTS],
        }]
    }

    fn choice(&self, _: &Kind, _: &BlueskyArgs) -> Choice {
        Choice::No
    }

    fn build(&self, _: &Kind, args: &BlueskyArgs, shared: &Shared) -> anyhow::Result<Vec<Box<dyn Source>>> {
        let mut collections: Vec<String> = Vec::new();
        for collection in &args.bluesky_collections {
            if !collections.contains(collection) {
                collections.push(collection.clone());
            }
        }
        if collections.is_empty() {
            bail!("BLUESKY_COLLECTIONS is empty: name at least one of posts, likes, reposts, follows");
        }
        let mut dids: Vec<String> = Vec::new();
        for did in args.bluesky_dids.iter().map(|d| d.trim()).filter(|d| !d.is_empty()) {
            contract::atproto::check_did(did).map_err(|e| anyhow::anyhow!("BLUESKY_DIDS: {e}"))?;
            if !dids.iter().any(|known| known == did) {
                dids.push(did.to_owned());
            }
        }
        if dids.len() > MAX_DIDS {
            bail!("BLUESKY_DIDS names {} accounts; Jetstream takes at most {MAX_DIDS}", dids.len());
        }
        if args.bluesky_stall_timeout.is_zero() {
            bail!("BLUESKY_STALL_TIMEOUT must be more than 0");
        }
        let config = BlueskyConfig {
            name: contract::source::BLUESKY_JETSTREAM.to_owned(),
            url: args.bluesky_url.trim().to_owned(),
            collections,
            dids,
            topic: shared.topics.name(&BLUESKY_EVENTS).to_owned(),
            max_event_bytes: shared.max_record_bytes,
            stall_timeout: args.bluesky_stall_timeout,
            rewind: args.bluesky_rewind,
            resume_from: Some(shared.kafka.clone()),
            first_cursor: args.bluesky_cursor.map(|first| first.micros(chrono::Utc::now().timestamp_micros())),
        };
        let source = BlueskySource::new(config, Waiter::sleeping());
        // The URL is checked now, before anything connects.
        source.subscribe_url(None)?;
        Ok(vec![Box::new(source)])
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{FirstCursor, collection, first_cursor};

    #[test]
    fn a_first_cursor_is_a_time_ago_or_a_cursor() {
        assert_eq!(first_cursor("2h"), Ok(FirstCursor::Ago(Duration::from_secs(7200))));
        assert_eq!(first_cursor("1731994420800952"), Ok(FirstCursor::At(1731994420800952)));
        assert_eq!(FirstCursor::Ago(Duration::from_secs(1)).micros(5_000_000), 4_000_000);
        assert!(first_cursor("-5").is_err());
        assert!(first_cursor("yesterday").unwrap_err().contains("a duration ago"));
    }

    #[test]
    fn collections_are_named_short_or_by_nsid_and_others_are_refused() {
        assert_eq!(collection("posts").unwrap(), "app.bsky.feed.post");
        assert_eq!(collection(" Likes ").unwrap(), "app.bsky.feed.like");
        assert_eq!(collection("app.bsky.graph.follow").unwrap(), "app.bsky.graph.follow");
        assert!(collection("app.bsky.actor.profile").unwrap_err().contains("posts, likes, reposts, follows"));
    }
}
