//! `bluesky_interactions`: one row per like (`app.bsky.feed.like`), repost (`app.bsky.feed.repost`) or follow
//! (`app.bsky.graph.follow`) record, as Jetstream sends its commit.

use sea_orm::entity::prelude::*;

use crate::description::{Described, Description, Guard, TooLong, Upsert, indexed};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "bluesky_interactions")]
pub struct Model {
    /// The DID of the account that liked, reposted or followed.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub did: String,
    /// `app.bsky.feed.like`, `app.bsky.feed.repost` or `app.bsky.graph.follow`.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub collection: String,
    /// The record key, a TID.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub rkey: String,
    /// The time the record key encodes: the partition key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub rkey_at: DateTimeUtc,
    /// `at://DID/COLLECTION/RKEY`.
    #[sea_orm(column_type = "Text")]
    pub uri: String,
    #[sea_orm(column_type = "Text")]
    pub cid: String,
    /// Likes and reposts: the `at://` URI of the post liked or reposted; NULL for follows.
    #[sea_orm(column_type = "Text", nullable)]
    pub subject_uri: Option<String>,
    /// Likes and reposts: the content id of the post's version; NULL for follows.
    #[sea_orm(column_type = "Text", nullable)]
    pub subject_cid: Option<String>,
    /// Follows: the followed DID; likes and reposts: the DID of the subject post's author.
    #[sea_orm(column_type = "Text", nullable)]
    pub subject_did: Option<String>,
    /// The record's `createdAt`, as the client claims it; NULL when it is not a valid time.
    pub created_at: Option<DateTimeUtc>,
    /// Jetstream's `time_us` of the event that last wrote the row: the row's version.
    pub event_at: DateTimeUtc,
    /// When Jetstream said the record was deleted (`bluesky_deletions`); NULL while it stands. Set by the
    /// database, never by a scrape.
    pub deleted_at: Option<DateTimeUtc>,
    /// The whole Jetstream event.
    #[sea_orm(column_type = "JsonBinary")]
    pub raw: Json,
    #[sea_orm(column_type = "Text")]
    pub source: String,
    pub scraped_at: DateTimeUtc,
    pub ingested_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Described for Entity {
    const DESCRIPTION: &'static Description<Column> = &Description {
        // As `bluesky_posts`: `event_at` is the version.
        upsert: Some(Upsert::Guarded(Guard {
            key: &[Column::Did, Column::Collection, Column::Rkey, Column::RkeyAt],
            kept_when_missing: &[],
            replaced: &[
                Column::Uri,
                Column::Cid,
                Column::SubjectUri,
                Column::SubjectCid,
                Column::SubjectDid,
                Column::CreatedAt,
            ],
            first_known: &[],
            metadata: &[Column::Raw, Column::Source, Column::ScrapedAt, Column::EventAt],
            version: Some(Column::EventAt),
        })),
        // The subject indexes (a post's likes, an account's followers): NULL when too long. The key's text is
        // bounded by CHECKs (`collection` is one of three).
        indexed: &[indexed(Column::SubjectUri, TooLong::LeaveOut), indexed(Column::SubjectDid, TooLong::LeaveOut)],
        partitioned: true,
        published: true,
        self_reference: None,
    };
}
