//! `twitter_users`: the latest profile of each author seen in a stream's `includes.users`.

use sea_orm::entity::prelude::*;

use crate::description::{Described, Description, Guard, TooLong, Upsert, indexed};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "twitter_users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i64,
    #[sea_orm(column_type = "Text")]
    pub username: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub name: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub description: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub location: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub url: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub profile_image_url: Option<String>,
    pub verified: Option<bool>,
    #[sea_orm(column_type = "Text", nullable)]
    pub verified_type: Option<String>,
    pub protected: Option<bool>,
    pub created_at: Option<DateTimeUtc>,
    pub followers_count: Option<i64>,
    pub following_count: Option<i64>,
    pub tweet_count: Option<i64>,
    pub listed_count: Option<i64>,
    pub like_count: Option<i64>,
    #[sea_orm(column_type = "JsonBinary")]
    pub raw: Json,
    pub scraped_at: DateTimeUtc,
    pub ingested_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Described for Entity {
    const DESCRIPTION: &'static Description<Column> = &Description {
        upsert: Some(Upsert::Guarded(Guard {
            key: &[Column::UserId],
            kept_when_missing: &[
                Column::Name,
                Column::Description,
                Column::Location,
                Column::Url,
                Column::ProfileImageUrl,
                Column::Verified,
                Column::VerifiedType,
                Column::Protected,
                Column::CreatedAt,
                Column::FollowersCount,
                Column::FollowingCount,
                Column::TweetCount,
                Column::ListedCount,
                Column::LikeCount,
            ],
            replaced: &[Column::Username],
            first_known: &[],
            metadata: &[Column::Raw, Column::ScrapedAt],
            version: None,
        })),
        // btree over lower(username), NOT NULL: a user without a username is no row.
        indexed: &[indexed(Column::Username, TooLong::DropRow)],
        partitioned: false,
        published: true,
        self_reference: None,
    };
}
