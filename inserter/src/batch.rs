//! A batch: records decoded into rows (or into dead letters, with their reason), de-duplicated by conflict
//! key and encoded for the database, and the next offset of every partition it covers.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};

use crate::limits::LeftOut;
use crate::mapping::{MAPPINGS, Mapping};
use crate::record::ConsumedRecord;
use crate::tables::{TableStatements, Tables};
use crate::writer;

/// Which mapping reads which topic.
#[derive(Clone, Debug)]
pub struct Routes {
    routes: Vec<(String, &'static dyn Mapping)>,
}

impl std::fmt::Debug for dyn Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.topic().name)
    }
}

impl Default for Routes {
    /// Every mapping on its default topic.
    fn default() -> Self {
        Self { routes: MAPPINGS.iter().map(|m| (m.topic().default.to_owned(), *m)).collect() }
    }
}

impl Routes {
    /// Each mapping on its configured topic.
    pub fn of(topics: &crate::settings::Topics) -> Self {
        topics.iter().fold(Self::default(), |routes, (topic, name)| routes.with_topic(topic.name, name.to_owned()))
    }

    /// Mapping `name` (its [`contract::Topic::name`]) reads `topic`.
    ///
    /// # Panics
    /// When no mapping has that name: a caller's mistake.
    pub fn with_topic(mut self, name: &str, topic: impl Into<String>) -> Self {
        // By name: the mappings are zero-sized statics, which may share one address.
        let route = self
            .routes
            .iter_mut()
            .find(|(_, m)| m.topic().name == name)
            .unwrap_or_else(|| panic!("no mapping is named `{name}`"));
        route.0 = topic.into();
        self
    }

    /// Every topic a mapping reads: what the consumer subscribes to.
    pub fn topics(&self) -> Vec<&str> {
        self.routes.iter().map(|(topic, _)| topic.as_str()).collect()
    }

    /// A topic named twice, if any: each mapping needs a topic of its own.
    pub fn shared_topic(&self) -> Option<&str> {
        let topics = self.topics();
        topics.iter().enumerate().find(|(i, topic)| topics[..*i].contains(topic)).map(|(_, topic)| *topic)
    }

    fn mapping_of(&self, topic: &str) -> Option<&'static dyn Mapping> {
        self.routes.iter().find(|(t, _)| t == topic).map(|(_, mapping)| *mapping)
    }
}

/// A batch: its records, the rows they decode to, the dead letters of those that do not, and the next offset
/// of every partition it covers.
pub struct Batch {
    pub(crate) records: Vec<ConsumedRecord>,
    /// Which mapping reads which topic: kept to decode a part of the batch again (see [`Batch::rows_of`]).
    routes: Routes,
    pub(crate) rows: RowsToWrite,
    /// Records that cannot become rows: (record index, why).
    pub(crate) dead_letters: Vec<(usize, String)>,
    /// The inserter's clock when the batch was decoded, which times of scrape are held to: kept, so that a
    /// part decoded again is scraped when it was the first time.
    decoded_at: DateTime<Utc>,
    /// Records that became rows with a time of scrape other than their own, too far ahead: (record index, why).
    clamped: Vec<(usize, String)>,
    /// (topic, partition) -> the offset after the last record of the batch.
    pub(crate) next_offsets: BTreeMap<(String, i32), i64>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Decodes `records` into a batch, its rows ready to write.
    pub fn decode(records: impl IntoIterator<Item = ConsumedRecord>, routes: &Routes) -> Self {
        let mut batch = Self {
            records: Vec::new(),
            routes: routes.clone(),
            rows: RowsToWrite::default(),
            dead_letters: Vec::new(),
            decoded_at: Utc::now(),
            clamped: Vec::new(),
            next_offsets: BTreeMap::new(),
        };
        for record in records {
            batch.push(record);
        }
        batch.rows.prepare();
        batch.rows.encoded = Some(writer::encode(&batch.rows, &batch.records));
        batch
    }

    /// (topic, partition) -> the offset after the last record of the batch: where a consumer resumes.
    pub fn next_offsets(&self) -> &BTreeMap<(String, i32), i64> {
        &self.next_offsets
    }

