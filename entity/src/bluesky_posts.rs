//! `bluesky_posts`: one row per Bluesky post record (collection `app.bsky.feed.post`), as Jetstream sends
//! its commit: typed columns beside the whole event.

use sea_orm::entity::prelude::*;

use crate::description::{Described, Description, Guard, TooLong, Upsert, indexed};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "bluesky_posts")]
pub struct Model {
    /// The author's DID: the repository the record is in.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub did: String,
    /// The record key, a TID (13 characters of base32-sortable).
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub rkey: String,
    /// The time the record key encodes (when the author's client made the record): the partition key, and so
    /// part of the primary key. It follows from `rkey`, and never changes.
    #[sea_orm(primary_key, auto_increment = false)]
    pub rkey_at: DateTimeUtc,
    /// `at://DID/app.bsky.feed.post/RKEY`.
    #[sea_orm(column_type = "Text")]
    pub uri: String,
    /// The content id of the record's current version.
    #[sea_orm(column_type = "Text")]
    pub cid: String,
    /// The record's `createdAt`, as the client claims it; NULL when it is not a valid time.
    pub created_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text")]
    pub text: String,
    /// The record's `langs` (BCP 47 tags), as sent.
    pub langs: Vec<String>,
    /// The post this one replies to (`reply.parent.uri`).
    #[sea_orm(column_type = "Text", nullable)]
    pub reply_parent_uri: Option<String>,
    /// The first post of the thread (`reply.root.uri`).
    #[sea_orm(column_type = "Text", nullable)]
    pub reply_root_uri: Option<String>,
    /// The post this one quotes (an `app.bsky.embed.record` embed).
    #[sea_orm(column_type = "Text", nullable)]
    pub quoted_uri: Option<String>,
    /// Tags without `#`.
    pub hashtags: Vec<String>,
    /// The DIDs of the accounts the post mentions.
    pub mentions: Vec<String>,
    /// The URLs the post links to.
    pub links: Vec<String>,
    /// Jetstream's `time_us` of the event that last wrote the row: the row's version.
    pub event_at: DateTimeUtc,
    /// When Jetstream said the record was deleted (`bluesky_deletions`); NULL while it is live. Set by the
    /// database, never by a scrape.
    pub deleted_at: Option<DateTimeUtc>,
    /// The whole Jetstream event.
    #[sea_orm(column_type = "JsonBinary")]
    pub raw: Json,
    /// The `source` header, e.g. `bluesky.jetstream`.
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
        // A record is replaced whole by its update event; `event_at` is its version, so an older event (a
        // replay, a second stream) never replaces a newer one, and a replayed one writes nothing.
        upsert: Some(Upsert::Guarded(Guard {
            key: &[Column::Did, Column::Rkey, Column::RkeyAt],
            kept_when_missing: &[],
            replaced: &[
                Column::Uri,
                Column::Cid,
                Column::CreatedAt,
                Column::Text,
                Column::Langs,
                Column::ReplyParentUri,
                Column::ReplyRootUri,
                Column::QuotedUri,
                Column::Hashtags,
                Column::Mentions,
                Column::Links,
            ],
            first_known: &[],
            metadata: &[Column::Raw, Column::Source, Column::ScrapedAt, Column::EventAt],
            version: Some(Column::EventAt),
        })),
        // GIN over text[], as `twitter_data`'s; the thread index's root URI becomes NULL when too long. The key's
        // text (`did`, `rkey`) is bounded by CHECK and by the contract's AT Protocol checks, well within a
        // btree entry.
        indexed: &[
            indexed(Column::Hashtags, TooLong::LeaveOut),
            indexed(Column::Mentions, TooLong::LeaveOut),
            indexed(Column::ReplyRootUri, TooLong::LeaveOut),
        ],
        partitioned: true,
        published: true,
        self_reference: None,
    };
}
