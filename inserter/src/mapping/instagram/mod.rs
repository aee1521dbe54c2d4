//! Instagram records (`instagram.profiles`, `instagram.media`) to rows. A record is one profile or one media
//! object of the Graph API or of the web profile endpoint, byte for byte; what the object does not say
//! (its owner, the hashtag searched) comes from headers (docs/architecture.md, *Instagram records*).
//!
//! A profile becomes an `instagram_profiles` row and an `instagram_profile_snapshots` row, keyed by the
//! account's web id (a Graph profile names it in `ig_id`; one that does not is keyed by its Graph id, and
//! the database merges that row once a record names both: migration `m20261201_000007`). A media object
//! becomes an `instagram_posts` row keyed by the canonical media id (the web's id; for a Graph object, the
//! number its permalink's shortcode encodes), its hashtags and their links, and, from the web, its comments
//! and tagged users. Every account a record mentions without being its profile (a post's owner, a comment's
//! author, a tagged user) becomes a minimal profile row, written only if the account has no row yet.

mod graph;
mod hashtags;
mod shortcode;
mod web;

use contract::source::{
    INSTAGRAM_BUSINESS_DISCOVERY, INSTAGRAM_GRAPH_PREFIX, INSTAGRAM_HASHTAG_RECENT, INSTAGRAM_HASHTAG_TOP,
    INSTAGRAM_WEB_PREFIX, INSTAGRAM_WEB_PROFILE,
};
use contract::{Topic, header};

use super::Mapping;
use crate::record::ConsumedRecord;
use crate::table::{Table, detach_raw};
use crate::tables::Tables;

use chrono::{DateTime, Utc};
use entity::{
    instagram_comments, instagram_hashtags, instagram_post_hashtags, instagram_post_tagged_users, instagram_posts,
    instagram_profile_snapshots, instagram_profiles,
};
use sea_orm::ActiveValue::{NotSet, Set};
use serde_json::Value;

pub use hashtags::in_caption as hashtags_in_caption;
pub use shortcode::{ShortcodeError, decode as decode_shortcode, encode as encode_shortcode};

use super::DecodeError;
use super::json::parse_object;

/// Which topic a record came from: what kind of object it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Profile,
    Media,
}

/// The `source` headers the scraper's Instagram sources write, per kind of record.
pub fn is_source(kind: Kind, source: &str) -> bool {
    match kind {
        Kind::Profile => [INSTAGRAM_BUSINESS_DISCOVERY, INSTAGRAM_WEB_PROFILE].contains(&source),
        Kind::Media => {
            [INSTAGRAM_BUSINESS_DISCOVERY, INSTAGRAM_HASHTAG_RECENT, INSTAGRAM_HASHTAG_TOP, INSTAGRAM_WEB_PROFILE]
                .contains(&source)
        }
    }
}

/// What the record's headers say beside the payload.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    /// The `source` header (`unknown` when there is none).
    pub source: &'a str,
    pub scraped_at: DateTime<Utc>,
    /// `instagram_owner_id`: the Graph id of the profile whose media page held this object.
    pub owner_id: Option<&'a str>,
    /// `instagram_hashtag`: the hashtag searched, for hashtag media.
    pub hashtag: Option<&'a str>,
    /// `instagram_hashtag_id`: the Graph API's id of that hashtag.
    pub hashtag_id: Option<&'a str>,
}

impl<'a> Context<'a> {
    /// A context with no Instagram headers.
    pub fn new(source: &'a str, scraped_at: DateTime<Utc>) -> Self {
        Self { source, scraped_at, owner_id: None, hashtag: None, hashtag_id: None }
    }
}

/// The rows one record becomes. `ingested_at` (and a hashtag's `first_seen_at`) are left to the database.
#[derive(Clone, Debug, Default)]
pub struct InstagramRows {
    /// The scraped profile (a profile record).
    pub profiles: Vec<instagram_profiles::ActiveModel>,
    /// Minimal rows (`user_id`, `username`) for the accounts the record refers to.
    pub referenced_profiles: Vec<instagram_profiles::ActiveModel>,
    pub snapshots: Vec<instagram_profile_snapshots::ActiveModel>,
    pub posts: Vec<instagram_posts::ActiveModel>,
    pub hashtags: Vec<instagram_hashtags::ActiveModel>,
    pub post_hashtags: Vec<instagram_post_hashtags::ActiveModel>,
    pub comments: Vec<instagram_comments::ActiveModel>,
    pub tagged_users: Vec<instagram_post_tagged_users::ActiveModel>,
}