    /// Decodes `record` into rows, or into a dead letter saying why it cannot be stored.
    fn push(&mut self, record: ConsumedRecord) {
        let index = self.records.len();
        let next = self.next_offsets.entry((record.topic.clone(), record.partition)).or_default();
        *next = (*next).max(record.offset + 1);
        let scraped_at = record.scraped_at_as_of(self.decoded_at);
        match self.rows.map(index, &record, scraped_at.at, &self.routes) {
            Err(reason) => self.dead_letters.push((index, reason)),
            Ok(()) => self.clamped.extend(scraped_at.clamped.map(|why| (index, why))),
        }
        self.records.push(record);
    }

    /// The records that cannot become rows: (index of the record in the batch, why).
    pub fn dead_letters(&self) -> &[(usize, String)] {
        &self.dead_letters
    }

    /// The records that became rows scraped at another time than they gave, too far ahead of the clock:
    /// where each is in Kafka (`topic/partition@offset`), by topic, with why.
    pub fn clamped(&self) -> Vec<(&str, String)> {
        self.clamped
            .iter()
            .map(|(index, why)| {
                let record = &self.records[*index];
                (record.topic.as_str(), format!("{}/{}@{}: {why}", record.topic, record.partition, record.offset))
            })
            .collect()
    }

    /// Values left out of indexed columns, by (table, column).
    pub fn left_out(&self) -> &LeftOut {
        &self.rows.left_out
    }

    /// The indexes of the records that decoded to rows.
    pub(crate) fn decoded(&self) -> Vec<usize> {
        let dead: HashSet<usize> = self.dead_letters.iter().map(|(index, _)| *index).collect();
        (0..self.records.len()).filter(|index| !dead.contains(index)).collect()
    }

    /// The rows of the records `indexes` alone, ready to write: what writing only those records would write.
    pub(crate) fn rows_of(&self, indexes: &[usize]) -> RowsToWrite {
        let mut rows = RowsToWrite::default();
        for &index in indexes {
            // They decoded before, so they decode again.
            let record = &self.records[index];
            let _ = rows.map(index, record, record.scraped_at_as_of(self.decoded_at).at, &self.routes);
        }
        rows.prepare();
        rows
    }
}

/// Rows ready to write, each with the index of the record it came from.
#[derive(Default)]
pub(crate) struct RowsToWrite {
    pub(crate) tables: Tables,
    /// Values left out of indexed columns (they stay in `raw`), by (table, column).
    pub(crate) left_out: LeftOut,
    /// The statements that write these rows, once encoded.
    pub(crate) encoded: Option<Vec<TableStatements>>,
}

impl RowsToWrite {
    fn map(
        &mut self,
        index: usize,
        record: &ConsumedRecord,
        scraped_at: DateTime<Utc>,
        routes: &Routes,
    ) -> Result<(), String> {
        let mapping =
            routes.mapping_of(&record.topic).ok_or_else(|| format!("no mapping reads topic `{}`", record.topic))?;
        let source = record.source();
        // Records from a replay, or from a producer that sets no `source`, are read like the live source's.
        if !(mapping.reads_source(source) || contract::source::is_any_format(source)) {
            return Err(format!("no mapping for source `{source}` on topic `{}`", record.topic));
        }
        let payload = record.payload.as_deref().ok_or("null value (a tombstone): there is nothing to store")?;
        // A record's rows go in whole or not at all.
        let mut rows = Tables::default();
        mapping.map(index, record, scraped_at, payload, &mut rows).map_err(|e| e.to_string())?;
        self.tables.append(rows);
        Ok(())
    }

    /// Rows offered to the database, by table name, tables without rows left out. Two kinds of rows may go
    /// to one table.
    pub(crate) fn count_by_table(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for table in self.tables.in_order().into_iter().filter(|table| table.len() > 0) {
            *counts.entry(table.name()).or_default() += table.len();
        }
        counts
    }

    /// Leaves out what an index cannot hold (`limits`), then keeps one row per conflict key, the scrapes of
    /// one row folded in scrape order: Postgres refuses an upsert that touches one row twice. Doing it again
    /// changes nothing.
    fn prepare(&mut self) {
        self.tables.prepare(&mut self.left_out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mapping_reads_the_topic_named_for_it() {
        let mut routes = Routes::default();
        let names: Vec<&str> = MAPPINGS.iter().map(|m| m.topic().name).collect();
        for name in &names {
            routes = routes.with_topic(name, format!("topic-of-{name}"));
        }
        for name in names {
            let mapping = routes.mapping_of(&format!("topic-of-{name}")).expect("routed");
            assert_eq!(mapping.topic().name, name);
        }
        assert_eq!(routes.shared_topic(), None);
    }
}
