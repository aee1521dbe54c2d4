//! X API v2 stream lines (`twitter.tweets`) to a `twitter_data` row and `twitter_users` rows (from
//! `includes.users`). Both spellings of the fields X renamed are accepted: `referenced_tweets` /
//! `referenced_posts`, `retweet_count` / `repost_count`, `includes.tweets` / `includes.posts`.

use chrono::{DateTime, Utc};
use entity::{twitter_data, twitter_users};
use sea_orm::ActiveValue::{NotSet, Set};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

use super::json::{Id, null_as_default, parse_object, plain_text};
use contract::Topic;

use super::{DecodeError, Mapped, Mapping};
use crate::record::ConsumedRecord;
use crate::tables::Tables;

/// The X mapping, registered in [`super::MAPPINGS`].
pub(crate) static TWEETS: Tweets = Tweets;

pub(crate) struct Tweets;

impl Mapping for Tweets {
    fn topic(&self) -> &'static Topic {
        &contract::topic::TWEETS
    }

    fn reads_source(&self, source: &str) -> bool {
        // The synthetic generator's posts are X stream lines, on this topic only.
        source.starts_with(contract::source::X_PREFIX) || source == contract::source::REPLAY_SYNTHETIC
    }

    fn map(
        &self,
        index: usize,
        record: &ConsumedRecord,
        scraped_at: DateTime<Utc>,
        payload: &[u8],
        tables: &mut Tables,
    ) -> Result<(), DecodeError> {
        let TweetRows { tweet, users } = map(payload, record.source(), scraped_at)?;
        tables.twitter_data.push(index, tweet.model, Some(tweet.raw));
        for user in users {
            tables.twitter_users.push(index, user.model, Some(user.raw));
        }
        Ok(())
    }
}

/// The rows one stream line becomes, each with its JSON as sent. `ingested_at` is left to the database.
#[derive(Clone, Debug)]
pub struct TweetRows {
    pub tweet: Mapped<twitter_data::ActiveModel>,
    pub users: Vec<Mapped<twitter_users::ActiveModel>>,
}

/// Maps one stream line; `source` and `scraped_at` come from the record's headers. The line is read as it is
/// (its users borrowed from it), and only a line that fails is parsed into a tree, to say why.
pub fn map(payload: &[u8], source: &str, scraped_at: DateTime<Utc>) -> Result<TweetRows, DecodeError> {
    let fast = plain_text(payload).and_then(|text| {
        let line: StreamLine<&RawValue> = serde_json::from_str(text).ok()?;
        let users = line
            .includes
            .users
            .iter()
            .map(|user| Some(map_user(user.get(), serde_json::from_str(user.get()).ok()?, scraped_at)))
            .collect::<Option<Vec<_>>>()?;
        let post = line.data?;
        Some(TweetRows { tweet: post.into_row(text.into(), source, scraped_at), users })
    });
    match fast {
        Some(rows) => Ok(rows),
        None => map_tree(payload, source, scraped_at),
    }
}

/// [`map`] by way of a `serde_json::Value`: what a payload the fast path refuses is, or why it is refused.
fn map_tree(payload: &[u8], source: &str, scraped_at: DateTime<Utc>) -> Result<TweetRows, DecodeError> {
    let raw = parse_object(payload)?;
    let line: StreamLine<Value> = deserialize(&raw)?;
    let post = match line.data {
        Some(post) => post,
        None if !line.errors.is_empty() => return Err(DecodeError::SourceError(Value::Array(line.errors).to_string())),
        None => return Err(DecodeError::Shape("missing field `data`".into())),
    };
    let users = line
        .includes
        .users
        .iter()
        .enumerate()
        .map(|(i, user)| match deserialize::<User>(user) {
            Ok(parsed) => Ok(map_user(&user.to_string(), parsed, scraped_at)),
            Err(DecodeError::Shape(e)) => Err(DecodeError::Shape(format!("includes.users[{i}]: {e}"))),
            Err(e) => Err(e),
        })
        .collect::<Result<_, _>>()?;
    Ok(TweetRows { tweet: post.into_row(raw.to_string().into(), source, scraped_at), users })
}

fn deserialize<T: DeserializeOwned>(value: &Value) -> Result<T, DecodeError> {
    T::deserialize(value).map_err(|e| DecodeError::Shape(e.to_string()))
}

fn map_user(raw: &str, user: User, scraped_at: DateTime<Utc>) -> Mapped<twitter_users::ActiveModel> {
    Mapped { model: user.into_row(scraped_at), raw: raw.into() }
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "U: Deserialize<'de>"))]
struct StreamLine<U> {
    data: Option<Post>,
    #[serde(default = "Includes::default", deserialize_with = "null_as_default")]
    includes: Includes<U>,
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

#[derive(Deserialize)]
#[serde(bound(deserialize = "U: Deserialize<'de>"))]
struct Includes<U> {
    /// Kept as JSON until mapped, so that each user's `raw` is the object exactly as sent.
    #[serde(default = "Vec::new", deserialize_with = "null_as_default")]
    users: Vec<U>,
    /// Referenced posts (quoted, replied to): kept in the raw JSON, not mapped to rows of their own, because
    /// an expansion carries only the fields the stream requested and would overwrite fuller rows.
    #[serde(default, alias = "posts", deserialize_with = "null_as_default")]
    #[allow(dead_code)]
    tweets: Vec<serde::de::IgnoredAny>,
}

impl<U> Default for Includes<U> {
    fn default() -> Self {
        Self { users: Vec::new(), tweets: Vec::new() }
    }
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
    fn into_row(self, raw: Box<str>, source: &str, scraped_at: DateTime<Utc>) -> Mapped<twitter_data::ActiveModel> {
        let reference = |kind: &str| self.referenced_tweets.iter().find(|r| r.kind == kind).map(|r| r.id.0);
        let metrics = self.public_metrics.unwrap_or_default();
        let model = twitter_data::ActiveModel {
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
            raw: NotSet,
            scraped_at: Set(scraped_at),
            ingested_at: NotSet,
        };
        Mapped { model, raw }
    }
}

impl User {
    fn into_row(self, scraped_at: DateTime<Utc>) -> twitter_users::ActiveModel {
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
            raw: NotSet,
            scraped_at: Set(scraped_at),
            ingested_at: NotSet,
        }
    }
}
