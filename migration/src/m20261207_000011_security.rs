//! The database's side of the security review: no role but `ingest_owner` acts as `ingest_owner`, and
//! retention is the owner's to set.
//!
//! - Every `SECURITY DEFINER` function runs with `search_path = public, pg_temp` and names what it
//!   touches with its schema. A definer function whose `search_path` does not name `pg_temp` searches it
//!   first for relations, and any login may create temporary tables (unless `roles.sql` revoked TEMPORARY):
//!   a caller's temporary `instagram_profiles` with a trigger of its own would then run as the owner.
//!   `pg_catalog` is left implicit, so that it stays first: pg_partman's functions, which the maintenance
//!   calls, search `partman, pg_temp` and then the caller's path, and name catalog tables unqualified; a
//!   caller's path naming `pg_catalog` would put `pg_temp` before it there.
//! - Retention moves from the caller's argument to `ingest.partition_policy`, a table of the owner's in a
//!   schema no other role may use: the inserter runs `ingest_partition_maintenance(table)`, which applies
//!   the retention the owner set there (`migration retention`, or an UPDATE as the owner). Before, the
//!   inserter chose it, down to one day, for any partitioned table.
//! - A run locks its table's policy row instead of taking an advisory lock: any login may take any advisory
//!   lock and so make every run find "nothing to do", while a row lock needs UPDATE on the row, which only
//!   the owner has. A run that finds the row locked (another inserter's run) says it `skipped`, and every
//!   run returns when one last did its work, which the inserter exports for an alert.

use sea_orm_migration::prelude::*;

use crate::m20261201_000007_instagram_one_profile_per_account::MERGE_GRAPH_ROW;
use crate::m20261201_000010_partitioned_posts::MAINTENANCE_BY_CALLER;

const UP_BEFORE_MAINTENANCE: &str = r#"
-- SECURITY DEFINER: the merge deletes the duplicate, and the inserter's role has no DELETE. The references
-- are moved before the delete, which would otherwise cascade to them.
CREATE OR REPLACE FUNCTION public.instagram_profile_merge_graph_row() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    graph_id constant bigint := NEW.graph_user_id;
    web_id constant bigint := NEW.user_id;
BEGIN
    IF graph_id = web_id OR NOT EXISTS (
        SELECT 1 FROM public.instagram_profiles
         WHERE user_id = graph_id AND (raw IS NULL OR source LIKE 'instagram.graph.%')
    ) THEN
        RETURN NULL;
    END IF;
    -- A snapshot the web-id row already has at that instant stays as it is; the other one goes with the row.
    UPDATE public.instagram_profile_snapshots s SET user_id = web_id
     WHERE s.user_id = graph_id
       AND NOT EXISTS (SELECT 1 FROM public.instagram_profile_snapshots w
                        WHERE w.user_id = web_id AND w.scraped_at = s.scraped_at);
    UPDATE public.instagram_posts SET owner_id = web_id WHERE owner_id = graph_id;
    UPDATE public.instagram_comments SET author_id = web_id WHERE author_id = graph_id;
    INSERT INTO public.instagram_post_tagged_users (media_id, user_id)
        SELECT media_id, web_id FROM public.instagram_post_tagged_users WHERE user_id = graph_id
        ON CONFLICT DO NOTHING;
    DELETE FROM public.instagram_profiles WHERE user_id = graph_id;
    RETURN NULL;
END $$;

-- The owner's settings for the partition maintenance, one row per partitioned table. No other role is
-- granted anything in this schema (the default privileges of roles.sql are for schema public).
CREATE SCHEMA ingest;
REVOKE ALL ON SCHEMA ingest FROM PUBLIC;
CREATE TABLE ingest.partition_policy (
    table_name text PRIMARY KEY
        CHECK (table_name IN ('twitter_data', 'mastodon_statuses', 'instagram_profile_snapshots')),
    -- Partitions wholly older than now - retention are dropped; NULL keeps them for ever. At least one
    -- partition's span (a day): a shorter one would drop the partition being written.
    retention interval CHECK (retention >= interval '1 day'),
    -- When a maintenance run of this table last did its work (made the coming partitions, applied the
    -- retention); NULL until the first.
    last_done_at timestamptz
);
INSERT INTO ingest.partition_policy (table_name)
VALUES ('twitter_data'), ('mastodon_statuses'), ('instagram_profile_snapshots');

DROP FUNCTION public.ingest_partition_maintenance(text, interval);
"#;

