//! The scraper: sources that read social-media payloads, a bounded queue, and the Kafka sink they all write to.
//!
//! ```text
//! source (X stream, SSE, Instagram, Bluesky, replay) ─► Emitter ─► queue (byte budget) ─► forward ─► KafkaSink ─► broker
//! ```

pub mod bluesky;
pub mod forward;
pub mod http;
pub mod instagram;
pub mod kafka_sink;
pub mod metrics;
pub mod queue;
pub mod record;
pub mod registry;
pub mod replay;
pub mod run;
pub mod secret;
pub mod settings;
pub mod source;
pub mod sse;
pub mod synthetic;
pub mod topic_tail;
pub mod x;
