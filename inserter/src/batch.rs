//! A batch: records decoded into rows (or into dead letters, with their reason), de-duplicated by conflict
//! key, and the next offset of every partition it covers.

use std::collections::{BTreeMap, HashMap, HashSet};

use entity::{ingest_errors, mastodon_statuses, twitter_data, twitter_users};

use crate::mapping::{mastodon, twitter};
use crate::record::ConsumedRecord;

/// Which mapping reads which topic.
#[derive(Clone, Debug)]
pub struct Routes {
    /// X API v2 stream lines.
    pub tweets_topic: String,
    /// Mastodon statuses (the REST API's Status entity).
    pub mastodon_statuses_topic: String,
}

impl Default for Routes {
    /// The topics the scraper writes by default.
    fn default() -> Self {
        Self { tweets_topic: "twitter.tweets".into(), mastodon_statuses_topic: "mastodon.statuses".into() }
    }
}

impl Routes {
    /// Every topic a mapping reads: what the consumer subscribes to.
    pub fn topics(&self) -> Vec<&str> {
        vec![&self.tweets_topic, &self.mastodon_statuses_topic]
    }
}

/// Rows ready to write, each with the index of the record it came from (to dead-letter that record alone if
/// its row violates a constraint).
#[derive(Default)]
pub struct Batch {
    pub(crate) records: Vec<ConsumedRecord>,
    pub(crate) tweets: Vec<(usize, twitter_data::ActiveModel)>,
    pub(crate) users: Vec<(usize, twitter_users::ActiveModel)>,
    pub(crate) statuses: Vec<(usize, mastodon_statuses::ActiveModel)>,
    pub(crate) dead_letters: Vec<ingest_errors::ActiveModel>,
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

    /// Decodes `records` into a batch.
    pub fn decode(records: impl IntoIterator<Item = ConsumedRecord>, routes: &Routes) -> Self {
        let mut batch = Self::default();
        for record in records {
            batch.push(record, routes);
        }
        batch
    }

    /// (topic, partition) -> the offset after the last record of the batch: where a consumer resumes.
    pub fn next_offsets(&self) -> &BTreeMap<(String, i32), i64> {
        &self.next_offsets
    }

    /// Decodes `record` into rows, or into a dead letter saying why it cannot be stored.
    pub fn push(&mut self, record: ConsumedRecord, routes: &Routes) {
        let index = self.records.len();
        let next = self.next_offsets.entry((record.topic.clone(), record.partition)).or_default();
        *next = (*next).max(record.offset + 1);
        match self.map(index, &record, routes) {
            Ok(()) => {}
            Err(reason) => self.dead_letters.push(record.dead_letter(&reason)),
        }
        self.records.push(record);
    }

    fn map(&mut self, index: usize, record: &ConsumedRecord, routes: &Routes) -> Result<(), String> {
        let source = record.source();
        let (mapping, live_source) = if record.topic == routes.tweets_topic {
            (Mapping::Tweet, source.starts_with("x."))
        } else if record.topic == routes.mastodon_statuses_topic {
            // `sse` is the scraper's generic SSE source, `sse.mastodon` and the like its named ones.
            (Mapping::MastodonStatus, source.starts_with("sse"))
        } else {
            return Err(format!("no mapping reads topic `{}`", record.topic));
        };
        // Records from a replay, or from a producer that sets no `source`, are read like the live source's.
        if !(live_source || source == "replay" || source == "unknown") {
            return Err(format!("no mapping for source `{source}` on topic `{}`", record.topic));
        }
        let payload = record.payload.as_deref().ok_or("null value (a tombstone): there is nothing to store")?;
        match mapping {
            Mapping::Tweet => {
                let rows = twitter::map(payload, source, record.scraped_at()).map_err(|e| e.to_string())?;
                self.tweets.push((index, rows.tweet));
                self.users.extend(rows.users.into_iter().map(|user| (index, user)));
            }
            Mapping::MastodonStatus => {
                let status = mastodon::map(payload, record.scraped_at()).map_err(|e| e.to_string())?;
                self.statuses.push((index, status));
            }
        }
        Ok(())
    }

    /// Keeps one row per conflict key, the newest scrape winning (the later record on a tie): Postgres
    /// refuses an upsert that touches one row twice.
    pub(crate) fn deduplicate(&mut self) {
        dedup_newest(&mut self.tweets, |t| (*t.tweet_id.as_ref(), *t.scraped_at.as_ref()));
        dedup_newest(&mut self.users, |u| (*u.user_id.as_ref(), *u.scraped_at.as_ref()));
        dedup_newest(&mut self.statuses, |s| (*s.id.as_ref(), *s.scraped_at.as_ref()));
    }
}

/// The payload formats a record can be read as.
enum Mapping {
    Tweet,
    MastodonStatus,
}

fn dedup_newest<R, K, T>(rows: &mut Vec<(usize, R)>, key_and_time: impl Fn(&R) -> (K, T))
where
    K: std::hash::Hash + Eq,
    T: PartialOrd,
{
    let mut newest: HashMap<K, (usize, T)> = HashMap::new();
    for (position, (_, row)) in rows.iter().enumerate() {
        let (key, time) = key_and_time(row);
        if newest.get(&key).is_none_or(|(_, kept)| time >= *kept) {
            newest.insert(key, (position, time));
        }
    }
    let keep: HashSet<usize> = newest.into_values().map(|(position, _)| position).collect();
    let mut position = 0;
    rows.retain(|_| {
        position += 1;
        keep.contains(&(position - 1))
    });
}
