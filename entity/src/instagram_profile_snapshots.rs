//! `instagram_profile_snapshots`: a profile's counts at each scrape, append-only.

use sea_orm::entity::prelude::*;

use crate::description::{Described, Description, Upsert};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "instagram_profile_snapshots")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub scraped_at: DateTimeUtc,
    pub followers_count: Option<i64>,
    pub follows_count: Option<i64>,
    pub media_count: Option<i64>,
    #[sea_orm(column_type = "Text")]
    pub source: String,
    pub ingested_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::instagram_profiles::Entity",
        from = "Column::UserId",
        to = "super::instagram_profiles::Column::UserId",
        on_delete = "Cascade"
    )]
    Profile,
}

impl Related<super::instagram_profiles::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Profile.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

impl Described for Entity {
    const DESCRIPTION: &'static Description<Column> = &Description {
        // Append-only: a replayed scrape is already there.
        upsert: Some(Upsert::Once { key: &[Column::UserId, Column::ScrapedAt], preferred: None }),
        indexed: &[],
        partitioned: true,
        published: true,
        self_reference: None,
    };
}
