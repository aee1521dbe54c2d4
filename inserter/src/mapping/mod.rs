//! Mappings from raw Kafka payloads to rows, one module per payload format, and the decoding checks every
//! format shares. A payload that fails them becomes a [`DecodeError`], which the inserter dead-letters.

pub mod instagram;
pub mod mastodon;
pub mod twitter;

mod html;
mod json;

pub use json::DecodeError;
