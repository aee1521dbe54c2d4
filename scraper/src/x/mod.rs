//! The X (Twitter) API v2 streams: framing the long-lived response into lines, telling posts, error lines
//! and bad lines apart, when to reconnect, syncing the filtered stream's rules, and the source itself.

pub mod backoff;
pub mod flags;
pub mod framing;
pub mod line;
pub mod produce;
pub mod rules;
pub mod stream;
