//! `instagram_profiles`: one row per Instagram account, keyed by its web id (the Graph id until a record
//! names the web id; then the rows merge), with the Graph API's id for it in `graph_user_id`. A minimal row
//! (referenced before it was scraped) has no `raw` and no `scraped_at`.

use sea_orm::entity::prelude::*;

use crate::description::{Described, Description, Guard, TooLong, Upsert, indexed};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "instagram_profiles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i64,
    #[sea_orm(unique)]
    pub graph_user_id: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub username: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub full_name: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub biography: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub external_url: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub profile_pic_url: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub category: Option<String>,
    pub is_private: Option<bool>,
    pub is_verified: Option<bool>,
    pub is_business: Option<bool>,
    pub followers_count: Option<i64>,
    pub follows_count: Option<i64>,
    pub media_count: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub source: Option<String>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub raw: Option<Json>,
    pub scraped_at: Option<DateTimeUtc>,
    pub ingested_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::instagram_profile_snapshots::Entity")]
    Snapshots,
    #[sea_orm(has_many = "super::instagram_posts::Entity")]
    Posts,
}

impl Related<super::instagram_profile_snapshots::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Snapshots.def()
    }
}

impl Related<super::instagram_posts::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Posts.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

impl Described for Entity {
    const DESCRIPTION: &'static Description<Column> = &Description {
        // The Graph API and the web send different fields of a profile: what one leaves out keeps the other's value.
        // The Graph id comes only from a Graph scrape that names the web id: set once and kept, an older scrape's
        // included.
        upsert: Some(Upsert::Guarded(Guard {
            key: &[Column::UserId],
            kept_when_missing: &[
                Column::Username,
                Column::FullName,
                Column::Biography,
                Column::ExternalUrl,
                Column::ProfilePicUrl,
                Column::Category,
                Column::IsPrivate,
                Column::IsVerified,
                Column::IsBusiness,
                Column::FollowersCount,
                Column::FollowsCount,
                Column::MediaCount,
            ],
            replaced: &[],
            first_known: &[Column::GraphUserId],
            metadata: &[Column::Source, Column::Raw, Column::ScrapedAt],
            version: None,
        })),
        // btree over lower(username), nullable: NULL keeps the known username (the upsert coalesces it).
        indexed: &[indexed(Column::Username, TooLong::LeaveOut)],
        partitioned: false,
        published: true,
        self_reference: None,
    };
}
