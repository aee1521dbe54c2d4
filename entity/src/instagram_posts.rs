//! `instagram_posts`: one row per post, keyed by Instagram's canonical media id (the number its shortcode
//! encodes); `graph_media_id` is the Graph API's id for the same post.

use sea_orm::entity::prelude::*;

use crate::description::{Described, Description, Guard, TooLong, Upsert, indexed};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "instagram_posts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub media_id: i64,
    #[sea_orm(column_type = "Text", unique)]
    pub shortcode: String,
    #[sea_orm(unique)]
    pub graph_media_id: Option<i64>,
    pub owner_id: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub media_type: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub caption: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub permalink: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub media_url: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub thumbnail_url: Option<String>,
    pub taken_at: Option<DateTimeUtc>,
    pub like_count: Option<i64>,
    pub comments_count: Option<i64>,
    pub video_view_count: Option<i64>,
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
        belongs_to = "super::instagram_profiles::Entity",
        from = "Column::OwnerId",
        to = "super::instagram_profiles::Column::UserId",
        on_delete = "Cascade"
    )]
    Owner,
    #[sea_orm(has_many = "super::instagram_comments::Entity")]
    Comments,
}

impl Related<super::instagram_profiles::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Owner.def()
    }
}

impl Related<super::instagram_comments::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Comments.def()
    }
}

impl Related<super::instagram_hashtags::Entity> for Entity {
    fn to() -> RelationDef {
        super::instagram_post_hashtags::Relation::Hashtag.def()
    }

    fn via() -> Option<RelationDef> {
        Some(super::instagram_post_hashtags::Relation::Post.def().rev())
    }
}

impl ActiveModelBehavior for ActiveModel {}

impl Described for Entity {
    const DESCRIPTION: &'static Description<Column> = &Description {
        // Both APIs write one post row. The Graph id comes only from the Graph API, and the owner is a Graph id
        // from the one and a web id from the other (two numbers for one account): both are set once and kept.
        upsert: Some(Upsert::Guarded(Guard {
            key: &[Column::MediaId],
            kept_when_missing: &[
                Column::MediaType,
                Column::Caption,
                Column::Permalink,
                Column::MediaUrl,
                Column::ThumbnailUrl,
                Column::TakenAt,
                Column::LikeCount,
                Column::CommentsCount,
                Column::VideoViewCount,
            ],
            replaced: &[Column::Shortcode],
            first_known: &[Column::GraphMediaId, Column::OwnerId],
            metadata: &[Column::Source, Column::Raw, Column::ScrapedAt],
            version: None,
        })),
        // UNIQUE and NOT NULL. A Graph post's shortcode decodes to its media id (at most 11 characters), and the
        // web mapping dead-letters a longer code than this, since the post row is the record: this entry is the
        // backstop that keeps the catalog test honest, never reached by today's mappings.
        indexed: &[indexed(Column::Shortcode, TooLong::DropRow)],
        partitioned: false,
        published: true,
        self_reference: None,
    };
}
