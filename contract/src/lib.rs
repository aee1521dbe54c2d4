//! The Kafka contract between the scraper and the inserter, written once: the topics and their defaults,
//! the header names, the source names, the id rule, the AT Protocol's keys and the reasons a payload is rejected. What one binary
//! writes the other reads through these same definitions, so the two cannot drift apart.

pub mod atproto;
pub mod event;
pub mod header;
pub mod id;
pub mod reject;
pub mod source;
pub mod topic;

pub use id::{IdError, parse_id};
pub use topic::{Topic, TopicList, Topics};
