//! `instagram_hashtags`: hashtags by lower-cased name; the Graph API's id where the hashtag search gave one.

use sea_orm::entity::prelude::*;

use crate::description::{Described, Description, TooLong, Upsert, indexed};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "instagram_hashtags")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub name: String,
    #[sea_orm(unique)]
    pub graph_hashtag_id: Option<i64>,
    pub first_seen_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl Related<super::instagram_posts::Entity> for Entity {
    fn to() -> RelationDef {
        super::instagram_post_hashtags::Relation::Post.def()
    }

    fn via() -> Option<RelationDef> {
        Some(super::instagram_post_hashtags::Relation::Hashtag.def().rev())
    }
}

impl ActiveModelBehavior for ActiveModel {}

impl Described for Entity {
    const DESCRIPTION: &'static Description<Column> = &Description {
        // A hashtag is written once; the Graph API's id is added when a hashtag search gives it, and then kept.
        upsert: Some(Upsert::FillOnce { key: &[Column::Name], column: Column::GraphHashtagId }),
        // The primary key.
        indexed: &[indexed(Column::Name, TooLong::DropRow)],
        partitioned: false,
        published: true,
        self_reference: None,
    };
}
