//! `instagram_comments`: comments on posts; a reply points at its parent comment.

use sea_orm::entity::prelude::*;

use crate::description::{Described, Description, Guard, SelfReference, Upsert};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "instagram_comments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub comment_id: i64,
    pub media_id: i64,
    pub parent_comment_id: Option<i64>,
    pub author_id: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub author_username: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub text: String,
    pub like_count: Option<i64>,
    pub created_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text")]
    pub source: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub raw: Json,
    pub scraped_at: DateTimeUtc,
    pub ingested_at: DateTimeUtc,
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
    #[sea_orm(belongs_to = "Entity", from = "Column::ParentCommentId", to = "Column::CommentId", on_delete = "Cascade")]
    Parent,
    #[sea_orm(
        belongs_to = "super::instagram_profiles::Entity",
        from = "Column::AuthorId",
        to = "super::instagram_profiles::Column::UserId",
        on_delete = "Cascade"
    )]
    Author,
}

impl Related<super::instagram_posts::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Post.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

impl Described for Entity {
    const DESCRIPTION: &'static Description<Column> = &Description {
        upsert: Some(Upsert::Guarded(Guard {
            key: &[Column::CommentId],
            kept_when_missing: &[
                Column::ParentCommentId,
                Column::AuthorId,
                Column::AuthorUsername,
                Column::LikeCount,
                Column::CreatedAt,
            ],
            replaced: &[Column::MediaId, Column::Text],
            first_known: &[],
            metadata: &[Column::Source, Column::Raw, Column::ScrapedAt],
            version: None,
        })),
        indexed: &[],
        partitioned: false,
        published: true,
        // A reply names the comment it answers.
        self_reference: Some(SelfReference { key: Column::CommentId, parent: Column::ParentCommentId }),
    };
}
