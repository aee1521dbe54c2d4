//! Every table the inserter writes, in the order it writes them (a row is written after the rows it points
//! at). Each is written by the rule its entity's description gives (`entity::Described`). A mapping fills
//! these tables; a new table is one line here (beside its entity, with its description, and its migration).

use entity::Described;
use entity::description::Upsert;
use entity::{
    bluesky_account_events, bluesky_deletions, bluesky_interactions, bluesky_posts, instagram_comments,
    instagram_hashtags, instagram_post_hashtags, instagram_post_tagged_users, instagram_posts,
    instagram_profile_snapshots, instagram_profiles, mastodon_status_deletions, mastodon_statuses, twitter_data,
    twitter_users,
};

use crate::limits::LeftOut;
use crate::record::ConsumedRecord;
use crate::table::{Encoded, Row, Table, chunks};

/// A table of rows, whatever its entity: what the writer needs of it.
pub(crate) trait AnyTable: Send + Sync {
    fn name(&self) -> &'static str;
    fn len(&self) -> usize;
    /// Statements of at most `max_rows` rows and about `max_bytes` bytes (of payload), encoded.
    fn statements(&self, records: &[ConsumedRecord], max_rows: usize, max_bytes: usize)
    -> Result<Vec<Encoded>, String>;
}

/// A table's statements, encoded ahead of the write: or why its rows cannot be encoded.
pub(crate) type TableStatements = (&'static str, Result<Vec<Encoded>, String>);

impl<E: Described> AnyTable for Table<E>
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
        let weight = |row: &Row<E::ActiveModel>| match self.carries_payload() {
            true => records[row.record].payload.as_ref().map_or(0, Vec::len),
            false => 256,
        };
        chunks(&self.rows, max_rows, max_bytes, weight).into_iter().map(|(_, rows)| self.encode(rows)).collect()
    }
}

/// A table written by its entity's rule, or by `rule` (a second kind of row of one table).
macro_rules! table {
    ($entity:ty) => {
        Table::<$entity>::described()
    };
    ($entity:ty, $rule:expr) => {
        Table::<$entity>::new(&$rule)
    };
}

