//! `ingest_errors`: the dead-letter table. A Kafka record the inserter could not store, byte for byte, with
//! the reason.

use sea_orm::entity::prelude::*;

use crate::description::{Described, Description};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "ingest_errors")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "Text")]
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// The record's value exactly as consumed, even when it is not UTF-8.
    pub payload: Option<Vec<u8>>,
    /// The record's Kafka headers as a JSON object (values that are not UTF-8 are hex-encoded).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub headers: Option<Json>,
    #[sea_orm(column_type = "Text")]
    pub error: String,
    pub failed_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Described for Entity {
    const DESCRIPTION: &'static Description<Column> = &Description::BOOKKEEPING;
}
