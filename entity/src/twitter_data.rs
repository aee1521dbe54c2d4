//! `twitter_data`: one row per X post, typed columns beside the raw stream JSON.

use sea_orm::entity::prelude::*;

use crate::description::{Described, Description, Guard, TooLong, Upsert, indexed};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "twitter_data")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tweet_id: i64,
    #[sea_orm(column_type = "Text")]
    pub text: String,
    pub author_id: Option<i64>,
    pub created_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub lang: Option<String>,
    pub conversation_id: Option<i64>,
    pub in_reply_to_user_id: Option<i64>,
    /// The post this one replies to (`referenced_posts` of type `replied_to`).
    pub replied_to_id: Option<i64>,
    pub quoted_id: Option<i64>,
    pub retweeted_id: Option<i64>,
    pub retweet_count: Option<i64>,
    pub reply_count: Option<i64>,
    pub like_count: Option<i64>,
    pub quote_count: Option<i64>,
    pub bookmark_count: Option<i64>,
    pub impression_count: Option<i64>,
    pub possibly_sensitive: Option<bool>,
    /// Tags without `#`, as written.
    pub hashtags: Vec<String>,
    /// Usernames without `@`.
    pub mentions: Vec<String>,
    /// Expanded URLs.
    pub urls: Vec<String>,
    /// The scraper source that produced the record (`x.sample`, `replay`, ...): the Kafka `source` header.
    #[sea_orm(column_type = "Text")]
    pub source: String,
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
            key: &[Column::TweetId],
            kept_when_missing: &[
                Column::AuthorId,
                Column::CreatedAt,
                Column::Lang,
                Column::ConversationId,
                Column::InReplyToUserId,
                Column::RepliedToId,
                Column::QuotedId,
                Column::RetweetedId,
                Column::RetweetCount,
                Column::ReplyCount,
                Column::LikeCount,
                Column::QuoteCount,
                Column::BookmarkCount,
                Column::ImpressionCount,
                Column::PossiblySensitive,
            ],
            replaced: &[Column::Text, Column::Hashtags, Column::Mentions, Column::Urls],
            first_known: &[],
            metadata: &[Column::Source, Column::Raw, Column::ScrapedAt],
            version: None,
        })),
        // GIN over text[]: each element is an index entry, so a long one is removed and the post keeps the rest.
        indexed: &[indexed(Column::Hashtags, TooLong::LeaveOut), indexed(Column::Mentions, TooLong::LeaveOut)],
        partitioned: true,
        published: true,
        self_reference: None,
    };
}