macro_rules! tables {
    ($($(#[$doc:meta])* $field:ident: $entity:ty $(= $rule:expr)?;)*) => {
        /// A batch's rows, table by table.
        pub(crate) struct Tables {
            $($(#[$doc])* pub(crate) $field: Table<$entity>,)*
        }

        impl Default for Tables {
            fn default() -> Self {
                Self { $($field: table!($entity $(, $rule)?),)* }
            }
        }

        impl Tables {
            /// The tables in the order they are written.
            pub(crate) fn in_order(&self) -> [&dyn AnyTable; [$(stringify!($field)),*].len()] {
                [$(&self.$field as &dyn AnyTable),*]
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
            pub(crate) fn prepare(&mut self, left_out: &mut LeftOut) {
                $(self.$field.prepare(left_out);)*
            }
        }
    };
}

tables! {
    twitter_users: twitter_users::Entity;
    twitter_data: twitter_data::Entity;
    mastodon_statuses: mastodon_statuses::Entity;
    mastodon_status_deletions: mastodon_status_deletions::Entity;
    // Instagram: the accounts first (a post points at its owner, a snapshot at its profile), then the posts,
    // then what points at a post.
    instagram_profiles: instagram_profiles::Entity;
    /// Minimal profile rows for the accounts a record refers to: written only where the account has no row,
    /// so one never overwrites a scraped profile, and two writers adding one account do not conflict.
    instagram_referenced_profiles: instagram_profiles::Entity = INSTAGRAM_REFERENCED_PROFILES;
    instagram_profile_snapshots: instagram_profile_snapshots::Entity;
    instagram_posts: instagram_posts::Entity;
    instagram_hashtags: instagram_hashtags::Entity;
    instagram_post_hashtags: instagram_post_hashtags::Entity;
    instagram_comments: instagram_comments::Entity;
    instagram_post_tagged_users: instagram_post_tagged_users::Entity;
    // Bluesky: a deletion marks its record's row whichever is written first (a trigger).
    bluesky_posts: bluesky_posts::Entity;
    bluesky_interactions: bluesky_interactions::Entity;
    bluesky_deletions: bluesky_deletions::Entity;
    bluesky_account_events: bluesky_account_events::Entity;
}

impl Tables {
    /// The name of every table rows are written to, each once, in the order they are written.
    pub(crate) fn names() -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Vec::new();
        for name in Self::default().in_order().map(|table| table.name()) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

/// A minimal row with a username beats one without; a row is never overwritten.
static INSTAGRAM_REFERENCED_PROFILES: Upsert<instagram_profiles::Column> =
    Upsert::Once { key: &[instagram_profiles::Column::UserId], preferred: Some(instagram_profiles::Column::Username) };

#[cfg(test)]
mod tests {
    //! SeaORM's entities are the schema's one source of truth: every column of every table a mapping writes
    //! is written by it, with a value of the column's type (the encoder refuses any other), or is one the
    //! database fills.
    use std::collections::BTreeSet;

    use sea_orm::{ActiveModelTrait, ActiveValue, EntityTrait, IdenStatic, Iterable};

    use super::*;

    #[test]
    fn the_tables_written_are_those_whose_description_has_an_upsert_rule() {
        let listed: BTreeSet<&str> = Tables::names().into_iter().collect();
        let described: BTreeSet<&str> =
            entity::tables().into_iter().filter(|facts| facts.written).map(|facts| facts.table).collect();
        assert_eq!(listed, described, "a table with an upsert rule goes in `tables!`, and one in it needs a rule");
    }
    use crate::batch::{Batch, Routes};

    /// Columns the database fills (defaults), by table; `*` is every table.
    const FILLED_BY_THE_DATABASE: &[(&str, &str)] = &[
        ("*", "ingested_at"),
        ("instagram_hashtags", "first_seen_at"),
        ("mastodon_statuses", "deleted_at"),
        ("bluesky_posts", "deleted_at"),
        ("bluesky_interactions", "deleted_at"),
    ];

    /// Tables whose rows are placeholders that write only some columns, and those columns.
    const PARTIAL: &[(&str, &[&str])] = &[("instagram_referenced_profiles", &["user_id", "username"])];

    fn record(topic: &str, source: &str, headers: &[(&str, &str)], fixture: &str) -> ConsumedRecord {
        let path = format!("{}/tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
        let mut all = vec![("source", source), ("scraped_at", "2025-06-01T12:00:05Z")];
        all.extend_from_slice(headers);
        ConsumedRecord {
            topic: topic.into(),
            partition: 0,
            offset: 0,
            key: None,
            payload: Some(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))),
            headers: all.iter().map(|(k, v)| (k.to_string(), Some(v.as_bytes().to_vec()))).collect(),
            timestamp: None,
        }
    }

    /// One record of each format, each filling as much as its format can.
    fn batch() -> Batch {
        let routes = Routes::default();
        let topic = |name| crate::mapping::named(name).unwrap().topic().default;
        let hashtag = [("instagram_hashtag", "coffee"), ("instagram_hashtag_id", "17843853986012965")];
        let records = vec![
            record(topic("tweets"), "x.sample", &[], "x_stream/full.json"),
            record(topic("mastodon-statuses"), "sse.mastodon", &[], "mastodon/status.json"),
            record(
                topic("mastodon-statuses"),
                "sse.mastodon",
                &[("sse_event", "delete"), ("instance", "hachyderm.io")],
                "mastodon/delete.txt",
            ),
            record(
                topic("instagram-profiles"),
                "instagram.graph.business_discovery",
                &[],
                "instagram/graph_profile_ig_id.json",
            ),
            record(topic("instagram-profiles"), "instagram.web.profile", &[], "instagram/web_profile.json"),
            record(
                topic("instagram-media"),
                "instagram.graph.hashtag.recent_media",
                &hashtag,
                "instagram/graph_hashtag_media.json",
            ),
            record(topic("instagram-media"), "instagram.web.profile", &[], "instagram/web_node.json"),
            record(topic("bluesky-events"), "bluesky.jetstream", &[], "bluesky/post_full.json"),
            record(topic("bluesky-events"), "bluesky.jetstream", &[], "bluesky/like.json"),
            record(topic("bluesky-events"), "bluesky.jetstream", &[], "bluesky/post_delete.json"),
            record(topic("bluesky-events"), "bluesky.jetstream", &[], "bluesky/account_takendown.json"),
        ];
        let batch = Batch::decode(records, &routes);
        assert_eq!(batch.dead_letters, vec![], "every fixture maps");
        batch
    }

    /// The columns of `table` that its rows leave unwritten.
    fn unwritten<E: EntityTrait>(field: &str, table: &Table<E>) -> BTreeSet<String> {
        let name = E::default().table_name();
        let partial = PARTIAL.iter().find(|(f, _)| *f == field).map(|(_, columns)| *columns);
        let written = |row: &Row<E::ActiveModel>, column: E::Column| {
            !matches!(row.model.get(column), ActiveValue::NotSet)
                || (crate::table::is_raw(&column) && row.raw.is_some())
        };
        E::Column::iter()
            .filter(|c| !FILLED_BY_THE_DATABASE.iter().any(|(t, col)| (*t == "*" || *t == name) && *col == c.as_str()))
            .filter(|c| partial.is_none_or(|columns| columns.contains(&c.as_str())))
            .filter(|c| table.rows.iter().any(|row| !written(row, *c)))
            .map(|c| c.as_str().to_owned())
            .collect()
    }

    #[test]
    fn every_entity_column_is_written_by_its_mapping_with_its_type() {
        let batch = batch();
        let tables = &batch.rows.tables;
        macro_rules! check {
            ($($field:ident),*) => {$(
                assert!(!tables.$field.rows.is_empty(), "no fixture fills {}", stringify!($field));
                assert_eq!(unwritten(stringify!($field), &tables.$field), BTreeSet::new(), "{}", stringify!($field));
            )*};
        }
        check!(
            twitter_users,
            twitter_data,
            mastodon_statuses,
            mastodon_status_deletions,
            instagram_profiles,
            instagram_referenced_profiles,
            instagram_profile_snapshots,
            instagram_posts,
            instagram_hashtags,
            instagram_post_hashtags,
            instagram_comments,
            instagram_post_tagged_users,
            bluesky_posts,
            bluesky_interactions,
            bluesky_deletions,
            bluesky_account_events
        );
        // Every value is of its column's type: the encoder takes nothing else.
        for (table, statements) in batch.rows.encoded.as_ref().expect("a decoded batch is encoded") {
            assert!(statements.is_ok(), "{table}: {statements:?}", statements = statements.as_ref().err());
        }
    }

    #[test]
    fn rows_are_written_in_key_order_so_that_two_members_lock_shared_rows_alike() {
        // Two members' batches naming the same authors in other orders would otherwise deadlock.
        let mut users = Table::<twitter_users::Entity>::described();
        for (record, user_id) in [30_i64, 10, 1_000_000_000_000, 20].into_iter().enumerate() {
            users.push(
                record,
                twitter_users::ActiveModel { user_id: ActiveValue::Set(user_id), ..Default::default() },
                None,
            );
        }
        users.prepare(&mut Default::default());
        let order: Vec<(i64, usize)> = users.rows.iter().map(|row| (*row.model.user_id.as_ref(), row.record)).collect();
        assert_eq!(order, [(10, 1), (20, 3), (30, 0), (1_000_000_000_000, 2)]);
    }

    #[test]
    fn a_value_of_another_type_than_its_column_is_refused() {
        // What a mapping that set a column from the wrong kind of value would send.
        let wire = crate::encode::Wire::of(&twitter_data::Column::TweetId).unwrap();
        let mut array = wire.array(1);
        let error = array.push(&sea_orm::Value::String(Some("1".into())), "tweet_id").unwrap_err();
        assert!(error.contains("tweet_id") && error.contains("bigint"), "{error}");
        let wire = crate::encode::Wire::of(&twitter_data::Column::Hashtags).unwrap();
        assert!(wire.array(1).push(&sea_orm::Value::BigInt(Some(1)), "hashtags").is_err());
    }
}
