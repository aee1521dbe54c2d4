//! Header names of every record, and of the extra context some sources add.

/// Which source produced the record (see [`crate::source`]); the inserter checks it against the topic's mapping.
pub const SOURCE: &str = "source";
/// When the scraper read the payload, RFC 3339 in UTC with milliseconds.
pub const SCRAPED_AT: &str = "scraped_at";
/// Always [`JSON`]: the value is the source's JSON as it sent it.
pub const CONTENT_TYPE: &str = "content_type";
/// The version of the scraper that produced the record.
pub const SCRAPER_VERSION: &str = "scraper_version";
/// On the rejects topic only: why the payload was rejected ([`crate::reject`]).
pub const ERROR: &str = "error";

/// On a server-sent-event record: the event's type (Mastodon: `update`, `status.update`, `delete`), which
/// says what the value is (see [`crate::event`]).
pub const SSE_EVENT: &str = "sse_event";

/// On a server-sent-event record: the instance that served the stream (the stream URL's host, with its port
/// when it is not the scheme's). Mastodon ids are the serving instance's own, so a status is known by
/// (instance, id).
pub const INSTANCE: &str = "instance";

/// On a business-discovery media record: the Graph id of the account that owns it.
pub const INSTAGRAM_OWNER_ID: &str = "instagram_owner_id";
/// On a hashtag media record: the hashtag as searched.
pub const INSTAGRAM_HASHTAG: &str = "instagram_hashtag";
/// On a hashtag media record: the Graph API's id of the hashtag.
pub const INSTAGRAM_HASHTAG_ID: &str = "instagram_hashtag_id";

/// On a Bluesky record: a Jetstream cursor (microseconds since the epoch) from which a restarted scraper
/// resumes without a gap: every event before it had been acknowledged by the broker when the record was
/// produced. The newest record of each partition says where to resume.
pub const BLUESKY_CURSOR: &str = "bluesky_cursor";

/// The `content_type` of every record.
pub const JSON: &str = "application/json";
