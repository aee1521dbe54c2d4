//! Mastodon: `mastodon_statuses`, one row per status from a streaming timeline, its content both as the
//! HTML Mastodon sends and as plain text, and its addition to the CDC publication.

use sea_orm_migration::prelude::*;

// Ids are the serving instance's own 64-bit snowflakes (Mastodon numbers remote statuses and accounts too), so
// `id` and `account_id` are keys only within one instance. `account_acct` is `user@domain` for remote accounts
// and the bare username for the instance's own.
//
// `tags` are lower-cased by the inserter; there is no CHECK against `lower()`, whose result depends on the
// database's collation and could refuse a status over a case rule Rust and Postgres disagree on.
// No foreign keys: a reply's parent and a reblog's original are often never seen on a public stream.
const UP: &str = r#"
CREATE TABLE mastodon_statuses (
    id               bigint      PRIMARY KEY CHECK (id > 0),
    url              text,
    uri              text        NOT NULL CHECK (uri <> ''),
    created_at       timestamptz NOT NULL,
    account_id       bigint      NOT NULL CHECK (account_id > 0),
    account_acct     text        NOT NULL CHECK (account_acct <> ''),
    account_username text        NOT NULL CHECK (account_username <> ''),
    content_html     text        NOT NULL,
    content_text     text        NOT NULL,
    spoiler_text     text        NOT NULL DEFAULT '',
    visibility       text        NOT NULL CHECK (visibility <> ''),
    language         text,
    sensitive        boolean,
    in_reply_to_id   bigint      CHECK (in_reply_to_id > 0),
    reblog_of_id     bigint      CHECK (reblog_of_id > 0),
    tags             text[]      NOT NULL DEFAULT '{}',
    mentions         text[]      NOT NULL DEFAULT '{}',
    reblogs_count    bigint      CHECK (reblogs_count >= 0),
    favourites_count bigint      CHECK (favourites_count >= 0),
    replies_count    bigint      CHECK (replies_count >= 0),
    edited_at        timestamptz,
    raw              jsonb       NOT NULL,
    scraped_at       timestamptz NOT NULL,
    ingested_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT mastodon_statuses_not_own_reblog CHECK (reblog_of_id <> id)
);
CREATE INDEX mastodon_statuses_created_at_idx ON mastodon_statuses (created_at);
CREATE INDEX mastodon_statuses_account_created_idx ON mastodon_statuses (account_id, created_at);
CREATE INDEX mastodon_statuses_in_reply_to_idx ON mastodon_statuses (in_reply_to_id) WHERE in_reply_to_id IS NOT NULL;
CREATE INDEX mastodon_statuses_reblog_of_idx ON mastodon_statuses (reblog_of_id) WHERE reblog_of_id IS NOT NULL;
CREATE INDEX mastodon_statuses_tags_idx ON mastodon_statuses USING gin (tags);
CREATE INDEX mastodon_statuses_mentions_idx ON mastodon_statuses USING gin (mentions);

-- Rows are upserted (counts change, statuses are edited): Debezium needs the whole old row to show what changed.
ALTER TABLE mastodon_statuses REPLICA IDENTITY FULL;

ALTER PUBLICATION ingest_cdc ADD TABLE mastodon_statuses;
"#;

const DOWN: &str = r#"
ALTER PUBLICATION ingest_cdc DROP TABLE mastodon_statuses;
DROP TABLE mastodon_statuses;
"#;

crate::sql::sql_migration!(UP, DOWN);
