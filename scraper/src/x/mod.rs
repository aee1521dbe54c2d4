//! The X (Twitter) API v2 streams: framing the long-lived response into lines, telling posts, error lines
//! and bad lines apart, when to reconnect and what to ask X to resend then, syncing the filtered stream's
//! rules, the sample10 partitions to read, the gap a restart left, and the source itself.

pub mod backfill;
pub mod backoff;
pub mod flags;
pub mod framing;
pub mod line;
pub mod partitions;
pub mod produce;
pub mod restart;
pub mod rules;
pub mod stream;
