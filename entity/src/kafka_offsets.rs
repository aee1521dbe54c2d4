//! `kafka_offsets`: the next offset each consumer group reads per partition, committed in the same
//! transaction as the rows it covers.

use sea_orm::entity::prelude::*;

use crate::description::{Described, Description};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "kafka_offsets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub consumer_group: String,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub topic: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub partition: i32,
    pub next_offset: i64,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Described for Entity {
    const DESCRIPTION: &'static Description<Column> = &Description::BOOKKEEPING;
}
