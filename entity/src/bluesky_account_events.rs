//! `bluesky_account_events`: Jetstream's `identity` events (an account's handle changed) and `account` events
//! (an account activated, deactivated, taken down, suspended, deleted), one row per event, append-only. The
//! view `bluesky_accounts` reads each account's latest handle and status from them.

use sea_orm::entity::prelude::*;

use crate::description::{Described, Description, Upsert};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "bluesky_account_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub did: String,
    /// The relay's sequence number of the event.
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    /// The event's own `time` (of its `identity` or `account` object): the partition key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_at: DateTimeUtc,
    /// `identity` or `account`.
    #[sea_orm(column_type = "Text")]
    pub kind: String,
    /// Identity events: the account's handle, when the event carries one.
    #[sea_orm(column_type = "Text", nullable)]
    pub handle: Option<String>,
    /// Account events: whether the account is active.
    pub active: Option<bool>,
    /// Account events: why it is not active (`takendown`, `suspended`, `deleted`, `deactivated`, ...); NULL
    /// when it is.
    #[sea_orm(column_type = "Text", nullable)]
    pub status: Option<String>,
    /// The whole Jetstream event.
    #[sea_orm(column_type = "JsonBinary")]
    pub raw: Json,
    #[sea_orm(column_type = "Text")]
    pub source: String,
    pub scraped_at: DateTimeUtc,
    pub ingested_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Described for Entity {
    const DESCRIPTION: &'static Description<Column> = &Description {
        // Append-only: a replayed event is already there.
        upsert: Some(Upsert::Once { key: &[Column::Did, Column::Seq, Column::EventAt], preferred: None }),
        indexed: &[],
        partitioned: true,
        published: true,
        self_reference: None,
    };
}