/// The partition maintenance by the owner's policy as this migration made it, for the three tables it names;
/// `m20261207_000012_bluesky` replaces it with one naming more, and its `down` restores this.
pub(crate) const MAINTENANCE_BY_POLICY: &str = r#"
-- What the inserter runs on a schedule, for one table: the partitions for today and `premake` days ahead
-- exist, and with the owner's retention (ingest.partition_policy), the partitions wholly older than now -
-- retention are dropped (DROP TABLE: no row is deleted, so no change event is sent for them). SECURITY
-- DEFINER: the inserter has no DDL; it may run this and nothing else. The lock timeout keeps a DROP or CREATE
-- waiting behind a long read from queueing every insert behind itself; a timed-out run fails and the next
-- one does the work.
CREATE FUNCTION public.ingest_partition_maintenance(tbl text, OUT created integer, OUT dropped integer,
                                                    OUT skipped boolean, OUT retention interval,
                                                    OUT last_done_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET TimeZone = 'UTC'
    SET lock_timeout = '5s' AS $$
DECLARE
    parent constant text := 'public.' || tbl;
    cfg partman.part_config%ROWTYPE;
    policy ingest.partition_policy%ROWTYPE;
    by_id boolean;
    span interval;
    part record;
    info record;
BEGIN
    created := 0;
    dropped := 0;
    skipped := false;
    SELECT * INTO cfg FROM partman.part_config c WHERE c.parent_table = parent;
    IF NOT FOUND OR tbl NOT IN ('twitter_data', 'mastodon_statuses', 'instagram_profile_snapshots') THEN
        RAISE EXCEPTION 'ingest_partition_maintenance: % is not a partitioned table of the pipeline', tbl;
    END IF;
    -- Several inserters share a group: the one that locks the row does the run, the others skip it.
    SELECT * INTO policy FROM ingest.partition_policy p WHERE p.table_name = tbl FOR NO KEY UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        SELECT p.retention, p.last_done_at INTO retention, last_done_at
          FROM ingest.partition_policy p WHERE p.table_name = tbl;
        skipped := true;
        RETURN;
    END IF;
    retention := policy.retention;

    by_id := public.ingest_partition_key_at(tbl, now()) IS NOT NULL;
    span := public.ingest_partition_span(tbl);
    created := public.ingest_partition_create(tbl, now(), now() + span * cfg.premake);
    IF retention IS NOT NULL THEN
        FOR part IN SELECT partition_schemaname AS s, partition_tablename AS t
                      FROM partman.show_partitions(parent, 'ASC') LOOP
            SELECT * INTO info
              FROM partman.show_partition_info(format('%I.%I', part.s, part.t), cfg.partition_interval, parent);
            IF (by_id AND info.child_start_id + cfg.partition_interval::bigint
                          <= public.ingest_partition_key_at(tbl, now() - retention))
               OR (NOT by_id AND info.child_start_time + span <= now() - retention) THEN
                EXECUTE format('DROP TABLE %I.%I', part.s, part.t);
                dropped := dropped + 1;
            END IF;
        END LOOP;
    END IF;
    last_done_at := now();
    UPDATE ingest.partition_policy p SET last_done_at = now() WHERE p.table_name = tbl;
END $$;
"#;

const UP_AFTER_MAINTENANCE: &str = r#"REVOKE ALL ON FUNCTION public.ingest_partition_maintenance(text) FROM PUBLIC;
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'inserter') THEN
        GRANT EXECUTE ON FUNCTION public.ingest_partition_maintenance(text) TO inserter;
        -- The migrations' own bookkeeping: the inserter reads it (are the migrations applied?), and marking
        -- a migration applied is the owner's alone.
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON public.seaql_migrations FROM inserter;
    END IF;
    -- `inserter redrive` deletes the dead letters it re-drives (roles.sql makes the role).
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'redriver') THEN
        GRANT DELETE ON public.ingest_errors TO redriver;
    END IF;
END $$;

-- Debezium reads what it publishes and nothing else: not the pipeline's bookkeeping (offsets, dead letters
-- with their raw payloads), not the migrations', not the views. A migration that publishes a table grants
-- debezium SELECT on it (roles.sql no longer gives debezium every new table).
DO $$ DECLARE
    rel record;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'debezium') THEN
        FOR rel IN SELECT c.oid::regclass AS name,
                          EXISTS (SELECT 1 FROM pg_publication_tables p
                                   WHERE p.pubname = 'ingest_cdc' AND p.schemaname = 'public'
                                     AND p.tablename = c.relname) AS published
                     FROM pg_class c
                    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
                      AND NOT c.relispartition LOOP
            IF rel.published THEN
                EXECUTE format('GRANT SELECT ON %s TO debezium', rel.name);
            ELSE
                EXECUTE format('REVOKE ALL ON %s FROM debezium', rel.name);
            END IF;
        END LOOP;
    END IF;
END $$;
"#;

fn down() -> String {
    [
        "DROP FUNCTION public.ingest_partition_maintenance(text);\nDROP SCHEMA ingest CASCADE;\n",
        MAINTENANCE_BY_CALLER,
        MERGE_GRAPH_ROW,
        r#"
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'inserter') THEN
        GRANT INSERT, UPDATE ON public.seaql_migrations TO inserter;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'redriver') THEN
        REVOKE DELETE ON public.ingest_errors FROM redriver;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'debezium') THEN
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO debezium;
    END IF;
END $$;
"#,
    ]
    .concat()
}

fn up() -> String {
    [UP_BEFORE_MAINTENANCE, MAINTENANCE_BY_POLICY, UP_AFTER_MAINTENANCE].concat()
}

crate::sql::sql_migration!(&up(), &down());
