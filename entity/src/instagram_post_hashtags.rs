//! `instagram_post_hashtags`: which post carries which hashtag.

use sea_orm::entity::prelude::*;

use crate::description::{Described, Description, TooLong, Upsert, indexed};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "instagram_post_hashtags")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub media_id: i64,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub hashtag: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::instagram_posts::Entity",
        from = "Column::MediaId",
        to = "super::instagram_posts::Column::MediaId",
        on_delete = "Cascade"
    )]
    Post,
    #[sea_orm(
        belongs_to = "super::instagram_hashtags::Entity",
        from = "Column::Hashtag",
        to = "super::instagram_hashtags::Column::Name",
        on_delete = "Cascade"
    )]
    Hashtag,
}

impl ActiveModelBehavior for ActiveModel {}

impl Described for Entity {
    const DESCRIPTION: &'static Description<Column> = &Description {
        // Links are only added: a caption edited to drop a tag leaves its link.
        upsert: Some(Upsert::Once { key: &[Column::MediaId, Column::Hashtag], preferred: None }),
        // In the primary key (media_id, hashtag) and the (hashtag, media_id) index; the same names are dropped
        // from `instagram_hashtags`, which the link references.
        indexed: &[indexed(Column::Hashtag, TooLong::DropRow)],
        partitioned: false,
        published: true,
        self_reference: None,
    };
}
