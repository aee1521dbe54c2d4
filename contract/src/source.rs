//! The `source` header's values: which source, and so which payload format, a record comes from.

/// X stream records start with this (`x.sample`, `x.sample10`, `x.search`).
pub const X_PREFIX: &str = "x.";
pub const X_SAMPLE: &str = "x.sample";
pub const X_SAMPLE10: &str = "x.sample10";
pub const X_SEARCH: &str = "x.search";

/// Server-sent-event records start with this; [`SSE_DEFAULT`] unless the operator names the stream.
pub const SSE_PREFIX: &str = "sse";
pub const SSE_DEFAULT: &str = "sse.mastodon";

/// Instagram Graph API records: profiles and their media (business discovery), and hashtag media.
pub const INSTAGRAM_GRAPH_PREFIX: &str = "instagram.graph.";
pub const INSTAGRAM_BUSINESS_DISCOVERY: &str = "instagram.graph.business_discovery";
pub const INSTAGRAM_HASHTAG_RECENT: &str = "instagram.graph.hashtag.recent_media";
pub const INSTAGRAM_HASHTAG_TOP: &str = "instagram.graph.hashtag.top_media";
/// Instagram web records: a profile with its latest media.
pub const INSTAGRAM_WEB_PREFIX: &str = "instagram.web.";
pub const INSTAGRAM_WEB_PROFILE: &str = "instagram.web.profile";

/// Bluesky's Jetstream: every public post, like, repost and follow, and account events, as they happen.
pub const BLUESKY_JETSTREAM: &str = "bluesky.jetstream";
/// Bluesky records start with this.
pub const BLUESKY_PREFIX: &str = "bluesky.";

/// Records replayed from a file of X stream lines (or of any format: the topic decides).
pub const REPLAY: &str = "replay";
/// Posts made up by the scraper's synthetic generator, X stream lines. A value of their own, kept in
/// `twitter_data.source`, so that no synthetic row passes for a real post and all of them can be found.
pub const REPLAY_SYNTHETIC: &str = "replay.synthetic";
/// A record without a `source` header (a producer other than the scraper).
pub const UNKNOWN: &str = "unknown";

/// Whether any mapping may read a record of `source`: replays and records of other producers carry no
/// format of their own, so the topic decides.
pub fn is_any_format(source: &str) -> bool {
    source == REPLAY || source == UNKNOWN
}
