//! Mappings from raw Kafka payloads to rows, one module per payload format, and the decoding checks every
//! format shares. A payload that fails them becomes a [`DecodeError`], which the inserter dead-letters.
//!
//! A new format is one module implementing [`Mapping`] and one line in [`MAPPINGS`]: its topic's flag,
//! variable and default, the sources it reads, and the rows a record becomes all live in that module.

pub mod bluesky;
pub mod html;
pub mod instagram;
pub mod mastodon;
pub mod twitter;

mod json;

pub use json::DecodeError;

use chrono::{DateTime, Utc};
use contract::Topic;

use crate::record::ConsumedRecord;
use crate::tables::Tables;

/// Every payload format the inserter reads, each from a topic of its own.
pub(crate) static MAPPINGS: &[&dyn Mapping] =
    &[&twitter::TWEETS, &mastodon::STATUSES, &instagram::PROFILES, &instagram::MEDIA, &bluesky::EVENTS];

/// One payload format.
pub(crate) trait Mapping: Sync {
    /// The setting that names its topic.
    fn topic(&self) -> &'static Topic;

    /// Whether a record from `source` is of this format. Records from a replay (`replay`), or from a producer
    /// that sets no `source` (`unknown`), are read by any.
    fn reads_source(&self, source: &str) -> bool;

    /// Adds the rows record `index` becomes to `tables`, scraped at `scraped_at` (the record's own time, or
    /// the one it was clamped to: [`ConsumedRecord::scraped_at_as_of`]).
    fn map(
        &self,
        index: usize,
        record: &ConsumedRecord,
        scraped_at: DateTime<Utc>,
        payload: &[u8],
        tables: &mut Tables,
    ) -> Result<(), DecodeError>;
}

/// The mapping named `name`.
#[cfg(test)]
pub(crate) fn named(name: &str) -> Option<&'static dyn Mapping> {
    MAPPINGS.iter().copied().find(|mapping| mapping.topic().name == name)
}

/// A row a mapping made, with its JSON exactly as the source sent it (its table's `raw` column), kept as
/// text: the writer sends it to Postgres as it is, never parsed into a tree.
#[derive(Clone, Debug)]
pub struct Mapped<A> {
    pub model: A,
    pub raw: Box<str>,
}

impl<A: sea_orm::ActiveModelTrait> Mapped<A> {
    /// The active model with `raw` set, as SeaORM would write it.
    pub fn into_model(self) -> A {
        let mut model = self.model;
        let raw: serde_json::Value = serde_json::from_str(&self.raw).expect("a mapping keeps valid JSON");
        if let Some(column) = crate::table::raw_column::<A>() {
            model.set(column, raw.into());
        }
        model
    }
}

impl<A> std::ops::Deref for Mapped<A> {
    type Target = A;
    fn deref(&self) -> &A {
        &self.model
    }
}

/// The topics the mappings read: the inserter's `--topic-*` flags.
pub struct MappingTopics;

impl contract::TopicList for MappingTopics {
    fn topics() -> Vec<&'static Topic> {
        MAPPINGS.iter().map(|mapping| mapping.topic()).collect()
    }
}
