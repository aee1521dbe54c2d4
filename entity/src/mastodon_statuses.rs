//! `mastodon_statuses`: one row per Mastodon status (the REST API's Status entity, as streamed), its content
//! as HTML and as plain text, typed columns beside the raw JSON.

use sea_orm::entity::prelude::*;

use crate::description::{Described, Description, Guard, TooLong, Upsert, indexed};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "mastodon_statuses")]
pub struct Model {
    /// The instance that served the status (the stream's host): `id` and `account_id` are its own numbers.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub instance: String,
    /// The serving instance's id for the status: a 64-bit snowflake, sent as a decimal string.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i64,
    /// The HTML page of the status; Mastodon sends null for some (reblogs, some remote statuses).
    #[sea_orm(column_type = "Text", nullable)]
    pub url: Option<String>,
    /// The ActivityPub id: unique across the fediverse, unlike `id`.
    #[sea_orm(column_type = "Text")]
    pub uri: String,
    pub created_at: DateTimeUtc,
    pub account_id: i64,
    /// `user@domain` for remote accounts, the bare username for the instance's own.
    #[sea_orm(column_type = "Text")]
    pub account_acct: String,
    #[sea_orm(column_type = "Text")]
    pub account_username: String,
    /// `content` as sent: sanitized HTML.
    #[sea_orm(column_type = "Text")]
    pub content_html: String,
    /// `content` as plain text: tags stripped, line and paragraph breaks kept, entities decoded.
    #[sea_orm(column_type = "Text")]
    pub content_text: String,
    /// The content warning; empty when there is none.
    #[sea_orm(column_type = "Text")]
    pub spoiler_text: String,
    /// `public`, `unlisted`, `private`, `direct` (forks add others).
    #[sea_orm(column_type = "Text")]
    pub visibility: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub language: Option<String>,
    pub sensitive: Option<bool>,
    pub in_reply_to_id: Option<i64>,
    /// The id of the status this one reblogs (its `reblog`, kept whole in `raw`).
    pub reblog_of_id: Option<i64>,
    /// Tag names without `#`, lower-cased.
    pub tags: Vec<String>,
    /// The `acct` of each mentioned account.
    pub mentions: Vec<String>,
    pub reblogs_count: Option<i64>,
    pub favourites_count: Option<i64>,
    pub replies_count: Option<i64>,
    pub edited_at: Option<DateTimeUtc>,
    /// When a stream said the status was deleted (`mastodon_status_deletions`); NULL while it is live. Set by
    /// the database, never by a scrape.
    pub deleted_at: Option<DateTimeUtc>,
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
        // What a status always carries is replaced by a newer scrape (an edit changes content, tags, mentions);
        // what may come as null keeps the known value.
        upsert: Some(Upsert::Guarded(Guard {
            key: &[Column::Instance, Column::Id],
            kept_when_missing: &[
                Column::Url,
                Column::Language,
                Column::Sensitive,
                Column::InReplyToId,
                Column::ReblogOfId,
                Column::ReblogsCount,
                Column::FavouritesCount,
                Column::RepliesCount,
                Column::EditedAt,
            ],
            replaced: &[
                Column::Uri,
                Column::CreatedAt,
                Column::AccountId,
                Column::AccountAcct,
                Column::AccountUsername,
                Column::ContentHtml,
                Column::ContentText,
                Column::SpoilerText,
                Column::Visibility,
                Column::Tags,
                Column::Mentions,
            ],
            first_known: &[],
            metadata: &[Column::Raw, Column::ScrapedAt],
            version: Some(Column::EditedAt),
        })),
        // GIN over text[], as `twitter_data`'s.
        indexed: &[indexed(Column::Tags, TooLong::LeaveOut), indexed(Column::Mentions, TooLong::LeaveOut)],
        partitioned: true,
        published: true,
        self_reference: None,
    };
}
