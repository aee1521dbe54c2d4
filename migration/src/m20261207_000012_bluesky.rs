//! Bluesky, as Jetstream streams it: `bluesky_posts` (post records), `bluesky_interactions` (likes, reposts,
//! follows), `bluesky_deletions` (the records deleted) and `bluesky_account_events` (identity and account
//! events); the analysts' view `bluesky_accounts` (each account's latest handle and status).
//!
//! All four grow without end, so all four are partitioned by day from the start, as pg_partman time sets like
//! `instagram_profile_snapshots`: made with today's partition and 4 days ahead, registered in
//! `ingest.partition_policy` (their retention is the owner's, `migration retention --bluesky-retention`), and
//! named in `ingest_partition_maintenance`, which is replaced with the same signature. All four are published,
//! with their partitions' replica identities and debezium's SELECT, as the other data tables.
//!
//! A record is `at://DID/COLLECTION/RKEY`, and the record keys of posts, likes, reposts and follows are TIDs:
//! 13 characters of base32-sortable that encode the microseconds when the author's client made the record.
//! `rkey_at`, that time, is a function of the key and never changes: it is the partition key, and so a column
//! of the primary key (Postgres requires a partitioned table's unique keys to hold the partition key). A
//! record's create, update and delete name the same `(did, rkey, rkey_at)`, so the upsert's conflict check and
//! a deletion's mark each read one partition. A client may claim any time: a record whose `rkey_at` has no
//! partition (years back, or ahead) lands in the default partition, as for the other tables. Account events
//! have no record key: their own time (`event_at`) partitions them.
//!
//! Deletions work as Mastodon's (`m20261201_000006`): a delete commit is a row of `bluesky_deletions`, and
//! triggers keep `deleted_at` of the record's row in step, whichever of the two is written first. Triggers on
//! a partitioned table are defined on it and cloned to every partition, the default one and those made later
//! included.

use sea_orm_migration::prelude::*;

use crate::m20261207_000011_security::MAINTENANCE_BY_POLICY;

/// The tables this migration adds, all partitioned and published.
const TABLES: [&str; 4] = ["bluesky_posts", "bluesky_interactions", "bluesky_deletions", "bluesky_account_events"];

/// The partitioned tables before this migration, as `ingest_partition_maintenance` and the policy's CHECK
/// name them.
const PARTITIONED_BEFORE: &str = "'twitter_data', 'mastodon_statuses', 'instagram_profile_snapshots'";

// `did` and `rkey` are bounded as the AT Protocol specification bounds them (a DID at most 2048 bytes, a record
// key at most 512), which `contract::atproto` checks on both sides of Kafka: with a collection of at most 21
// bytes (one of the CHECKed names) and `rkey_at`, every key fits a btree entry, so no key column needs a
// length rule in the inserter. The text[] columns default to '{}' as X's and Mastodon's do.
//
// The trigger functions name their tables with the schema; they are not SECURITY DEFINER (they run as the
// writer, who may update both tables).
const TABLES_SQL: &str = r#"
CREATE TABLE bluesky_posts (
    did              text        NOT NULL CHECK (did LIKE 'did:%' AND octet_length(did) <= 2048),
    rkey             text        NOT NULL CHECK (rkey <> '' AND octet_length(rkey) <= 512),
    rkey_at          timestamptz NOT NULL,
    uri              text        NOT NULL,
    cid              text        NOT NULL,
    created_at       timestamptz,
    text             text        NOT NULL,
    langs            text[]      NOT NULL DEFAULT '{}',
    reply_parent_uri text,
    reply_root_uri   text,
    quoted_uri       text,
    hashtags         text[]      NOT NULL DEFAULT '{}',
    mentions         text[]      NOT NULL DEFAULT '{}',
    links            text[]      NOT NULL DEFAULT '{}',
    event_at         timestamptz NOT NULL,
    deleted_at       timestamptz,
    raw              jsonb       NOT NULL,
    source           text        NOT NULL,
    scraped_at       timestamptz NOT NULL,
    ingested_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (did, rkey, rkey_at)
) PARTITION BY RANGE (rkey_at);
CREATE INDEX bluesky_posts_created_at_idx ON bluesky_posts (created_at);
CREATE INDEX bluesky_posts_reply_root_idx ON bluesky_posts (reply_root_uri) WHERE reply_root_uri IS NOT NULL;
CREATE INDEX bluesky_posts_hashtags_idx ON bluesky_posts USING gin (hashtags);
CREATE INDEX bluesky_posts_mentions_idx ON bluesky_posts USING gin (mentions);
CREATE INDEX bluesky_posts_deleted_at_idx ON bluesky_posts (deleted_at) WHERE deleted_at IS NOT NULL;
-- Upserted (an update event replaces the record) and marked deleted: Debezium needs the whole old row.
ALTER TABLE bluesky_posts REPLICA IDENTITY FULL;

