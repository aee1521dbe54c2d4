//! X API v2 stream lines (`twitter.tweets`) to a `twitter_data` row and `twitter_users` rows (from
//! `includes.users`). Both spellings of the fields X renamed are accepted: `referenced_tweets` /
//! `referenced_posts`, `retweet_count` / `repost_count`, `includes.tweets` / `includes.posts`.

use chrono::{DateTime, Utc};
use entity::{twitter_data, twitter_users};
use sea_orm::ActiveValue::{NotSet, Set};
use serde::Deserialize;
use serde_json::Value;

use super::DecodeError;
use super::json::{Id, null_as_default, parse_object};

/// The rows one stream line becomes. `ingested_at` is left to the database.
#[derive(Clone, Debug)]
pub struct TweetRows {
    pub tweet: twitter_data::ActiveModel,
    pub users: Vec<twitter_users::ActiveModel>,
}

/// Maps one stream line; `source` and `scraped_at` come from the record's headers.
pub fn map(payload: &[u8], source: &str, scraped_at: DateTime<Utc>) -> Result<TweetRows, DecodeError> {
    let raw = parse_object(payload)?;
    let line = StreamLine::deserialize(&raw).map_err(|e| DecodeError::Shape(e.to_string()))?;
    let post = match line.data {
        Some(post) => post,
        None if !line.errors.is_empty() => return Err(DecodeError::SourceError(Value::Array(line.errors).to_string())),
        None => return Err(DecodeError::Shape("missing field `data`".into())),
    };
    let users = line
        .includes
        .users
        .into_iter()
        .enumerate()
        .map(|(i, user)| match User::deserialize(&user) {
            Ok(parsed) => Ok(parsed.into_row(user, scraped_at)),
            Err(e) => Err(DecodeError::Shape(format!("includes.users[{i}]: {e}"))),
        })
        .collect::<Result<_, _>>()?;
    Ok(TweetRows { tweet: post.into_row(raw, source, scraped_at), users })
}

#[derive(Deserialize)]
struct StreamLine {
    data: Option<Post>,
    #[serde(default, deserialize_with = "null_as_default")]
    includes: Includes,
    #[serde(default, deserialize_with = "null_as_default")]
    errors: Vec<Value>,
}

#[derive(Deserialize)]
struct Post {
    id: Id,
    text: String,
    author_id: Option<Id>,
    created_at: Option<DateTime<Utc>>,
    lang: Option<String>,
    conversation_id: Option<Id>,
    in_reply_to_user_id: Option<Id>,
    #[serde(default, alias = "referenced_posts", deserialize_with = "null_as_default")]
    referenced_tweets: Vec<Reference>,
    public_metrics: Option<PostMetrics>,
    possibly_sensitive: Option<bool>,
    #[serde(default, deserialize_with = "null_as_default")]
    entities: Entities,
}

#[derive(Deserialize)]
struct Reference {
    #[serde(rename = "type")]
    kind: String,
    id: Id,
}

#[derive(Default, Deserialize)]
struct PostMetrics {
    #[serde(alias = "repost_count")]
    retweet_count: Option<i64>,
    reply_count: Option<i64>,
    like_count: Option<i64>,
    quote_count: Option<i64>,
    bookmark_count: Option<i64>,
    impression_count: Option<i64>,
}

#[derive(Default, Deserialize)]
struct Entities {
    #[serde(default, deserialize_with = "null_as_default")]
    hashtags: Vec<Hashtag>,
    #[serde(default, deserialize_with = "null_as_default")]
    mentions: Vec<Mention>,
    #[serde(default, deserialize_with = "null_as_default")]
    urls: Vec<Url>,
}

#[derive(Deserialize)]
struct Hashtag {
    tag: String,
}

#[derive(Deserialize)]
struct Mention {
    username: String,
}

#[derive(Deserialize)]
struct Url {
    url: Option<String>,
    expanded_url: Option<String>,
}

