//! The server-sent-event types a Mastodon stream sends that the pipeline keeps, named by the `sse_event`
//! header of each record, and what the record's value is for each.

/// A new status: the value is the Status JSON.
pub const MASTODON_UPDATE: &str = "update";
/// An edited status: the value is the Status JSON, newer `edited_at`.
pub const MASTODON_STATUS_UPDATE: &str = "status.update";
/// A deleted status: the value is the status's id, as the stream sent it (digits, or a JSON string).
pub const MASTODON_DELETE: &str = "delete";

/// The types the SSE source keeps by default.
pub const MASTODON_KEPT: &[&str] = &[MASTODON_UPDATE, MASTODON_STATUS_UPDATE, MASTODON_DELETE];