/// Maps one record of `kind`.
pub fn map(kind: Kind, payload: &[u8], context: &Context) -> Result<InstagramRows, DecodeError> {
    let raw = parse_object(payload)?;
    let mut rows = InstagramRows::default();
    match (kind, Format::of(kind, context.source, &raw)?) {
        (Kind::Profile, Format::Graph) => graph::profile(&mut rows, raw, context)?,
        (Kind::Profile, Format::Web) => web::profile(&mut rows, raw, context)?,
        (Kind::Media, Format::Graph) => graph::media(&mut rows, raw, context)?,
        (Kind::Media, Format::Web) => web::media(&mut rows, raw, context)?,
    }
    Ok(rows)
}

/// The two APIs' object formats.
#[derive(Debug, PartialEq, Eq)]
enum Format {
    Graph,
    Web,
}

impl Format {
    /// From the source, or, for a replayed record or one without a `source`, from the object's shape.
    fn of(kind: Kind, source: &str, raw: &Value) -> Result<Self, DecodeError> {
        if source.starts_with(INSTAGRAM_GRAPH_PREFIX) {
            return Ok(Self::Graph);
        }
        if source.starts_with(INSTAGRAM_WEB_PREFIX) {
            return Ok(Self::Web);
        }
        let has = |field: &str| raw.get(field).is_some();
        let (web, graph) = match kind {
            Kind::Profile => (has("edge_followed_by"), has("followers_count")),
            Kind::Media => (has("shortcode") && has("taken_at_timestamp"), has("permalink") && has("timestamp")),
        };
        match (web, graph) {
            (true, false) => Ok(Self::Web),
            (false, true) => Ok(Self::Graph),
            _ => Err(DecodeError::UnknownFormat(match kind {
                Kind::Profile => "a profile from the web has `edge_followed_by`, one from the Graph API \
                                  `followers_count`: this one has neither or both"
                    .into(),
                Kind::Media => "a media object from the web has `shortcode` and `taken_at_timestamp`, one from \
                                the Graph API `permalink` and `timestamp`: this one has neither or both"
                    .into(),
            })),
        }
    }
}

/// A profile's typed columns, whichever API it came from.
struct Profile {
    /// The canonical (web) id; a Graph profile that does not name it is keyed by its Graph id.
    user_id: i64,
    /// The Graph API's id, when the profile also names the web id.
    graph_user_id: Option<i64>,
    username: Option<String>,
    full_name: Option<String>,
    biography: Option<String>,
    external_url: Option<String>,
    profile_pic_url: Option<String>,
    category: Option<String>,
    is_private: Option<bool>,
    is_verified: Option<bool>,
    is_business: Option<bool>,
    followers_count: Option<i64>,
    follows_count: Option<i64>,
    media_count: Option<i64>,
}

/// A post's typed columns, whichever API it came from.
struct Post {
    media_id: i64,
    shortcode: String,
    graph_media_id: Option<i64>,
    /// The owner's id and username, when the record says.
    owner: Option<(i64, Option<String>)>,
    media_type: Option<String>,
    caption: Option<String>,
    permalink: Option<String>,
    media_url: Option<String>,
    thumbnail_url: Option<String>,
    taken_at: Option<DateTime<Utc>>,
    like_count: Option<i64>,
    comments_count: Option<i64>,
    video_view_count: Option<i64>,
}

impl InstagramRows {
    /// The profile row and its snapshot.
    fn add_profile(&mut self, profile: Profile, raw: Value, context: &Context) {
        self.snapshots.push(instagram_profile_snapshots::ActiveModel {
            user_id: Set(profile.user_id),
            scraped_at: Set(context.scraped_at),
            followers_count: Set(profile.followers_count),
            follows_count: Set(profile.follows_count),
            media_count: Set(profile.media_count),
            source: Set(context.source.to_owned()),
            ingested_at: NotSet,
        });
        self.profiles.push(instagram_profiles::ActiveModel {
            user_id: Set(profile.user_id),
            graph_user_id: Set(profile.graph_user_id),
            username: Set(non_empty(profile.username)),
            full_name: Set(profile.full_name),
            biography: Set(profile.biography),
            external_url: Set(profile.external_url),
            profile_pic_url: Set(profile.profile_pic_url),
            category: Set(profile.category),
            is_private: Set(profile.is_private),
            is_verified: Set(profile.is_verified),
            is_business: Set(profile.is_business),
            followers_count: Set(profile.followers_count),
            follows_count: Set(profile.follows_count),
            media_count: Set(profile.media_count),
            source: Set(Some(context.source.to_owned())),
            raw: Set(Some(raw)),
            scraped_at: Set(Some(context.scraped_at)),
            ingested_at: NotSet,
        });
    }

    /// A minimal profile row for an account the record refers to.
    fn add_reference(&mut self, user_id: i64, username: Option<String>) {
        self.referenced_profiles.push(instagram_profiles::ActiveModel {
            user_id: Set(user_id),
            username: Set(non_empty(username)),
            ..Default::default()
        });
    }

