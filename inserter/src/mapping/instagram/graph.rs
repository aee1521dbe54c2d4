//! The Graph API's objects: a `business_discovery` profile, and a media object of its media page or of a
//! hashtag search. A Graph post's canonical id is decoded from its permalink's shortcode; its Graph id is
//! kept beside it.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::{Context, InstagramRows, Post, Profile, hashtags, id_header, shortcode};
use crate::mapping::DecodeError;
use crate::mapping::json::Id;

/// The `business_discovery` object. Any field but `id` may be absent (the fields asked for decide); `media`
/// is not read here: its items arrive as records of their own. `ig_id` is the account's web id (records
/// scraped before the scraper asked for it lack it).
#[derive(Deserialize)]
struct GraphProfile {
    id: Id,
    ig_id: Option<Id>,
    username: Option<String>,
    name: Option<String>,
    biography: Option<String>,
    website: Option<String>,
    profile_picture_url: Option<String>,
    followers_count: Option<i64>,
    follows_count: Option<i64>,
    media_count: Option<i64>,
}

/// A media object. `like_count` is absent when the owner hides likes, `media_url` for some videos, and
/// `username` from hashtag searches.
#[derive(Deserialize)]
struct GraphMedia {
    id: Id,
    caption: Option<String>,
    media_type: Option<String>,
    media_url: Option<String>,
    thumbnail_url: Option<String>,
    permalink: Option<String>,
    timestamp: Option<String>,
    like_count: Option<i64>,
    comments_count: Option<i64>,
    username: Option<String>,
}

pub(super) fn profile(rows: &mut InstagramRows, raw: Value, context: &Context) -> Result<(), DecodeError> {
    let p = GraphProfile::deserialize(&raw).map_err(|e| DecodeError::Shape(e.to_string()))?;
    let (user_id, graph_user_id) = match p.ig_id {
        Some(web) => (web.0, Some(p.id.0)),
        None => (p.id.0, None),
    };
    let profile = Profile {
        user_id,
        graph_user_id,
        username: p.username,
        full_name: p.name,
        biography: p.biography,
        external_url: p.website,
        profile_pic_url: p.profile_picture_url,
        category: None,
        is_private: None,
        is_verified: None,
        is_business: None,
        followers_count: p.followers_count,
        follows_count: p.follows_count,
        media_count: p.media_count,
    };
    rows.add_profile(profile, raw, context);
    Ok(())
}

pub(super) fn media(rows: &mut InstagramRows, raw: Value, context: &Context) -> Result<(), DecodeError> {
    let m = GraphMedia::deserialize(&raw).map_err(|e| DecodeError::Shape(e.to_string()))?;
    let permalink = m.permalink.ok_or_else(|| {
        DecodeError::Shape("missing field `permalink`: a Graph media object's only link to its media id".into())
    })?;
    let code = shortcode::from_permalink(&permalink).ok_or_else(|| {
        DecodeError::invalid("permalink", &permalink, "a post's URL with a shortcode (/p/, /reel/ or /tv/)")
    })?;
    let media_id = shortcode::decode(code)
        .map_err(|error| DecodeError::Shortcode { field: format!("permalink `{permalink}`"), error })?;
    let taken_at = m.timestamp.as_deref().map(timestamp).transpose()?;
    let owner = id_header(contract::header::INSTAGRAM_OWNER_ID, context.owner_id)?.map(|id| (id, m.username));
    let searched = match context.hashtag {
        Some(name) => {
            let name = hashtags::normalize(name)
                .ok_or_else(|| DecodeError::invalid("header instagram_hashtag", name, "one hashtag name"))?;
            Some((name, id_header(contract::header::INSTAGRAM_HASHTAG_ID, context.hashtag_id)?))
        }
        None => None,
    };
    let post = Post {
        media_id,
        shortcode: code.to_owned(),
        graph_media_id: Some(m.id.0),
        owner,
        media_type: m.media_type,
        caption: m.caption,
        permalink: Some(permalink.clone()),
        media_url: m.media_url,
        thumbnail_url: m.thumbnail_url,
        taken_at,
        like_count: m.like_count,
        comments_count: m.comments_count,
        video_view_count: None,
    };
    rows.add_post(post, raw, context, searched);
    Ok(())
}

/// `2025-06-01T14:03:11+0000`: the Graph API writes the offset without a colon.
fn timestamp(text: &str) -> Result<DateTime<Utc>, DecodeError> {
    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%z")
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| DecodeError::invalid("timestamp", text, "a time like 2025-06-01T14:03:11+0000"))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn graph_timestamps_have_no_colon_in_the_offset() {
        let expected = Utc.with_ymd_and_hms(2025, 6, 1, 14, 3, 11).unwrap();
        assert_eq!(timestamp("2025-06-01T14:03:11+0000"), Ok(expected));
        assert_eq!(timestamp("2025-06-01T16:03:11+0200"), Ok(expected));
        assert!(timestamp("2025-06-01").is_err());
        assert!(timestamp("yesterday").is_err());
    }
}
