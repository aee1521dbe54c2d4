//! Mastodon deletions: `mastodon_status_deletions`, one row per status a stream said was deleted, and
//! `mastodon_statuses.deleted_at`, which triggers keep in step with it, whichever of the status and its
//! deletion is written first. The status row stays (its history is in the change stream); the deletion is
//! an update of it, never a silent keep.

use sea_orm_migration::prelude::*;

// Triggers rather than a second statement from the inserter: the deletion and the mark are one write, so
// no reader (or Debezium) sees one without the other, and a status that arrives after its deletion (another
// stream, a replay) is born deleted. Both are one index probe per row.
const UP: &str = r#"
CREATE TABLE mastodon_status_deletions (
    status_id   bigint      PRIMARY KEY CHECK (status_id > 0),
    deleted_at  timestamptz NOT NULL,
    source      text        NOT NULL CHECK (source <> ''),
    ingested_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE mastodon_statuses ADD COLUMN deleted_at timestamptz;
CREATE INDEX mastodon_statuses_deleted_at_idx ON mastodon_statuses (deleted_at) WHERE deleted_at IS NOT NULL;

CREATE FUNCTION mastodon_status_born_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.deleted_at IS NULL THEN
        SELECT d.deleted_at INTO NEW.deleted_at FROM mastodon_status_deletions d WHERE d.status_id = NEW.id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER mastodon_statuses_born_deleted BEFORE INSERT ON mastodon_statuses
    FOR EACH ROW EXECUTE FUNCTION mastodon_status_born_deleted();

CREATE FUNCTION mastodon_status_mark_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mastodon_statuses SET deleted_at = NEW.deleted_at WHERE id = NEW.status_id AND deleted_at IS NULL;
    RETURN NULL;
END $$;
CREATE TRIGGER mastodon_status_deletions_mark AFTER INSERT ON mastodon_status_deletions
    FOR EACH ROW EXECUTE FUNCTION mastodon_status_mark_deleted();

ALTER PUBLICATION ingest_cdc ADD TABLE mastodon_status_deletions;
"#;

const DOWN: &str = r#"
ALTER PUBLICATION ingest_cdc DROP TABLE mastodon_status_deletions;
DROP TRIGGER mastodon_status_deletions_mark ON mastodon_status_deletions;
DROP FUNCTION mastodon_status_mark_deleted();
DROP TRIGGER mastodon_statuses_born_deleted ON mastodon_statuses;
DROP FUNCTION mastodon_status_born_deleted();
ALTER TABLE mastodon_statuses DROP COLUMN deleted_at;
DROP TABLE mastodon_status_deletions;
"#;

crate::sql::sql_migration!(UP, DOWN);
