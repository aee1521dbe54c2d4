//! The X (Twitter) API v2 streams: framing the long-lived response into lines, and telling posts, error
//! lines and bad lines apart.

pub mod framing;
pub mod line;
