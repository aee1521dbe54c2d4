//! The web profile endpoint's objects: `data.user` (a profile) and a `node` of its timeline (a post, with
//! the comments, replies and tagged users the page carried).

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use entity::{instagram_comments, instagram_post_tagged_users};
use sea_orm::ActiveValue::{NotSet, Set};
use serde::Deserialize;
use serde_json::Value;

use super::{Context, InstagramRows, Post, Profile, shortcode};
use crate::mapping::DecodeError;
use crate::mapping::json::{Id, null_as_default};

#[derive(Deserialize)]
struct User {
    id: Id,
    username: Option<String>,
    full_name: Option<String>,
    biography: Option<String>,
    external_url: Option<String>,
    profile_pic_url: Option<String>,
    profile_pic_url_hd: Option<String>,
    category_name: Option<String>,
    is_private: Option<bool>,
    is_verified: Option<bool>,
    is_business_account: Option<bool>,
    edge_followed_by: Option<Count>,
    edge_follow: Option<Count>,
    edge_owner_to_timeline_media: Option<Count>,
}

/// `{"count": N, ...}`, the web's way of giving a count.
#[derive(Deserialize)]
struct Count {
    count: Option<i64>,
}

fn count(edge: Option<Count>) -> Option<i64> {
    edge.and_then(|e| e.count)
}

#[derive(Deserialize)]
struct Node {
    #[serde(rename = "__typename")]
    typename: Option<String>,
    id: Id,
    shortcode: String,
    display_url: Option<String>,
    video_url: Option<String>,
    thumbnail_src: Option<String>,
    video_view_count: Option<i64>,
    taken_at_timestamp: Option<i64>,
    owner: Option<Owner>,
    #[serde(default, deserialize_with = "null_as_default", bound = "")]
    edge_media_to_caption: Edges<Caption>,
    edge_liked_by: Option<Count>,
    edge_media_preview_like: Option<Count>,
    edge_media_to_comment: Option<Comments>,
    edge_media_preview_comment: Option<Comments>,
    #[serde(default, deserialize_with = "null_as_default", bound = "")]
    edge_media_to_tagged_user: Edges<Tagged>,
}

#[derive(Deserialize)]
struct Owner {
    id: Option<Id>,
    username: Option<String>,
}

#[derive(Deserialize)]
#[serde(bound = "T: Deserialize<'de>")]
struct Edges<T> {
    #[serde(default, deserialize_with = "null_as_default")]
    edges: Vec<Edge<T>>,
}

impl<T> Default for Edges<T> {
    fn default() -> Self {
        Self { edges: Vec::new() }
    }
}

#[derive(Deserialize)]
struct Edge<T> {
    node: T,
}

#[derive(Deserialize)]
struct Caption {
    text: Option<String>,
}

#[derive(Deserialize)]
struct Comments {
    count: Option<i64>,
    /// Kept as JSON until mapped, so that each comment's `raw` is the node exactly as sent.
    #[serde(default, deserialize_with = "null_as_default")]
    edges: Vec<Edge<Value>>,
}

#[derive(Deserialize)]
struct Comment {
    id: Id,
    text: String,
    created_at: Option<i64>,
    owner: Option<Owner>,
    edge_liked_by: Option<Count>,
    #[serde(default, deserialize_with = "null_as_default")]
    edge_threaded_comments: Edges<Value>,
}

#[derive(Deserialize)]
struct Tagged {
    user: Owner,
}

pub(super) fn profile(rows: &mut InstagramRows, raw: Value, context: &Context) -> Result<(), DecodeError> {
    let u = User::deserialize(&raw).map_err(|e| DecodeError::Shape(e.to_string()))?;
    let profile = Profile {
        user_id: u.id.0,
        graph_user_id: None,
        username: u.username,
        full_name: u.full_name,
        biography: u.biography,
        external_url: u.external_url,
        profile_pic_url: u.profile_pic_url_hd.or(u.profile_pic_url),
        category: u.category_name,
        is_private: u.is_private,
        is_verified: u.is_verified,
        is_business: u.is_business_account,
        followers_count: count(u.edge_followed_by),
        follows_count: count(u.edge_follow),
        media_count: count(u.edge_owner_to_timeline_media),
    };
    rows.add_profile(profile, raw, context);
    Ok(())
}

