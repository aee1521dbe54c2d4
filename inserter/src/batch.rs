//! A batch: records decoded into rows (or into dead letters, with their reason), de-duplicated by conflict
//! key, and the next offset of every partition it covers.

use std::collections::{BTreeMap, HashMap, HashSet};

use entity::{
    instagram_comments, instagram_hashtags, instagram_post_hashtags, instagram_post_tagged_users, instagram_posts,
    instagram_profile_snapshots, instagram_profiles, mastodon_statuses, twitter_data, twitter_users,
};
use sea_orm::ActiveModelTrait;

use crate::guard::{self, Guard};
use crate::limits::{self, Cuts};
use crate::mapping::instagram::{self, InstagramRows};
use crate::mapping::{mastodon, twitter};
use crate::record::ConsumedRecord;
use crate::writer::Referenced;

/// Which mapping reads which topic.
#[derive(Clone, Debug)]
pub struct Routes {
    /// X API v2 stream lines.
    pub tweets_topic: String,
    /// Mastodon statuses (the REST API's Status entity).
    pub mastodon_statuses_topic: String,
    /// Instagram profiles: a Graph API `business_discovery` object or a web `data.user`.
    pub instagram_profiles_topic: String,
    /// Instagram media: a Graph API media object or a web timeline node.
    pub instagram_media_topic: String,
}

impl Default for Routes {
    /// The topics the scraper writes by default.
    fn default() -> Self {
        Self {
            tweets_topic: "twitter.tweets".into(),
            mastodon_statuses_topic: "mastodon.statuses".into(),
            instagram_profiles_topic: "instagram.profiles".into(),
            instagram_media_topic: "instagram.media".into(),
        }
    }
}

impl Routes {
    /// Every topic a mapping reads: what the consumer subscribes to.
    pub fn topics(&self) -> Vec<&str> {
        vec![
            &self.tweets_topic,
            &self.mastodon_statuses_topic,
            &self.instagram_profiles_topic,
            &self.instagram_media_topic,
        ]
    }

    /// A topic named twice, if any: each mapping needs a topic of its own.
    pub fn shared_topic(&self) -> Option<&str> {
        let topics = self.topics();
        topics.iter().enumerate().find(|(i, topic)| topics[..*i].contains(topic)).map(|(_, topic)| *topic)
    }
}

/// A batch: its records, the rows they decode to, the dead letters of those that do not, and the next offset
/// of every partition it covers.
pub struct Batch {
    pub(crate) records: Vec<ConsumedRecord>,
    /// Which mapping reads which topic: kept to decode a part of the batch again (see [`Batch::rows_of`]).
    routes: Routes,
    pub(crate) rows: Rows,
    /// Records that cannot become rows: (record index, why).
    pub(crate) dead_letters: Vec<(usize, String)>,
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
        let mut batch = Self {
            records: Vec::new(),
            routes: routes.clone(),
            rows: Rows::default(),
            dead_letters: Vec::new(),
            next_offsets: BTreeMap::new(),
        };
        for record in records {
            batch.push(record);
        }
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
        if let Err(reason) = self.rows.map(index, &record, &self.routes) {
            self.dead_letters.push((index, reason));
        }
        self.records.push(record);
    }

    /// Values left out of indexed columns, by (table, column).
    pub fn cuts(&self) -> &Cuts {
        &self.rows.cuts
    }

    /// The indexes of the records that decoded to rows.
    pub(crate) fn decoded(&self) -> Vec<usize> {
        let dead: HashSet<usize> = self.dead_letters.iter().map(|(index, _)| *index).collect();
        (0..self.records.len()).filter(|index| !dead.contains(index)).collect()
    }

    /// The rows of the records `indexes` alone, ready to write: what writing only those records would write.
    pub(crate) fn rows_of(&self, indexes: &[usize]) -> Rows {
        let mut rows = Rows::default();
        for &index in indexes {
            // They decoded before, so they decode again.
            let _ = rows.map(index, &self.records[index], &self.routes);
        }
        rows.prepare();
        rows
    }
}

/// Rows ready to write, each with the index of the record it came from.
#[derive(Default)]
pub(crate) struct Rows {
    pub(crate) tweets: Vec<(usize, twitter_data::ActiveModel)>,
    pub(crate) users: Vec<(usize, twitter_users::ActiveModel)>,
    pub(crate) statuses: Vec<(usize, mastodon_statuses::ActiveModel)>,
    pub(crate) instagram: InstagramBatch,
    /// Values left out of indexed columns (they stay in `raw`), by (table, column).
    pub(crate) cuts: Cuts,
}