CREATE TABLE bluesky_interactions (
    did         text        NOT NULL CHECK (did LIKE 'did:%' AND octet_length(did) <= 2048),
    collection  text        NOT NULL
        CHECK (collection IN ('app.bsky.feed.like', 'app.bsky.feed.repost', 'app.bsky.graph.follow')),
    rkey        text        NOT NULL CHECK (rkey <> '' AND octet_length(rkey) <= 512),
    rkey_at     timestamptz NOT NULL,
    uri         text        NOT NULL,
    cid         text        NOT NULL,
    subject_uri text,
    subject_cid text,
    subject_did text,
    created_at  timestamptz,
    event_at    timestamptz NOT NULL,
    deleted_at  timestamptz,
    raw         jsonb       NOT NULL,
    source      text        NOT NULL,
    scraped_at  timestamptz NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (did, collection, rkey, rkey_at)
) PARTITION BY RANGE (rkey_at);
CREATE INDEX bluesky_interactions_subject_uri_idx ON bluesky_interactions (subject_uri) WHERE subject_uri IS NOT NULL;
CREATE INDEX bluesky_interactions_subject_did_idx ON bluesky_interactions (subject_did) WHERE subject_did IS NOT NULL;
CREATE INDEX bluesky_interactions_deleted_at_idx ON bluesky_interactions (deleted_at) WHERE deleted_at IS NOT NULL;
ALTER TABLE bluesky_interactions REPLICA IDENTITY FULL;

-- Written once (the first deletion read stands), never updated: the key identifies a row.
CREATE TABLE bluesky_deletions (
    did         text        NOT NULL CHECK (did LIKE 'did:%' AND octet_length(did) <= 2048),
    collection  text        NOT NULL CHECK (collection IN ('app.bsky.feed.post', 'app.bsky.feed.like',
                                                           'app.bsky.feed.repost', 'app.bsky.graph.follow')),
    rkey        text        NOT NULL CHECK (rkey <> '' AND octet_length(rkey) <= 512),
    rkey_at     timestamptz NOT NULL,
    deleted_at  timestamptz NOT NULL,
    source      text        NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (did, collection, rkey, rkey_at)
) PARTITION BY RANGE (rkey_at);

-- Append-only, as the deletions.
CREATE TABLE bluesky_account_events (
    did         text        NOT NULL CHECK (did LIKE 'did:%' AND octet_length(did) <= 2048),
    seq         bigint      NOT NULL,
    event_at    timestamptz NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('identity', 'account')),
    handle      text,
    active      boolean,
    status      text,
    raw         jsonb       NOT NULL,
    source      text        NOT NULL,
    scraped_at  timestamptz NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (did, seq, event_at)
) PARTITION BY RANGE (event_at);
CREATE INDEX bluesky_account_events_did_event_at_idx ON bluesky_account_events (did, event_at);

-- A record written after its deletion (a replay, an event read late) is born deleted.
CREATE FUNCTION bluesky_post_born_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.deleted_at IS NULL THEN
        SELECT d.deleted_at INTO NEW.deleted_at FROM public.bluesky_deletions d
         WHERE d.did = NEW.did AND d.collection = 'app.bsky.feed.post' AND d.rkey = NEW.rkey
           AND d.rkey_at = NEW.rkey_at;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER bluesky_posts_born_deleted BEFORE INSERT ON bluesky_posts
    FOR EACH ROW EXECUTE FUNCTION bluesky_post_born_deleted();

