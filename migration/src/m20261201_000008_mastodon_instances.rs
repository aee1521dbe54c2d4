//! Mastodon statuses keyed per instance: a status's `id` and `account_id` are the serving instance's own
//! numbers, so two instances' statuses may share an id. `instance` (the stream's host) becomes part of the key
//! of `mastodon_statuses` and `mastodon_status_deletions`, and of the indexes that find an account's
//! statuses, a thread or a status's reblogs.

use sea_orm_migration::prelude::*;

// Rows written before this migration do not say which instance served them. They all came from one stream
// (the scraper read one SSE URL then): its instance is the host of the statuses it authored itself (an
// `account_acct` without `@`), the most frequent such host. The operator may name it instead, with the
// `ingest.mastodon_instance` setting on the migration's connection (e.g. `?options=-c
// ingest.mastodon_instance=mastodon.social` in DATABASE_URL). Failing both (no local status yet), a row
// takes its own `uri`'s host.
const UP: &str = r#"
CREATE OR REPLACE FUNCTION pg_temp.uri_host(uri text) RETURNS text LANGUAGE sql IMMUTABLE AS
    $$ SELECT lower(substring(uri from '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?([^/?#]+)')) $$;

DROP TABLE IF EXISTS pg_temp.mastodon_serving_instance;
CREATE TEMPORARY TABLE mastodon_serving_instance AS
SELECT COALESCE(
    NULLIF(current_setting('ingest.mastodon_instance', true), ''),
    (SELECT pg_temp.uri_host(uri) FROM mastodon_statuses
      WHERE account_acct NOT LIKE '%@%' AND pg_temp.uri_host(uri) IS NOT NULL
      GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1)
) AS instance;

ALTER TABLE mastodon_statuses ADD COLUMN instance text;
UPDATE mastodon_statuses SET instance = COALESCE(
    (SELECT instance FROM mastodon_serving_instance), pg_temp.uri_host(uri), 'unknown');
ALTER TABLE mastodon_statuses
    ALTER COLUMN instance SET NOT NULL,
    ADD CONSTRAINT mastodon_statuses_instance_check CHECK (instance <> '' AND length(instance) <= 300),
    DROP CONSTRAINT mastodon_statuses_pkey,
    ADD PRIMARY KEY (instance, id);
DROP INDEX mastodon_statuses_account_created_idx;
DROP INDEX mastodon_statuses_in_reply_to_idx;
DROP INDEX mastodon_statuses_reblog_of_idx;
CREATE INDEX mastodon_statuses_account_created_idx ON mastodon_statuses (instance, account_id, created_at);
CREATE INDEX mastodon_statuses_in_reply_to_idx ON mastodon_statuses (instance, in_reply_to_id) WHERE in_reply_to_id IS NOT NULL;
CREATE INDEX mastodon_statuses_reblog_of_idx ON mastodon_statuses (instance, reblog_of_id) WHERE reblog_of_id IS NOT NULL;

ALTER TABLE mastodon_status_deletions ADD COLUMN instance text;
UPDATE mastodon_status_deletions SET instance = COALESCE((SELECT instance FROM mastodon_serving_instance), 'unknown');
ALTER TABLE mastodon_status_deletions
    ALTER COLUMN instance SET NOT NULL,
    ADD CONSTRAINT mastodon_status_deletions_instance_check CHECK (instance <> '' AND length(instance) <= 300),
    DROP CONSTRAINT mastodon_status_deletions_pkey,
    ADD PRIMARY KEY (instance, status_id);
DROP TABLE pg_temp.mastodon_serving_instance;

CREATE OR REPLACE FUNCTION mastodon_status_born_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.deleted_at IS NULL THEN
        SELECT d.deleted_at INTO NEW.deleted_at FROM mastodon_status_deletions d
         WHERE d.instance = NEW.instance AND d.status_id = NEW.id;
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION mastodon_status_mark_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mastodon_statuses SET deleted_at = NEW.deleted_at
     WHERE instance = NEW.instance AND id = NEW.status_id AND deleted_at IS NULL;
    RETURN NULL;
END $$;
"#;

// Undone only while no id is used by two instances: one row per id is all the old key can hold.
const DOWN: &str = r#"
CREATE OR REPLACE FUNCTION mastodon_status_born_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.deleted_at IS NULL THEN
        SELECT d.deleted_at INTO NEW.deleted_at FROM mastodon_status_deletions d WHERE d.status_id = NEW.id;
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION mastodon_status_mark_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mastodon_statuses SET deleted_at = NEW.deleted_at WHERE id = NEW.status_id AND deleted_at IS NULL;
    RETURN NULL;
END $$;

ALTER TABLE mastodon_status_deletions DROP CONSTRAINT mastodon_status_deletions_pkey, ADD PRIMARY KEY (status_id);
ALTER TABLE mastodon_status_deletions DROP COLUMN instance;

DROP INDEX mastodon_statuses_account_created_idx;
DROP INDEX mastodon_statuses_in_reply_to_idx;
DROP INDEX mastodon_statuses_reblog_of_idx;
CREATE INDEX mastodon_statuses_account_created_idx ON mastodon_statuses (account_id, created_at);
CREATE INDEX mastodon_statuses_in_reply_to_idx ON mastodon_statuses (in_reply_to_id) WHERE in_reply_to_id IS NOT NULL;
CREATE INDEX mastodon_statuses_reblog_of_idx ON mastodon_statuses (reblog_of_id) WHERE reblog_of_id IS NOT NULL;
ALTER TABLE mastodon_statuses DROP CONSTRAINT mastodon_statuses_pkey, ADD PRIMARY KEY (id);
ALTER TABLE mastodon_statuses DROP COLUMN instance;
"#;

crate::sql::sql_migration!(UP, DOWN);