impl Rows {
    fn map(&mut self, index: usize, record: &ConsumedRecord, routes: &Routes) -> Result<(), String> {
        let source = record.source();
        let (mapping, live_source) = if record.topic == routes.tweets_topic {
            (Mapping::Tweet, source.starts_with("x."))
        } else if record.topic == routes.mastodon_statuses_topic {
            // `sse` is the scraper's generic SSE source, `sse.mastodon` and the like its named ones.
            (Mapping::MastodonStatus, source.starts_with("sse"))
        } else if record.topic == routes.instagram_profiles_topic {
            (Mapping::Instagram(instagram::Kind::Profile), instagram::is_source(instagram::Kind::Profile, source))
        } else if record.topic == routes.instagram_media_topic {
            (Mapping::Instagram(instagram::Kind::Media), instagram::is_source(instagram::Kind::Media, source))
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
            Mapping::Instagram(kind) => {
                let context = instagram::Context {
                    source,
                    scraped_at: record.scraped_at(),
                    owner_id: record.header("instagram_owner_id"),
                    hashtag: record.header("instagram_hashtag"),
                    hashtag_id: record.header("instagram_hashtag_id"),
                };
                let rows = instagram::map(kind, payload, &context).map_err(|e| e.to_string())?;
                self.instagram.push(index, rows);
            }
        }
        Ok(())
    }

    /// Rows offered to the database.
    pub(crate) fn count(&self) -> usize {
        self.tweets.len() + self.users.len() + self.statuses.len() + self.instagram.rows()
    }

    /// Leaves out what an index cannot hold (`limits`), then keeps one row per conflict key, the newest
    /// scrape winning (the later record on a tie): Postgres refuses an upsert that touches one row twice.
    /// Doing it again changes nothing.
    pub(crate) fn prepare(&mut self) {
        self.fit_to_indexes();
        dedup_newest(&mut self.tweets, |t| (*t.tweet_id.as_ref(), *t.scraped_at.as_ref()));
        dedup_newest(&mut self.users, |u| (*u.user_id.as_ref(), *u.scraped_at.as_ref()));
        dedup_newest(&mut self.statuses, |s| (*s.id.as_ref(), *s.scraped_at.as_ref()));
        self.instagram.deduplicate();
    }

    fn fit_to_indexes(&mut self) {
        let cuts = &mut self.cuts;
        limits::fit(&mut self.tweets, cuts);
        limits::fit(&mut self.users, cuts);
        limits::fit(&mut self.statuses, cuts);
        let ig = &mut self.instagram;
        limits::fit(&mut ig.profiles, cuts);
        let mut referenced: Vec<(usize, instagram_profiles::ActiveModel)> =
            std::mem::take(&mut ig.referenced_profiles).into_iter().map(|(i, r)| (i, r.0)).collect();
        limits::fit(&mut referenced, cuts);
        ig.referenced_profiles = referenced.into_iter().map(|(i, r)| (i, Referenced(r))).collect();
        limits::fit(&mut ig.snapshots, cuts);
        limits::fit(&mut ig.posts, cuts);
        limits::fit(&mut ig.hashtags, cuts);
        limits::fit(&mut ig.post_hashtags, cuts);
        limits::fit(&mut ig.comments, cuts);
        limits::fit(&mut ig.tagged_users, cuts);
    }
}

/// The payload formats a record can be read as.
enum Mapping {
    Tweet,
    MastodonStatus,
    Instagram(instagram::Kind),
}

/// A batch's Instagram rows, each with the index of its record.
#[derive(Default)]
pub(crate) struct InstagramBatch {
    pub(crate) profiles: Vec<(usize, instagram_profiles::ActiveModel)>,
    pub(crate) referenced_profiles: Vec<(usize, Referenced)>,
    pub(crate) snapshots: Vec<(usize, instagram_profile_snapshots::ActiveModel)>,
    pub(crate) posts: Vec<(usize, instagram_posts::ActiveModel)>,
    pub(crate) hashtags: Vec<(usize, instagram_hashtags::ActiveModel)>,
    pub(crate) post_hashtags: Vec<(usize, instagram_post_hashtags::ActiveModel)>,
    pub(crate) comments: Vec<(usize, instagram_comments::ActiveModel)>,
    pub(crate) tagged_users: Vec<(usize, instagram_post_tagged_users::ActiveModel)>,
}

impl InstagramBatch {
    fn push(&mut self, index: usize, rows: InstagramRows) {
        fn indexed<R>(index: usize, rows: Vec<R>) -> impl Iterator<Item = (usize, R)> {
            rows.into_iter().map(move |row| (index, row))
        }
        self.profiles.extend(indexed(index, rows.profiles));
        self.referenced_profiles.extend(indexed(index, rows.referenced_profiles).map(|(i, row)| (i, Referenced(row))));
        self.snapshots.extend(indexed(index, rows.snapshots));
        self.posts.extend(indexed(index, rows.posts));
        self.hashtags.extend(indexed(index, rows.hashtags));
        self.post_hashtags.extend(indexed(index, rows.post_hashtags));
        self.comments.extend(indexed(index, rows.comments));
        self.tagged_users.extend(indexed(index, rows.tagged_users));
    }

