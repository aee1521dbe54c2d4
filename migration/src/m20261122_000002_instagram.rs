//! Instagram: profiles keyed by the numeric user id, their counts over time, posts keyed by the numeric media
//! id (which the shortcode encodes), comments with replies, hashtags and the links between them.

use sea_orm_migration::prelude::*;

// Usernames change and are reused, so they are indexed, not unique. A profile row can be minimal (referenced by
// a post or a comment before the profile itself was scraped): then `raw` and `scraped_at` are both NULL.
//
// A post's `media_id` is Instagram's canonical media id, the number its shortcode encodes; the Graph API gives
// the same post another id, kept in `graph_media_id`, so that both sources land on one row.
const UP: &str = r#"
CREATE TABLE instagram_profiles (
    user_id         bigint      PRIMARY KEY CHECK (user_id > 0),
    username        text        CHECK (username <> ''),
    full_name       text,
    biography       text,
    external_url    text,
    profile_pic_url text,
    category        text,
    is_private      boolean,
    is_verified     boolean,
    is_business     boolean,
    followers_count bigint      CHECK (followers_count >= 0),
    follows_count   bigint      CHECK (follows_count >= 0),
    media_count     bigint      CHECK (media_count >= 0),
    source          text,
    raw             jsonb,
    scraped_at      timestamptz,
    ingested_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT instagram_profiles_scraped_has_raw CHECK ((raw IS NULL) = (scraped_at IS NULL))
);
CREATE INDEX instagram_profiles_username_idx ON instagram_profiles (lower(username));

CREATE TABLE instagram_profile_snapshots (
    user_id         bigint      NOT NULL REFERENCES instagram_profiles (user_id) ON DELETE CASCADE,
    scraped_at      timestamptz NOT NULL,
    followers_count bigint      CHECK (followers_count >= 0),
    follows_count   bigint      CHECK (follows_count >= 0),
    media_count     bigint      CHECK (media_count >= 0),
    source          text        NOT NULL,
    ingested_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, scraped_at)
);
CREATE INDEX instagram_profile_snapshots_scraped_at_idx ON instagram_profile_snapshots (scraped_at);

CREATE TABLE instagram_posts (
    media_id         bigint      PRIMARY KEY CHECK (media_id > 0),
    shortcode        text        NOT NULL UNIQUE CHECK (shortcode ~ '^[A-Za-z0-9_-]+$'),
    graph_media_id   bigint      UNIQUE CHECK (graph_media_id > 0),
    owner_id         bigint      REFERENCES instagram_profiles (user_id) ON DELETE CASCADE,
    media_type       text,
    caption          text,
    permalink        text,
    media_url        text,
    thumbnail_url    text,
    taken_at         timestamptz,
    like_count       bigint      CHECK (like_count >= 0),
    comments_count   bigint      CHECK (comments_count >= 0),
    video_view_count bigint      CHECK (video_view_count >= 0),
    source           text        NOT NULL,
    raw              jsonb       NOT NULL,
    scraped_at       timestamptz NOT NULL,
    ingested_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instagram_posts_owner_taken_idx ON instagram_posts (owner_id, taken_at);
CREATE INDEX instagram_posts_taken_at_idx ON instagram_posts (taken_at);

-- A reply may arrive before its parent within one batch: the self-reference is checked at commit.
CREATE TABLE instagram_comments (
    comment_id        bigint      PRIMARY KEY CHECK (comment_id > 0),
    media_id          bigint      NOT NULL REFERENCES instagram_posts (media_id) ON DELETE CASCADE,
    parent_comment_id bigint      REFERENCES instagram_comments (comment_id) ON DELETE CASCADE
                                  DEFERRABLE INITIALLY DEFERRED,
    author_id         bigint      REFERENCES instagram_profiles (user_id) ON DELETE CASCADE,
    author_username   text,
    text              text        NOT NULL,
    like_count        bigint      CHECK (like_count >= 0),
    created_at        timestamptz,
    source            text        NOT NULL,
    raw               jsonb       NOT NULL,
    scraped_at        timestamptz NOT NULL,
    ingested_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT instagram_comments_not_own_parent CHECK (parent_comment_id <> comment_id)
);
CREATE INDEX instagram_comments_media_created_idx ON instagram_comments (media_id, created_at);
CREATE INDEX instagram_comments_parent_idx ON instagram_comments (parent_comment_id)
    WHERE parent_comment_id IS NOT NULL;
CREATE INDEX instagram_comments_author_idx ON instagram_comments (author_id) WHERE author_id IS NOT NULL;

-- Hashtags are keyed by their lower-cased name: captions give only the name, the Graph API also an id.
CREATE TABLE instagram_hashtags (
    name             text        PRIMARY KEY CHECK (name <> '' AND name = lower(name)),
    graph_hashtag_id bigint      UNIQUE CHECK (graph_hashtag_id > 0),
    first_seen_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE instagram_post_hashtags (
    media_id bigint NOT NULL REFERENCES instagram_posts (media_id) ON DELETE CASCADE,
    hashtag  text   NOT NULL REFERENCES instagram_hashtags (name) ON DELETE CASCADE,
    PRIMARY KEY (media_id, hashtag)
);
CREATE INDEX instagram_post_hashtags_hashtag_idx ON instagram_post_hashtags (hashtag, media_id);

CREATE TABLE instagram_post_tagged_users (
    media_id bigint NOT NULL REFERENCES instagram_posts (media_id) ON DELETE CASCADE,
    user_id  bigint NOT NULL REFERENCES instagram_profiles (user_id) ON DELETE CASCADE,
    PRIMARY KEY (media_id, user_id)
);
CREATE INDEX instagram_post_tagged_users_user_idx ON instagram_post_tagged_users (user_id);

-- Upserted tables log whole old rows for CDC; the append-only ones and the pure links keep their key,
-- which for them is the whole row or never changes.
ALTER TABLE instagram_profiles REPLICA IDENTITY FULL;
ALTER TABLE instagram_posts REPLICA IDENTITY FULL;
ALTER TABLE instagram_comments REPLICA IDENTITY FULL;
ALTER TABLE instagram_hashtags REPLICA IDENTITY FULL;
"#;

const DOWN: &str = r#"
DROP TABLE instagram_post_tagged_users;
DROP TABLE instagram_post_hashtags;
DROP TABLE instagram_hashtags;
DROP TABLE instagram_comments;
DROP TABLE instagram_posts;
DROP TABLE instagram_profile_snapshots;
DROP TABLE instagram_profiles;
"#;

crate::sql::sql_migration!(UP, DOWN);
