//! The Instagram sources' flags, which the Graph API and the web sources share in part, and when each runs:
//! the Graph source when it has a token and something to poll, else the web source when accounts are set.

use std::num::NonZeroU32;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use contract::topic::{INSTAGRAM_MEDIA, INSTAGRAM_PROFILES};

use super::graph::{GraphConfig, GraphSource};
use super::schedule::Schedule;
use super::web::{self, WebConfig, WebProfileSource};
use super::{InstagramTopics, hashtags, usernames};
use crate::registry::{Choice, Kind, Register, Shared};
use crate::secret::Secret;
use crate::source::{Source, Waiter};

/// The Instagram sources' registration, in [`crate::registry::SOURCES`].
pub static INSTAGRAM: InstagramRegistration = InstagramRegistration;

pub struct InstagramRegistration;

const GRAPH: &str = "instagram-graph";
const WEB: &str = "instagram-web";

#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Instagram (--source instagram-graph, instagram-web)")]
pub struct InstagramArgs {
    /// Instagram accounts to poll, comma-separated (a leading @ is fine)
    ///
    /// Names outside Instagram's `A-Za-z0-9._`, 30 characters at most, are logged and left out.
    #[arg(long, env = "INSTAGRAM_USERNAMES", value_delimiter = ',')]
    pub instagram_usernames: Vec<String>,

    /// Hashtags to poll through the Graph API, comma-separated (a leading # is fine)
    #[arg(long, env = "INSTAGRAM_HASHTAGS", value_delimiter = ',')]
    pub instagram_hashtags: Vec<String>,

    /// How often to poll every account and hashtag (from the start of one round to the next)
    #[arg(long, env = "INSTAGRAM_POLL_INTERVAL", default_value = "15m", value_parser = humantime::parse_duration)]
    pub instagram_poll_interval: Duration,

    /// Stop the Instagram sources after this many rounds (unset: poll until stopped)
    ///
    /// E.g. `1` under cron.
    #[arg(long, env = "INSTAGRAM_ROUNDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub instagram_rounds: Option<u64>,

    /// Graph API access token (a long-lived user token with instagram_basic)
    ///
    /// Business discovery also needs instagram_manage_insights. Never logged; URLs that carry it are never logged.
    #[arg(long, env = "INSTAGRAM_ACCESS_TOKEN", hide_env_values = true)]
    pub instagram_access_token: Option<Secret>,

    /// The numeric id of the app's own Instagram professional account, which the Graph API asks through
    #[arg(long, env = "INSTAGRAM_USER_ID")]
    pub instagram_user_id: Option<String>,

    /// Graph API base URL, with its version
    // Hidden, as are the other URLs: a URL may carry user info (a gateway's basic auth).
    #[arg(
        long,
        env = "INSTAGRAM_GRAPH_BASE_URL",
        hide_env_values = true,
        default_value = "https://graph.facebook.com/v25.0"
    )]
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
    ///
    /// From this usage on, each call waits first: 0 at the threshold, growing to 10 min at 100 %.
    #[arg(long, env = "INSTAGRAM_GRAPH_SLOWDOWN_PERCENT", default_value_t = 80.0)]
    pub instagram_graph_slowdown_percent: f64,

    /// Web profile endpoint base URL
    #[arg(long, env = "INSTAGRAM_WEB_BASE_URL", hide_env_values = true, default_value = web::DEFAULT_BASE_URL)]
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

impl InstagramArgs {
    fn token(&self) -> Option<Secret> {
        self.instagram_access_token.clone().filter(|t| !t.is_empty())
    }

    fn schedule(&self) -> Schedule {
        Schedule { interval: self.instagram_poll_interval, rounds: self.instagram_rounds }
    }
}

fn topics(shared: &Shared) -> InstagramTopics {
    InstagramTopics {
        profiles: shared.topics.name(&INSTAGRAM_PROFILES).to_owned(),
        media: shared.topics.name(&INSTAGRAM_MEDIA).to_owned(),
    }
}

impl Register for InstagramRegistration {
    type Args = InstagramArgs;

    fn kinds(&self) -> &'static [Kind] {
        &[
            Kind {
                name: GRAPH,
                help: "Instagram's Graph API: business discovery of INSTAGRAM_USERNAMES, media of INSTAGRAM_HASHTAGS",
                by_default: "when INSTAGRAM_ACCESS_TOKEN and accounts or hashtags are set",
                topics: &[&INSTAGRAM_PROFILES, &INSTAGRAM_MEDIA],
            },
            Kind {
                name: WEB,
                help: "Instagram's web profile endpoint for INSTAGRAM_USERNAMES (no credentials, tight limits)",
                by_default: "when accounts are set and the Graph source does not run",
                topics: &[&INSTAGRAM_PROFILES, &INSTAGRAM_MEDIA],
            },
        ]
    }

    fn choice(&self, kind: &Kind, ig: &InstagramArgs) -> Choice {
        let accounts = !ig.instagram_usernames.is_empty();
        match kind.name {
            GRAPH if ig.token().is_some() && (accounts || !ig.instagram_hashtags.is_empty()) => Choice::Yes,
            WEB if accounts => Choice::UnlessTopicsTaken,
            _ => Choice::No,
        }
    }

    fn build(&self, kind: &Kind, ig: &InstagramArgs, shared: &Shared) -> anyhow::Result<Vec<Box<dyn Source>>> {
        let source: Box<dyn Source> = match kind.name {
            GRAPH => Box::new(GraphSource::new(graph_config(ig, shared)?, Waiter::sleeping())),
            _ => Box::new(WebProfileSource::new(web_config(ig, shared)?, Waiter::sleeping())),
        };
        Ok(vec![source])
    }
}

fn graph_config(ig: &InstagramArgs, shared: &Shared) -> anyhow::Result<GraphConfig> {
    let Some(token) = ig.token() else {
        bail!("the instagram-graph source needs INSTAGRAM_ACCESS_TOKEN (without one, use instagram-web)")
    };
    let Some(ig_user_id) = ig.instagram_user_id.clone().filter(|id| !id.trim().is_empty()) else {
        bail!("the instagram-graph source needs INSTAGRAM_USER_ID: the app's own Instagram professional account id")
    };
    let (usernames, hashtags) = (usernames(&ig.instagram_usernames), hashtags(&ig.instagram_hashtags));
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
        schedule: ig.schedule(),
        requests_per_hour: ig.instagram_graph_requests_per_hour,
        slowdown_percent: ig.instagram_graph_slowdown_percent,
        topics: topics(shared),
        max_record_bytes: shared.max_record_bytes,
    })
}

fn web_config(ig: &InstagramArgs, shared: &Shared) -> anyhow::Result<WebConfig> {
    let usernames = usernames(&ig.instagram_usernames);
    if usernames.is_empty() {
        bail!("the instagram-web source needs INSTAGRAM_USERNAMES");
    }
    if !ig.instagram_hashtags.is_empty() {
        tracing::warn!("INSTAGRAM_HASHTAGS are read by the instagram-graph source only: the web source ignores them");
    }
    Ok(WebConfig {
        base_url: ig.instagram_web_base_url.clone(),
        app_id: ig.instagram_web_app_id.clone(),
        usernames,
        schedule: ig.schedule(),
        requests_per_window: ig.instagram_web_requests_per_window,
        window: ig.instagram_web_window,
        topics: topics(shared),
        max_record_bytes: shared.max_record_bytes,
    })
}