    fn rows(&self) -> usize {
        self.profiles.len()
            + self.referenced_profiles.len()
            + self.snapshots.len()
            + self.posts.len()
            + self.hashtags.len()
            + self.post_hashtags.len()
            + self.comments.len()
            + self.tagged_users.len()
    }

    /// One row per conflict key. Scrapes of one row are folded in scrape order by the table's rule, so that
    /// the batch writes what writing them one by one would (a Graph and a web scrape of one post keep both
    /// ids). The minimal profiles are sorted by id, so that two writers lock them in the same order.
    fn deduplicate(&mut self) {
        let time = |at: &sea_orm::ActiveValue<_>| at.clone().unwrap();
        dedup_merging(&mut self.profiles, &guard::INSTAGRAM_PROFILES, |p| (*p.user_id.as_ref(), time(&p.scraped_at)));
        dedup_merging(&mut self.posts, &guard::INSTAGRAM_POSTS, |p| (*p.media_id.as_ref(), *p.scraped_at.as_ref()));
        dedup_merging(&mut self.comments, &guard::INSTAGRAM_COMMENTS, |c| {
            (*c.comment_id.as_ref(), *c.scraped_at.as_ref())
        });
        dedup_newest(&mut self.snapshots, |s| ((*s.user_id.as_ref(), *s.scraped_at.as_ref()), ()));
        // A minimal row with a username beats one without; a hashtag with the Graph API's id one without.
        dedup_newest(&mut self.referenced_profiles, |r| (*r.0.user_id.as_ref(), r.0.username.as_ref().is_some()));
        self.referenced_profiles.sort_by_key(|(_, r)| *r.0.user_id.as_ref());
        dedup_newest(&mut self.hashtags, |h| (h.name.as_ref().clone(), h.graph_hashtag_id.as_ref().is_some()));
        dedup_newest(&mut self.post_hashtags, |l| ((*l.media_id.as_ref(), l.hashtag.as_ref().clone()), ()));
        dedup_newest(&mut self.tagged_users, |l| ((*l.media_id.as_ref(), *l.user_id.as_ref()), ()));
        parents_first(&mut self.comments);
    }
}

/// Orders comments so that a reply comes after the parent it points at when both are in the batch: the
/// writer checks the parent reference at each statement's end.
fn parents_first(comments: &mut [(usize, instagram_comments::ActiveModel)]) {
    let parent_of: HashMap<i64, Option<i64>> = comments
        .iter()
        .map(|(_, c)| (*c.comment_id.as_ref(), c.parent_comment_id.try_as_ref().copied().flatten()))
        .collect();
    // A chain is at most as long as the batch; a cycle (a hostile payload) stops there too.
    let depth = |mut id: i64| {
        let mut depth = 0;
        while let Some(Some(parent)) = parent_of.get(&id) {
            depth += 1;
            if depth > parent_of.len() {
                break;
            }
            id = *parent;
        }
        depth
    };
    comments.sort_by_cached_key(|(_, c)| depth(*c.comment_id.as_ref()));
}

/// Keeps one row per key: the newest (the later record on a tie), with the older scrapes folded into it by
/// `guard`'s rule.
fn dedup_merging<A, C, K, T>(rows: &mut Vec<(usize, A)>, guard: &Guard<C>, key_and_time: impl Fn(&A) -> (K, T))
where
    A: ActiveModelTrait,
    <A::Entity as sea_orm::EntityTrait>::Column: From<C>,
    C: sea_orm::IdenStatic + Copy,
    K: std::hash::Hash + Eq,
    T: Ord,
{
    let mut groups: HashMap<K, Vec<(T, usize)>> = HashMap::new();
    for (position, (_, row)) in rows.iter().enumerate() {
        let (key, time) = key_and_time(row);
        groups.entry(key).or_default().push((time, position));
    }
    let mut dropped = HashSet::new();
    for mut group in groups.into_values().filter(|group| group.len() > 1) {
        group.sort();
        let (newest, older) = group.split_last().expect("a group has rows");
        let mut merged = rows[older[0].1].1.clone();
        for &(_, position) in older[1..].iter().chain([newest]) {
            let mut next = rows[position].1.clone();
            guard.merge(&merged, &mut next);
            merged = next;
        }
        rows[newest.1].1 = merged;
        dropped.extend(older.iter().map(|(_, position)| *position));
    }
    let mut position = 0;
    rows.retain(|_| {
        position += 1;
        !dropped.contains(&(position - 1))
    });
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