CREATE FUNCTION bluesky_interaction_born_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.deleted_at IS NULL THEN
        SELECT d.deleted_at INTO NEW.deleted_at FROM public.bluesky_deletions d
         WHERE d.did = NEW.did AND d.collection = NEW.collection AND d.rkey = NEW.rkey
           AND d.rkey_at = NEW.rkey_at;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER bluesky_interactions_born_deleted BEFORE INSERT ON bluesky_interactions
    FOR EACH ROW EXECUTE FUNCTION bluesky_interaction_born_deleted();

-- A deletion marks its record, if it is there: a post in bluesky_posts, any other in bluesky_interactions.
CREATE FUNCTION bluesky_record_mark_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.collection = 'app.bsky.feed.post' THEN
        UPDATE public.bluesky_posts SET deleted_at = NEW.deleted_at
         WHERE did = NEW.did AND rkey = NEW.rkey AND rkey_at = NEW.rkey_at AND deleted_at IS NULL;
    ELSE
        UPDATE public.bluesky_interactions SET deleted_at = NEW.deleted_at
         WHERE did = NEW.did AND collection = NEW.collection AND rkey = NEW.rkey AND rkey_at = NEW.rkey_at
           AND deleted_at IS NULL;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER bluesky_deletions_mark AFTER INSERT ON bluesky_deletions
    FOR EACH ROW EXECUTE FUNCTION bluesky_record_mark_deleted();
"#;

/// Registers `tbl` with pg_partman as a time set of days by `control`, and makes today's partition and the
/// next 4 (with the default one), each with the table's replica identity.
fn partition(tbl: &str, control: &str) -> String {
    format!(
        r#"
SELECT partman.create_parent(p_parent_table => 'public.{tbl}', p_control => '{control}', p_type => 'native',
                             p_interval => '1 day', p_premake => 4, p_automatic_maintenance => 'off',
                             p_jobmon => false, p_start_partition => date_trunc('day', now(), 'UTC')::text);
SELECT ingest_partition_create('{tbl}', now(), now() + interval '4 days');
"#
    )
}

/// `table_name IN (...)` as the policy's CHECK and the maintenance write it: the tables before, and `more`.
fn table_list(more: &[&str]) -> String {
    let mut list = PARTITIONED_BEFORE.to_owned();
    for table in more {
        list += &format!(", '{table}'");
    }
    list
}

/// `ingest_partition_maintenance` as `m20261207_000011_security` made it, naming the partitioned tables before
/// and `more`, as a `CREATE OR REPLACE` (which keeps the function's owner and grants).
fn maintenance(more: &[&str]) -> String {
    let before = format!("tbl NOT IN ({PARTITIONED_BEFORE})");
    assert_eq!(MAINTENANCE_BY_POLICY.matches(&before).count(), 1, "the maintenance names its tables once");
    let create = "CREATE FUNCTION public.ingest_partition_maintenance(";
    assert_eq!(MAINTENANCE_BY_POLICY.matches(create).count(), 1);
    MAINTENANCE_BY_POLICY
        .replacen(create, "CREATE OR REPLACE FUNCTION public.ingest_partition_maintenance(", 1)
        .replace(&before, &format!("tbl NOT IN ({})", table_list(more)))
}

/// The policy's CHECK on `table_name`, naming the partitioned tables before and `more`.
fn policy_check(more: &[&str]) -> String {
    format!(
        "ALTER TABLE ingest.partition_policy DROP CONSTRAINT partition_policy_table_name_check,\n    \
         ADD CONSTRAINT partition_policy_table_name_check CHECK (table_name IN ({}));\n",
        table_list(more)
    )
}