    /// The post row, its owner's minimal row, and its hashtags: those of the caption and `searched` (the
    /// hashtag a hashtag search found it under, with the Graph API's id for it).
    fn add_post(&mut self, post: Post, raw: Value, context: &Context, searched: Option<(String, Option<i64>)>) {
        let media_id = post.media_id;
        let mut tags: Vec<(String, Option<i64>)> = post
            .caption
            .as_deref()
            .map(hashtags::in_caption)
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t, None))
            .collect();
        if let Some((name, id)) = searched {
            match tags.iter_mut().find(|(tag, _)| *tag == name) {
                Some(tag) => tag.1 = id,
                None => tags.push((name, id)),
            }
        }
        for (name, graph_hashtag_id) in tags {
            self.hashtags.push(instagram_hashtags::ActiveModel {
                name: Set(name.clone()),
                graph_hashtag_id: Set(graph_hashtag_id),
                first_seen_at: NotSet,
            });
            self.post_hashtags
                .push(instagram_post_hashtags::ActiveModel { media_id: Set(media_id), hashtag: Set(name) });
        }
        if let Some((owner_id, username)) = &post.owner {
            self.add_reference(*owner_id, username.clone());
        }
        self.posts.push(instagram_posts::ActiveModel {
            media_id: Set(media_id),
            shortcode: Set(post.shortcode),
            graph_media_id: Set(post.graph_media_id),
            owner_id: Set(post.owner.map(|(id, _)| id)),
            media_type: Set(post.media_type),
            caption: Set(post.caption),
            permalink: Set(post.permalink),
            media_url: Set(post.media_url),
            thumbnail_url: Set(post.thumbnail_url),
            taken_at: Set(post.taken_at),
            like_count: Set(post.like_count),
            comments_count: Set(post.comments_count),
            video_view_count: Set(post.video_view_count),
            source: Set(context.source.to_owned()),
            raw: Set(raw),
            scraped_at: Set(context.scraped_at),
            ingested_at: NotSet,
        });
    }
}

/// An empty username is no username (the column refuses `''`).
fn non_empty(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.is_empty())
}

/// A header that must hold a positive 64-bit id when present.
fn id_header(name: &str, value: Option<&str>) -> Result<Option<i64>, DecodeError> {
    value
        .map(|text| {
            contract::parse_id(text)
                .map_err(|_| DecodeError::invalid(format!("header {name}"), text, "a positive 64-bit id"))
        })
        .transpose()
}

/// The Instagram profiles mapping, registered in [`super::MAPPINGS`].
pub(crate) static PROFILES: Instagram = Instagram { kind: Kind::Profile, topic: &contract::topic::INSTAGRAM_PROFILES };

/// The Instagram media mapping, registered in [`super::MAPPINGS`].
pub(crate) static MEDIA: Instagram = Instagram { kind: Kind::Media, topic: &contract::topic::INSTAGRAM_MEDIA };

/// An Instagram topic's mapping.
pub(crate) struct Instagram {
    kind: Kind,
    topic: &'static Topic,
}

impl Mapping for Instagram {
    fn topic(&self) -> &'static Topic {
        self.topic
    }

    fn reads_source(&self, source: &str) -> bool {
        is_source(self.kind, source)
    }

    fn map(
        &self,
        index: usize,
        record: &ConsumedRecord,
        scraped_at: DateTime<Utc>,
        payload: &[u8],
        tables: &mut Tables,
    ) -> Result<(), DecodeError> {
        let context = Context {
            source: record.source(),
            scraped_at,
            owner_id: record.header(header::INSTAGRAM_OWNER_ID),
            hashtag: record.header(header::INSTAGRAM_HASHTAG),
            hashtag_id: record.header(header::INSTAGRAM_HASHTAG_ID),
        };
        let rows = map(self.kind, payload, &context)?;
        fn add<E: sea_orm::EntityTrait>(table: &mut Table<E>, index: usize, rows: Vec<E::ActiveModel>) {
            for row in rows {
                let (model, raw) = detach_raw(row);
                table.push(index, model, raw);
            }
        }
        add(&mut tables.instagram_profiles, index, rows.profiles);
        add(&mut tables.instagram_referenced_profiles, index, rows.referenced_profiles);
        add(&mut tables.instagram_profile_snapshots, index, rows.snapshots);
        add(&mut tables.instagram_posts, index, rows.posts);
        add(&mut tables.instagram_hashtags, index, rows.hashtags);
        add(&mut tables.instagram_post_hashtags, index, rows.post_hashtags);
        add(&mut tables.instagram_comments, index, rows.comments);
        add(&mut tables.instagram_post_tagged_users, index, rows.tagged_users);
        Ok(())
    }
}
