//! `mastodon_status_deletions`: the statuses a stream said were deleted (Mastodon's `delete` event), each
//! once. A trigger marks the status's row (`mastodon_statuses.deleted_at`), whether the row is written
//! before or after the deletion.

use sea_orm::entity::prelude::*;

use crate::description::{Described, Description, Upsert};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "mastodon_status_deletions")]
pub struct Model {
    /// The instance whose stream said so: the status is `(instance, status_id)` in `mastodon_statuses`.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub instance: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub status_id: i64,
    /// When the scraper read the `delete` event (Mastodon sends no time of its own).
    pub deleted_at: DateTimeUtc,
    /// The `source` header, e.g. `sse.mastodon`.
    #[sea_orm(column_type = "Text")]
    pub source: String,
    pub ingested_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Described for Entity {
    const DESCRIPTION: &'static Description<Column> = &Description {
        // The first deletion read stands: a status is deleted once.
        upsert: Some(Upsert::Once { key: &[Column::Instance, Column::StatusId], preferred: None }),
        indexed: &[],
        partitioned: false,
        published: true,
        self_reference: None,
    };
}