// One row per account the events name. `handle` is the newest identity event's that carries one, `active`
// and `status` the newest account event's: newest by the event's own time, then by the relay's sequence
// number. An aggregate grouped by `did` rather than a join of two: a filter on `did` goes down to the scan
// (one probe of each partition's (did, event_at) index), and without one the events are read once.
//
// `security_invoker`, as the views of `m20261201_000009`: it reads the table with its reader's privileges;
// the analyst gets SELECT on it from ingest_owner's default privileges.
const VIEW: &str = r#"
CREATE VIEW bluesky_accounts WITH (security_invoker = true) AS
SELECT did,
       (array_agg(handle ORDER BY event_at DESC, seq DESC)
            FILTER (WHERE kind = 'identity' AND handle IS NOT NULL))[1] AS handle,
       max(event_at) FILTER (WHERE kind = 'identity' AND handle IS NOT NULL) AS handle_at,
       (array_agg(active ORDER BY event_at DESC, seq DESC) FILTER (WHERE kind = 'account'))[1] AS active,
       (array_agg(status ORDER BY event_at DESC, seq DESC) FILTER (WHERE kind = 'account'))[1] AS status,
       max(event_at) FILTER (WHERE kind = 'account') AS status_at
  FROM bluesky_account_events
 GROUP BY did;
"#;

// Debezium reads the published tables, and not the view (which an install whose default privileges predate
// `m20261207_000011_security` would otherwise give it).
const GRANTS: &str = r#"
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'debezium') THEN
        GRANT SELECT ON bluesky_posts, bluesky_interactions, bluesky_deletions, bluesky_account_events TO debezium;
        REVOKE ALL ON bluesky_accounts FROM debezium;
    END IF;
END $$;
"#;

fn up_sql() -> String {
    let tables = TABLES.join(", ");
    let policy_rows: Vec<String> = TABLES.iter().map(|t| format!("('{t}')")).collect();
    [
        // pg_partman names time partitions by the session's zone: days are UTC days, as for the other sets.
        "SET LOCAL TimeZone = 'UTC';\n".to_owned(),
        TABLES_SQL.to_owned(),
        partition("bluesky_posts", "rkey_at"),
        partition("bluesky_interactions", "rkey_at"),
        partition("bluesky_deletions", "rkey_at"),
        partition("bluesky_account_events", "event_at"),
        policy_check(&TABLES),
        format!("INSERT INTO ingest.partition_policy (table_name) VALUES {};\n", policy_rows.join(", ")),
        maintenance(&TABLES),
        format!("ALTER PUBLICATION ingest_cdc ADD TABLE {tables};\n"),
        VIEW.to_owned(),
        GRANTS.to_owned(),
    ]
    .concat()
}

fn down_sql() -> String {
    let tables = TABLES.join(", ");
    let quoted: Vec<String> = TABLES.iter().map(|t| format!("'{t}'")).collect();
    let parents: Vec<String> = TABLES.iter().map(|t| format!("'public.{t}'")).collect();
    let templates: Vec<String> = TABLES.iter().map(|t| format!("partman.template_public_{t}")).collect();
    [
        maintenance(&[]),
        format!("DELETE FROM ingest.partition_policy WHERE table_name IN ({});\n", quoted.join(", ")),
        policy_check(&[]),
        "DROP VIEW bluesky_accounts;\n".to_owned(),
        format!("ALTER PUBLICATION ingest_cdc DROP TABLE {tables};\n"),
        format!("DELETE FROM partman.part_config WHERE parent_table IN ({});\n", parents.join(", ")),
        format!("DROP TABLE IF EXISTS {};\n", templates.join(", ")),
        format!("DROP TABLE {tables};\n"),
        "DROP FUNCTION bluesky_record_mark_deleted();\n\
         DROP FUNCTION bluesky_interaction_born_deleted();\n\
         DROP FUNCTION bluesky_post_born_deleted();\n"
            .to_owned(),
    ]
    .concat()
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::sql::run(manager, &up_sql()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::sql::run(manager, &down_sql()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_maintenance_names_the_new_tables_and_down_gives_back_the_old_text() {
        let up = maintenance(&TABLES);
        for table in TABLES {
            assert!(up.contains(&format!("'{table}'")), "{table}");
        }
        assert!(up.contains("CREATE OR REPLACE FUNCTION public.ingest_partition_maintenance(tbl text,"));
        let down = maintenance(&[]);
        assert_eq!(down.replacen("CREATE OR REPLACE FUNCTION", "CREATE FUNCTION", 1), MAINTENANCE_BY_POLICY);
    }
}
