//! `bluesky_deletions`: the records Jetstream said were deleted (a commit with operation `delete`), each
//! once. A trigger marks the record's row (`bluesky_posts.deleted_at`, `bluesky_interactions.deleted_at`),
//! whether the row is written before or after the deletion.

use sea_orm::entity::prelude::*;

use crate::description::{Described, Description, Upsert};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "bluesky_deletions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub did: String,
    /// `app.bsky.feed.post` (then the record is in `bluesky_posts`), `app.bsky.feed.like`,
    /// `app.bsky.feed.repost` or `app.bsky.graph.follow` (in `bluesky_interactions`).
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub collection: String,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub rkey: String,
    /// The time the record key encodes: the partition key, as in the record's own table.
    #[sea_orm(primary_key, auto_increment = false)]
    pub rkey_at: DateTimeUtc,
    /// Jetstream's `time_us` of the delete event.
    pub deleted_at: DateTimeUtc,
    /// The `source` header, e.g. `bluesky.jetstream`.
    #[sea_orm(column_type = "Text")]
    pub source: String,
    pub ingested_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Described for Entity {
    const DESCRIPTION: &'static Description<Column> = &Description {
        // The first deletion read stands: a record is deleted once.
        upsert: Some(Upsert::Once {
            key: &[Column::Did, Column::Collection, Column::Rkey, Column::RkeyAt],
            preferred: None,
        }),
        indexed: &[],
        partitioned: true,
        published: true,
        self_reference: None,
    };
}