pub(super) fn media(rows: &mut InstagramRows, raw: Value, context: &Context) -> Result<(), DecodeError> {
    let node = Node::deserialize(&raw).map_err(|e| DecodeError::Shape(e.to_string()))?;
    let media_id = node.id.0;
    // The node's id is the canonical media id. Its shortcode encodes the same number for a post, but a
    // private account's (longer) code does not: the id is trusted, the code only has to be storable.
    if let Some(bad) = node.shortcode.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))) {
        let error = shortcode::ShortcodeError::BadCharacter { code: node.shortcode.clone(), bad };
        return Err(DecodeError::Shortcode { field: "shortcode".into(), error });
    }
    if node.shortcode.is_empty() {
        let error = shortcode::ShortcodeError::Empty;
        return Err(DecodeError::Shortcode { field: "shortcode".into(), error });
    }
    // The post's own key: left out, the record would be lost, so it is dead-lettered instead.
    if node.shortcode.len() > crate::limits::INDEXED_TEXT_MAX_BYTES {
        let error = shortcode::ShortcodeError::Unindexable(node.shortcode.len());
        return Err(DecodeError::Shortcode { field: "shortcode".into(), error });
    }
    let taken_at = node.taken_at_timestamp.map(|s| unix_time("taken_at_timestamp", s)).transpose()?;
    let caption = node.edge_media_to_caption.edges.into_iter().find_map(|edge| edge.node.text);
    let comments_count = node.edge_media_to_comment.as_ref().and_then(|c| c.count);
    let comments_count = comments_count.or(node.edge_media_preview_comment.as_ref().and_then(|c| c.count));
    let owner = node.owner.and_then(|o| Some((o.id?.0, o.username)));

    // Comments, from whichever edges the page carried (the same comment may be in both).
    let mut comment_nodes = VecDeque::new();
    for (edge_name, edge) in [
        ("edge_media_to_comment", node.edge_media_to_comment),
        ("edge_media_preview_comment", node.edge_media_preview_comment),
    ] {
        for (i, e) in edge.map(|c| c.edges).unwrap_or_default().into_iter().enumerate() {
            comment_nodes.push_back((format!("{edge_name}.edges[{i}].node"), e.node, None));
        }
    }
    let mut seen = Vec::new();
    while let Some((path, value, parent)) = comment_nodes.pop_front() {
        let comment = Comment::deserialize(&value).map_err(|e| DecodeError::Shape(format!("{path}: {e}")))?;
        for (i, reply) in comment.edge_threaded_comments.edges.iter().enumerate() {
            let reply_path = format!("{path}.edge_threaded_comments.edges[{i}].node");
            comment_nodes.push_back((reply_path, reply.node.clone(), Some(comment.id.0)));
        }
        if seen.contains(&comment.id.0) {
            continue;
        }
        seen.push(comment.id.0);
        let created_at = comment.created_at.map(|s| unix_time(&format!("{path}.created_at"), s)).transpose()?;
        let author = comment.owner.and_then(|o| Some((o.id?.0, o.username)));
        if let Some((id, username)) = &author {
            rows.add_reference(*id, username.clone());
        }
        rows.comments.push(instagram_comments::ActiveModel {
            comment_id: Set(comment.id.0),
            media_id: Set(media_id),
            parent_comment_id: Set(parent),
            author_id: Set(author.as_ref().map(|(id, _)| *id)),
            author_username: Set(author.and_then(|(_, username)| username)),
            text: Set(comment.text),
            like_count: Set(count(comment.edge_liked_by)),
            created_at: Set(created_at),
            source: Set(context.source.to_owned()),
            raw: Set(value),
            scraped_at: Set(context.scraped_at),
            ingested_at: NotSet,
        });
    }

    // Tagged users; one without an id cannot be a row.
    for edge in node.edge_media_to_tagged_user.edges {
        let Some(user_id) = edge.node.user.id else { continue };
        rows.add_reference(user_id.0, edge.node.user.username);
        if !rows.tagged_users.iter().any(|t| t.user_id.as_ref() == &user_id.0) {
            rows.tagged_users
                .push(instagram_post_tagged_users::ActiveModel { media_id: Set(media_id), user_id: Set(user_id.0) });
        }
    }

    let is_video = node.typename.as_deref() == Some("GraphVideo");
    let post = Post {
        media_id,
        shortcode: node.shortcode,
        graph_media_id: None,
        owner,
        media_type: node.typename.map(media_type),
        caption,
        permalink: None,
        media_url: if is_video { node.video_url.or(node.display_url) } else { node.display_url },
        thumbnail_url: node.thumbnail_src,
        taken_at,
        like_count: count(node.edge_liked_by).or(count(node.edge_media_preview_like)),
        comments_count,
        video_view_count: node.video_view_count,
    };
    rows.add_post(post, raw, context, None);
    Ok(())
}

fn unix_time(field: &str, seconds: i64) -> Result<DateTime<Utc>, DecodeError> {
    DateTime::from_timestamp(seconds, 0)
        .ok_or_else(|| DecodeError::invalid(field, seconds.to_string(), "a time in Unix seconds"))
}

/// The web's type names as the Graph API spells the same types, so that both sources agree on the column.
fn media_type(typename: String) -> String {
    match typename.as_str() {
        "GraphImage" => "IMAGE".into(),
        "GraphVideo" => "VIDEO".into(),
        "GraphSidecar" => "CAROUSEL_ALBUM".into(),
        _ => typename,
    }
}