#[derive(Default, Deserialize)]
struct Includes {
    /// Kept as JSON until mapped, so that each user's `raw` is the object exactly as sent.
    #[serde(default, deserialize_with = "null_as_default")]
    users: Vec<Value>,
    /// Referenced posts (quoted, replied to): kept in the raw JSON, not mapped to rows of their own, because
    /// an expansion carries only the fields the stream requested and would overwrite fuller rows.
    #[serde(default, alias = "posts", deserialize_with = "null_as_default")]
    #[allow(dead_code)]
    tweets: Vec<Value>,
}

#[derive(Deserialize)]
struct User {
    id: Id,
    username: String,
    name: Option<String>,
    description: Option<String>,
    location: Option<String>,
    url: Option<String>,
    profile_image_url: Option<String>,
    verified: Option<bool>,
    verified_type: Option<String>,
    protected: Option<bool>,
    created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "null_as_default")]
    public_metrics: UserMetrics,
}

#[derive(Default, Deserialize)]
struct UserMetrics {
    followers_count: Option<i64>,
    following_count: Option<i64>,
    tweet_count: Option<i64>,
    listed_count: Option<i64>,
    like_count: Option<i64>,
}

impl Post {
    fn into_row(self, raw: Value, source: &str, scraped_at: DateTime<Utc>) -> twitter_data::ActiveModel {
        let reference = |kind: &str| self.referenced_tweets.iter().find(|r| r.kind == kind).map(|r| r.id.0);
        let metrics = self.public_metrics.unwrap_or_default();
        twitter_data::ActiveModel {
            tweet_id: Set(self.id.0),
            replied_to_id: Set(reference("replied_to")),
            quoted_id: Set(reference("quoted")),
            retweeted_id: Set(reference("retweeted").or(reference("reposted"))),
            text: Set(self.text),
            author_id: Set(self.author_id.map(|id| id.0)),
            created_at: Set(self.created_at),
            lang: Set(self.lang),
            conversation_id: Set(self.conversation_id.map(|id| id.0)),
            in_reply_to_user_id: Set(self.in_reply_to_user_id.map(|id| id.0)),
            retweet_count: Set(metrics.retweet_count),
            reply_count: Set(metrics.reply_count),
            like_count: Set(metrics.like_count),
            quote_count: Set(metrics.quote_count),
            bookmark_count: Set(metrics.bookmark_count),
            impression_count: Set(metrics.impression_count),
            possibly_sensitive: Set(self.possibly_sensitive),
            hashtags: Set(self.entities.hashtags.into_iter().map(|h| h.tag).collect()),
            mentions: Set(self.entities.mentions.into_iter().map(|m| m.username).collect()),
            urls: Set(self.entities.urls.into_iter().filter_map(|u| u.expanded_url.or(u.url)).collect()),
            source: Set(source.to_owned()),
            raw: Set(raw),
            scraped_at: Set(scraped_at),
            ingested_at: NotSet,
        }
    }
}

impl User {
    fn into_row(self, raw: Value, scraped_at: DateTime<Utc>) -> twitter_users::ActiveModel {
        let metrics = &self.public_metrics;
        twitter_users::ActiveModel {
            user_id: Set(self.id.0),
            username: Set(self.username),
            name: Set(self.name),
            description: Set(self.description),
            location: Set(self.location),
            url: Set(self.url),
            profile_image_url: Set(self.profile_image_url),
            verified: Set(self.verified),
            verified_type: Set(self.verified_type),
            protected: Set(self.protected),
            created_at: Set(self.created_at),
            followers_count: Set(metrics.followers_count),
            following_count: Set(metrics.following_count),
            tweet_count: Set(metrics.tweet_count),
            listed_count: Set(metrics.listed_count),
            like_count: Set(metrics.like_count),
            raw: Set(raw),
            scraped_at: Set(scraped_at),
            ingested_at: NotSet,
        }
    }
}
