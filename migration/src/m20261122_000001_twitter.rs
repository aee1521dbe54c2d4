//! Twitter/X: `twitter_data` (one row per post, typed columns beside the raw JSON) and `twitter_users`
//! (the latest profile of each author seen in `includes.users`).

use sea_orm_migration::prelude::*;

// No foreign key from `twitter_data.author_id` to `twitter_users`: the stream sends users only as an optional
// expansion, and a post whose author was never expanded is still a post worth keeping.
const UP: &str = r#"
CREATE TABLE twitter_users (
    user_id           bigint      PRIMARY KEY CHECK (user_id > 0),
    username          text        NOT NULL CHECK (username <> ''),
    name              text,
    description       text,
    location          text,
    url               text,
    profile_image_url text,
    verified          boolean,
    verified_type     text,
    protected         boolean,
    created_at        timestamptz,
    followers_count   bigint      CHECK (followers_count >= 0),
    following_count   bigint      CHECK (following_count >= 0),
    tweet_count       bigint      CHECK (tweet_count >= 0),
    listed_count      bigint      CHECK (listed_count >= 0),
    like_count        bigint      CHECK (like_count >= 0),
    raw               jsonb       NOT NULL,
    scraped_at        timestamptz NOT NULL,
    ingested_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX twitter_users_username_idx ON twitter_users (lower(username));

CREATE TABLE twitter_data (
    tweet_id            bigint      PRIMARY KEY CHECK (tweet_id > 0),
    text                text        NOT NULL,
    author_id           bigint      CHECK (author_id > 0),
    created_at          timestamptz,
    lang                text,
    conversation_id     bigint      CHECK (conversation_id > 0),
    in_reply_to_user_id bigint      CHECK (in_reply_to_user_id > 0),
    replied_to_id       bigint      CHECK (replied_to_id > 0),
    quoted_id           bigint      CHECK (quoted_id > 0),
    retweeted_id        bigint      CHECK (retweeted_id > 0),
    retweet_count       bigint      CHECK (retweet_count >= 0),
    reply_count         bigint      CHECK (reply_count >= 0),
    like_count          bigint      CHECK (like_count >= 0),
    quote_count         bigint      CHECK (quote_count >= 0),
    bookmark_count      bigint      CHECK (bookmark_count >= 0),
    impression_count    bigint      CHECK (impression_count >= 0),
    possibly_sensitive  boolean,
    hashtags            text[]      NOT NULL DEFAULT '{}',
    mentions            text[]      NOT NULL DEFAULT '{}',
    urls                text[]      NOT NULL DEFAULT '{}',
    source              text        NOT NULL,
    raw                 jsonb       NOT NULL,
    scraped_at          timestamptz NOT NULL,
    ingested_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX twitter_data_created_at_idx ON twitter_data (created_at);
CREATE INDEX twitter_data_author_created_idx ON twitter_data (author_id, created_at);
CREATE INDEX twitter_data_conversation_idx ON twitter_data (conversation_id) WHERE conversation_id IS NOT NULL;
CREATE INDEX twitter_data_hashtags_idx ON twitter_data USING gin (hashtags);
CREATE INDEX twitter_data_mentions_idx ON twitter_data USING gin (mentions);

-- Rows are upserted: Debezium needs the whole old row, not only the key, to show what an update changed.
ALTER TABLE twitter_users REPLICA IDENTITY FULL;
ALTER TABLE twitter_data REPLICA IDENTITY FULL;
"#;

const DOWN: &str = r#"
DROP TABLE twitter_data;
DROP TABLE twitter_users;
"#;

crate::sql::sql_migration!(UP, DOWN);
