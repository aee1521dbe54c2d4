//! `instagram_post_tagged_users`: the accounts tagged in a post.

use sea_orm::entity::prelude::*;

use crate::description::{Described, Description, Upsert};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "instagram_post_tagged_users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub media_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i64,
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
        belongs_to = "super::instagram_profiles::Entity",
        from = "Column::UserId",
        to = "super::instagram_profiles::Column::UserId",
        on_delete = "Cascade"
    )]
    User,
}

impl ActiveModelBehavior for ActiveModel {}

impl Described for Entity {
    const DESCRIPTION: &'static Description<Column> = &Description {
        // Links are only added, like the hashtags'.
        upsert: Some(Upsert::Once { key: &[Column::MediaId, Column::UserId], preferred: None }),
        indexed: &[],
        partitioned: false,
        published: true,
        self_reference: None,
    };
}
