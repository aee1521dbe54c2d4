//! Every table the inserter writes, in the order it writes them (a row is written after the rows it points
//! at), each with its rule. A mapping fills these tables; a new table is one line here (and its entity and
//! migration).

use entity::{
    instagram_comments, instagram_hashtags, instagram_post_hashtags, instagram_post_tagged_users, instagram_posts,
    instagram_profile_snapshots, instagram_profiles, mastodon_statuses, twitter_data, twitter_users,
};
use sea_orm::EntityTrait;

use crate::guard;
use crate::limits::Cuts;
use crate::record::ConsumedRecord;
use crate::table::{Conflict, Encoded, Rule, Table};

/// A table of rows, whatever its entity: what the writer needs of it.
pub(crate) trait Rows: Send + Sync {
    fn name(&self) -> &'static str;
    fn len(&self) -> usize;
    /// Statements of at most `max_rows` rows and about `max_bytes` bytes (of payload), encoded.
    fn statements(&self, records: &[ConsumedRecord], max_rows: usize, max_bytes: usize)
    -> Result<Vec<Encoded>, String>;
}

/// A table's statements, encoded ahead of the write: or why its rows cannot be encoded.
pub(crate) type TableStatements = (&'static str, Result<Vec<Encoded>, String>);

impl<E: EntityTrait> Rows for Table<E>
where
    E::ActiveModel: Send + Sync,
{
    fn name(&self) -> &'static str {
        E::default().table_name()
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn statements(
        &self,
        records: &[ConsumedRecord],
        max_rows: usize,
        max_bytes: usize,
    ) -> Result<Vec<Encoded>, String> {
        let weight = |record: usize| match self.rule.carries_payload {
            true => records[record].payload.as_ref().map_or(0, Vec::len),
            false => 256,
        };
        let mut statements = Vec::new();
        let (mut start, mut bytes) = (0, 0);
        for (position, row) in self.rows.iter().enumerate() {
            let row_bytes = weight(row.record);
            if position > start && (position - start >= max_rows || bytes + row_bytes > max_bytes) {
                statements.push(self.encode(&self.rows[start..position])?);
                (start, bytes) = (position, 0);
            }
            bytes += row_bytes;
        }
        if start < self.rows.len() {
            statements.push(self.encode(&self.rows[start..])?);
        }
        Ok(statements)
    }
}

macro_rules! tables {
    ($($(#[$doc:meta])* $field:ident: $entity:ty = $rule:expr;)*) => {
        /// A batch's rows, table by table.
        pub(crate) struct Tables {
            $($(#[$doc])* pub(crate) $field: Table<$entity>,)*
        }

        impl Default for Tables {
            fn default() -> Self {
                Self { $($field: Table::new(&$rule),)* }
            }
        }

        impl Tables {
            /// The tables in the order they are written.
            pub(crate) fn in_order(&self) -> [&dyn Rows; [$(stringify!($field)),*].len()] {
                [$(&self.$field as &dyn Rows),*]
            }

            /// Every non-empty table's statements, in the order they are written.
            pub(crate) fn encode(&self, records: &[ConsumedRecord], max_rows: usize, max_bytes: usize) -> Vec<TableStatements> {
                self.in_order()
                    .into_iter()
                    .filter(|table| table.len() > 0)
                    .map(|table| (table.name(), table.statements(records, max_rows, max_bytes)))
                    .collect()
            }

            /// Adds `other`'s rows after these.
            pub(crate) fn append(&mut self, other: Tables) {
                $(self.$field.rows.extend(other.$field.rows);)*
            }

            /// Fits every table to its indexes and folds its duplicates.
            pub(crate) fn prepare(&mut self, cuts: &mut Cuts) {
                $(self.$field.prepare(cuts);)*
                crate::mapping::instagram::parents_first(&mut self.instagram_comments.rows);
            }
        }
    };
}

tables! {
    twitter_users: twitter_users::Entity = TWITTER_USERS;
    twitter_data: twitter_data::Entity = TWITTER_DATA;
    mastodon_statuses: mastodon_statuses::Entity = MASTODON_STATUSES;
    // Instagram: the accounts first (a post points at its owner, a snapshot at its profile), then the posts,
    // then what points at a post.
    instagram_profiles: instagram_profiles::Entity = INSTAGRAM_PROFILES;
    /// Minimal profile rows for the accounts a record refers to: written only where the account has no row,
    /// so one never overwrites a scraped profile, and two writers adding one account do not conflict.
    instagram_referenced_profiles: instagram_profiles::Entity = INSTAGRAM_REFERENCED_PROFILES;
    instagram_profile_snapshots: instagram_profile_snapshots::Entity = INSTAGRAM_PROFILE_SNAPSHOTS;
    instagram_posts: instagram_posts::Entity = INSTAGRAM_POSTS;
    instagram_hashtags: instagram_hashtags::Entity = INSTAGRAM_HASHTAGS;
    instagram_post_hashtags: instagram_post_hashtags::Entity = INSTAGRAM_POST_HASHTAGS;
    instagram_comments: instagram_comments::Entity = INSTAGRAM_COMMENTS;
    instagram_post_tagged_users: instagram_post_tagged_users::Entity = INSTAGRAM_POST_TAGGED_USERS;
}

/// The rule of a table with a guard: keyed by the guard's key.
const fn guarded<E: EntityTrait>(guard: &'static guard::Guard<E::Column>) -> Rule<E> {
    Rule {
        key: std::slice::from_ref(&guard.key),
        conflict: Conflict::Guarded(guard),
        carries_payload: true,
        sorted: false,
    }
}

static TWITTER_USERS: Rule<twitter_users::Entity> = guarded(&guard::TWITTER_USERS);
static TWITTER_DATA: Rule<twitter_data::Entity> = guarded(&guard::TWITTER_DATA);
static MASTODON_STATUSES: Rule<mastodon_statuses::Entity> = guarded(&guard::MASTODON_STATUSES);
static INSTAGRAM_PROFILES: Rule<instagram_profiles::Entity> = guarded(&guard::INSTAGRAM_PROFILES);
/// A minimal row with a username beats one without.
static INSTAGRAM_REFERENCED_PROFILES: Rule<instagram_profiles::Entity> = Rule {
    key: &[instagram_profiles::Column::UserId],
    conflict: Conflict::Nothing { preferred: Some(instagram_profiles::Column::Username) },
    carries_payload: false,
    sorted: true,
};
/// Append-only: a replayed scrape is already there.
static INSTAGRAM_PROFILE_SNAPSHOTS: Rule<instagram_profile_snapshots::Entity> = Rule {
    key: &[instagram_profile_snapshots::Column::UserId, instagram_profile_snapshots::Column::ScrapedAt],
    conflict: Conflict::Nothing { preferred: None },
    carries_payload: false,
    sorted: false,
};
static INSTAGRAM_POSTS: Rule<instagram_posts::Entity> = guarded(&guard::INSTAGRAM_POSTS);
/// A hashtag is written once; the Graph API's id is added when a hashtag search gives it, and then kept.
static INSTAGRAM_HASHTAGS: Rule<instagram_hashtags::Entity> = Rule {
    key: &[instagram_hashtags::Column::Name],
    conflict: Conflict::FillOnce(instagram_hashtags::Column::GraphHashtagId),
    carries_payload: false,
    sorted: false,
};
/// Links are only added: a caption edited to drop a tag leaves its link.
static INSTAGRAM_POST_HASHTAGS: Rule<instagram_post_hashtags::Entity> = Rule {
    key: &[instagram_post_hashtags::Column::MediaId, instagram_post_hashtags::Column::Hashtag],
    conflict: Conflict::Nothing { preferred: None },
    carries_payload: false,
    sorted: false,
};
static INSTAGRAM_COMMENTS: Rule<instagram_comments::Entity> = guarded(&guard::INSTAGRAM_COMMENTS);
/// Links are only added, like the hashtags'.
static INSTAGRAM_POST_TAGGED_USERS: Rule<instagram_post_tagged_users::Entity> = Rule {
    key: &[instagram_post_tagged_users::Column::MediaId, instagram_post_tagged_users::Column::UserId],
    conflict: Conflict::Nothing { preferred: None },
    carries_payload: false,
    sorted: false,
};
