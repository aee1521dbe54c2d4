//! Time partitions for the tables that grow without end: `twitter_data` and `mastodon_statuses` by ranges of
//! their ids, `instagram_profile_snapshots` by `scraped_at`, one partition per day, the sets registered with
//! pg_partman (4.x, schema `partman`). Retention drops whole partitions: `ingest_partition_maintenance`, which
//! the inserter calls on a schedule, creates the coming days' partitions and drops those older than the
//! retention it is given; no row is ever deleted for retention.
//!
//! The keys stay what they were. X ids and Mastodon ids are snowflakes whose high bits are their creation
//! time (X: milliseconds since 2010-11-04T01:42:54.657Z, shifted by 22 bits; Mastodon: Unix milliseconds,
//! shifted by 16), so a range of ids is a range of time and the primary keys (`tweet_id`, `(instance, id)`),
//! the inserter's `ON CONFLICT` targets and Debezium's message keys are unchanged. Partitioning by
//! `created_at` instead would have widened each key by a column the key already implies, and every
//! downstream consumer's key with it.
//!
//! pg_partman makes and names the partitions, but its own `run_maintenance` is not used for the id sets
//! (`automatic_maintenance = off`): for an id set it follows the largest id stored, default partition
//! included, so one far-future id would make it create every partition up to that id and then drop every
//! real partition as older than the retention. The maintenance here reads the clock instead: partitions
//! exist from today to `premake` days ahead, and retention counts back from now.
//!
//! A row outside the partitions made (an old backfill, an id from the future) lands in the default
//! partition. When maintenance later makes the partition such rows belong to, it moves them there first (a
//! default partition may not hold rows of a partition's range); the change stream shows the move as the
//! row's delete and insert in one transaction.
//!
//! pg_partman's functions end by setting the caller's `search_path` back for the whole session (`set_config(...,
//! false)`), which outlives the `SET search_path` of a function that calls them: so the functions here set
//! it to `public, pg_temp`, which is what an unqualified name meant before (pg_catalog first, then public).
//!
//! The CDC stays whole: the publication publishes through the partition root, so a change to any partition
//! is reported as a change of its table (Debezium's topic stays `postgres.public.twitter_data`), and every
//! partition, the default one and those made later included, has its table's replica identity.
//!
//! `up` rebuilds each table in place (rename, create partitioned, copy, drop the old one, then its indexes,
//! constraints, triggers, grants and publication membership, recreated from the catalog as they were); `down`
//! rebuilds them as plain tables the same way. The analyst views, which name the tables, are dropped and
//! made again around the rebuild.

use sea_orm_migration::prelude::*;

use crate::m20261201_000009_analyst_views as views;

/// Defines the helpers that `UP` and `DOWN` share: `pg_temp` functions, gone when the session ends.
const REBUILD: &str = r#"
-- The statements that recreate what a table has beside its columns, CHECKs and defaults (which LIKE
-- copies): its indexes, primary key, unique and foreign keys, triggers and grants, read from the catalog.
CREATE OR REPLACE FUNCTION pg_temp.ingest_table_extras(tbl regclass) RETURNS text[] LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(stmt ORDER BY ord, stmt), '{}') FROM (
        SELECT 1 AS ord, format('ALTER TABLE %s ADD CONSTRAINT %I %s', tbl, conname, pg_get_constraintdef(oid)) AS stmt
          FROM pg_constraint WHERE conrelid = tbl AND contype IN ('p', 'u', 'f', 'x')
        UNION ALL
        SELECT 2, replace(pg_get_indexdef(i.indexrelid), ' ON ONLY ', ' ON ')
          FROM pg_index i
         WHERE i.indrelid = tbl AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        UNION ALL
        SELECT 3, pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = tbl AND NOT tgisinternal AND tgparentid = 0
        UNION ALL
        SELECT 4, format('GRANT %s ON %s TO %s', a.privilege_type, tbl,
                         CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(a.grantee::regrole::text) END)
          FROM pg_class c, aclexplode(c.relacl) a
         WHERE c.oid = tbl AND a.grantee <> c.relowner
        UNION ALL
        SELECT 5, format('ALTER PUBLICATION %I ADD TABLE %s', p.pubname, tbl)
          FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid WHERE r.prrelid = tbl
    ) AS extras
$$;

-- Rebuilds public.<tbl> as `CREATE TABLE ... <partition_by>` (empty: a plain table), running `setup` between
-- the new table's creation and the copy of the rows, then gives it back everything it had.
CREATE OR REPLACE FUNCTION pg_temp.ingest_rebuild(tbl text, partition_by text, setup text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    old_name constant text := tbl || '_before_rebuild';
    extras text[] := pg_temp.ingest_table_extras(format('public.%I', tbl)::regclass);
    identity "char";
    stmt text;
    referrer text;
BEGIN
    SELECT string_agg(conrelid::regclass::text, ', ') INTO referrer
      FROM pg_constraint WHERE confrelid = format('public.%I', tbl)::regclass AND contype = 'f';
    IF referrer IS NOT NULL THEN
        RAISE EXCEPTION 'cannot rebuild %: foreign keys of % reference it', tbl, referrer;
    END IF;
    SELECT relreplident INTO identity FROM pg_class WHERE oid = format('public.%I', tbl)::regclass;
    IF identity NOT IN ('d', 'f') THEN
        RAISE EXCEPTION 'cannot rebuild %: replica identity % is neither DEFAULT nor FULL', tbl, identity;
    END IF;

    EXECUTE format('ALTER TABLE public.%I RENAME TO %I', tbl, old_name);
    EXECUTE format('CREATE TABLE public.%I (LIKE public.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
                   'INCLUDING STORAGE INCLUDING COMMENTS) %s', tbl, old_name, partition_by);
    EXECUTE setup;
    EXECUTE format('INSERT INTO public.%I SELECT * FROM public.%I', tbl, old_name);
    EXECUTE format('DROP TABLE public.%I', old_name);
    FOREACH stmt IN ARRAY extras LOOP
        EXECUTE stmt;
    END LOOP;
    EXECUTE format('ALTER TABLE public.%I REPLICA IDENTITY %s', tbl,
                   CASE identity WHEN 'f' THEN 'FULL' ELSE 'DEFAULT' END);
    PERFORM ingest_partition_replica_identity(tbl);
END $$;
"#;

/// The partition maintenance, owned by the migrating role. Kept out of `REBUILD` because it outlives the
/// migration: the inserter calls it.
const MAINTENANCE: &str = r#"
-- The partition key that a post created at `at` has: the low end of its snowflake id, or `at` itself.
CREATE FUNCTION ingest_partition_key_at(tbl text, at timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE tbl
        WHEN 'twitter_data' THEN (floor(extract(epoch FROM at) * 1000)::bigint - 1288834974657) << 22
        WHEN 'mastodon_statuses' THEN floor(extract(epoch FROM at) * 1000)::bigint << 16
    END
$$;

-- The time one partition of `tbl` spans: a day of ids for the id sets (the intervals the migration gives
-- pg_partman are a day's ids), pg_partman's own interval for a time set.
CREATE FUNCTION ingest_partition_span(tbl text) RETURNS interval
LANGUAGE sql STABLE STRICT SET search_path = public, pg_temp AS $$
    SELECT CASE WHEN ingest_partition_key_at(tbl, now()) IS NOT NULL THEN interval '1 day'
                ELSE partition_interval::interval END
      FROM partman.part_config WHERE parent_table = 'public.' || tbl
$$;

-- Every partition of `tbl`, the default one included, gets the table's replica identity: Postgres does not
-- pass it on to partitions, nor does pg_partman, and a partition with DEFAULT under a FULL table would
-- send updates without their old row.
CREATE FUNCTION ingest_partition_replica_identity(tbl text) RETURNS void
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    parent constant regclass := format('public.%I', tbl)::regclass;
    wanted constant "char" := (SELECT relreplident FROM pg_class WHERE oid = parent);
    part regclass;
BEGIN
    FOR part IN SELECT c.oid FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = parent AND c.relreplident <> wanted LOOP
        EXECUTE format('ALTER TABLE %s REPLICA IDENTITY %s', part, CASE wanted WHEN 'f' THEN 'FULL' ELSE 'DEFAULT' END);
    END LOOP;
END $$;

-- Makes the partitions that hold keys from `since` to `until` (those missing), moving any rows of their
-- ranges out of the default partition first; returns how many it made. Bounds are pg_partman's own
-- (`show_partition_name`), so the rows moved are exactly those the new partition takes.
CREATE FUNCTION ingest_partition_create(tbl text, since timestamptz, until timestamptz) RETURNS integer
LANGUAGE plpgsql SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    parent constant text := 'public.' || tbl;
    default_part constant regclass := to_regclass(format('public.%I', tbl || '_default'));
    by_id constant boolean := ingest_partition_key_at(tbl, now()) IS NOT NULL;
    cfg partman.part_config%ROWTYPE;
    at timestamptz := since;
    step interval;
    part record;
    low text;
    high text;
    made integer := 0;
BEGIN
    SELECT * INTO STRICT cfg FROM partman.part_config WHERE parent_table = parent;
    step := ingest_partition_span(tbl);
    WHILE at < until + step LOOP
        SELECT * INTO part FROM partman.show_partition_name(parent,
            CASE WHEN by_id THEN ingest_partition_key_at(tbl, least(at, until))::text ELSE least(at, until)::text END);
        IF NOT part.table_exists THEN
            IF by_id THEN
                low := part.suffix_id::text;
                high := (part.suffix_id + cfg.partition_interval::bigint)::text;
            ELSE
                low := quote_literal(part.suffix_timestamp);
                high := quote_literal(part.suffix_timestamp + step);
            END IF;
            IF default_part IS NOT NULL THEN
                EXECUTE format('CREATE TEMPORARY TABLE ingest_partition_rows ON COMMIT DROP AS '
                               'WITH moved AS (DELETE FROM %s WHERE %I >= %s AND %I < %s RETURNING *) '
                               'SELECT * FROM moved', default_part, cfg.control, low, cfg.control, high);
            END IF;
            IF by_id THEN
                PERFORM partman.create_partition_id(parent, ARRAY[part.suffix_id], false);
            ELSE
                PERFORM partman.create_partition_time(parent, ARRAY[part.suffix_timestamp], false);
            END IF;
            IF default_part IS NOT NULL THEN
                EXECUTE format('INSERT INTO %s SELECT * FROM ingest_partition_rows', parent);
                DROP TABLE ingest_partition_rows;
            END IF;
            made := made + 1;
        END IF;
        at := at + step;
    END LOOP;
    PERFORM ingest_partition_replica_identity(tbl);
    RETURN made;
END $$;

REVOKE ALL ON FUNCTION ingest_partition_create(text, timestamptz, timestamptz) FROM PUBLIC;
"#;

/// The maintenance as this migration made it, with the retention the caller's to choose;
/// `m20261207_000011_security` replaces it and its `down` restores this.
pub(crate) const MAINTENANCE_BY_CALLER: &str = r#"
-- What the inserter runs on a schedule, for one table: the partitions for today and `premake` days ahead
-- exist, and with a retention, the partitions wholly older than now - retention are dropped (DROP TABLE:
-- no row is deleted, so no change event is sent for them). SECURITY DEFINER: the inserter has no DDL;
-- it may run this and nothing else. The lock timeout keeps a DROP or CREATE waiting behind a long read from
-- queueing every insert behind itself; a timed-out run fails and the next one does the work.
CREATE FUNCTION ingest_partition_maintenance(tbl text, retention interval DEFAULT NULL,
                                             OUT created integer, OUT dropped integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET TimeZone = 'UTC'
    SET lock_timeout = '5s' AS $$
DECLARE
    parent constant text := 'public.' || tbl;
    cfg partman.part_config%ROWTYPE;
    by_id boolean;
    span interval;
    part record;
    info record;
BEGIN
    SELECT * INTO cfg FROM partman.part_config WHERE parent_table = parent;
    IF NOT FOUND OR tbl NOT IN ('twitter_data', 'mastodon_statuses', 'instagram_profile_snapshots') THEN
        RAISE EXCEPTION 'ingest_partition_maintenance: % is not a partitioned table of the pipeline', tbl;
    END IF;
    by_id := ingest_partition_key_at(tbl, now()) IS NOT NULL;
    span := ingest_partition_span(tbl);
    IF retention IS NOT NULL AND retention < span THEN
        RAISE EXCEPTION 'ingest_partition_maintenance: the retention of % (%) is shorter than one partition (%)',
            tbl, retention, span;
    END IF;
    -- Several inserters share a group: one of them does the work, the others return at once.
    IF NOT pg_try_advisory_xact_lock(hashtext('ingest_partition_maintenance ' || parent)) THEN
        created := 0;
        dropped := 0;
        RETURN;
    END IF;

    created := ingest_partition_create(tbl, now(), now() + span * cfg.premake);
    dropped := 0;
    IF retention IS NULL THEN
        RETURN;
    END IF;
    FOR part IN SELECT partition_schemaname AS s, partition_tablename AS t
                  FROM partman.show_partitions(parent, 'ASC') LOOP
        SELECT * INTO info
          FROM partman.show_partition_info(format('%I.%I', part.s, part.t), cfg.partition_interval, parent);
        IF (by_id AND info.child_start_id + cfg.partition_interval::bigint
                      <= ingest_partition_key_at(tbl, now() - retention))
           OR (NOT by_id AND info.child_start_time + span <= now() - retention) THEN
            EXECUTE format('DROP TABLE %I.%I', part.s, part.t);
            dropped := dropped + 1;
        END IF;
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION ingest_partition_maintenance(text, interval) FROM PUBLIC;
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'inserter') THEN
        GRANT EXECUTE ON FUNCTION ingest_partition_maintenance(text, interval) TO inserter;
    END IF;
END $$;
"#;

// pg_partman must be 4.x (Debian bookworm's postgresql-15-partman, which the tests and the compose image
// both install): 5.x renamed `create_parent`'s partition types. The extension itself needs a superuser;
// `roles.sql` creates it before the migrations run as `ingest_owner`, so here it normally already exists.
//
// Partitions start at the day of the oldest row, but no more than 30 days back, and run `premake` (4) days
// ahead of today. Older rows stay in the default partition: every partition made here is locked by the
// migration's one transaction, and a year of days (each a table with its indexes) would outgrow the lock
// table. `SELECT ingest_partition_create('twitter_data', '2026-01-01', now())`, run as ingest_owner (with
// `max_locks_per_transaction` raised for a long range), moves them into partitions of their own later.
const PARTITION: &str = r#"
SET LOCAL TimeZone = 'UTC';
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_partman') THEN
        RAISE EXCEPTION 'pg_partman is not installed on this server: install postgresql-15-partman (4.x)';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_partman')
       AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RAISE EXCEPTION 'pg_partman is not created in this database, and only a superuser may create it: run '
            'docker/postgres/roles.sql as a superuser first (it creates the extension in schema partman)';
    END IF;
END $$;
CREATE SCHEMA IF NOT EXISTS partman;
CREATE EXTENSION IF NOT EXISTS pg_partman SCHEMA partman;
DO $$ DECLARE
    found record;
BEGIN
    SELECT extversion, extnamespace::regnamespace::text AS schema INTO found FROM pg_extension
     WHERE extname = 'pg_partman';
    IF found.extversion NOT LIKE '4.%' OR found.schema <> 'partman' THEN
        RAISE EXCEPTION 'pg_partman % in schema % found; these migrations need pg_partman 4.x in schema partman',
            found.extversion, found.schema;
    END IF;
END $$;
"#;

/// Partitions `tbl` by `control`, in partitions of `interval` (pg_partman's: ids, or a time interval), the
/// first holding `first` (a key, as text), and makes the partitions from the time of `oldest` (the oldest
/// row's, at most 30 days back) to 4 days ahead.
fn partition(tbl: &str, control: &str, interval: &str, first: &str, oldest: &str) -> String {
    format!(
        r#"
SELECT pg_temp.ingest_rebuild('{tbl}', 'PARTITION BY RANGE ({control})', $setup$
    SELECT partman.create_parent(p_parent_table => 'public.{tbl}', p_control => '{control}', p_type => 'native',
                                 p_interval => '{interval}', p_premake => 4, p_automatic_maintenance => 'off',
                                 p_jobmon => false, p_start_partition => ({first})::text);
    SELECT ingest_partition_create('{tbl}', greatest(coalesce(({oldest}), now()), now() - interval '30 days'),
                                   now() + interval '4 days');
$setup$);"#
    )
}

fn up_sql() -> String {
    // The oldest row's time, of X and Mastodon posts from their ids (the partition key), not `created_at`.
    let x_oldest = "SELECT to_timestamp(((min(tweet_id) >> 22) + 1288834974657) / 1000.0) \
                    FROM twitter_data_before_rebuild";
    let mastodon_oldest = "SELECT to_timestamp((min(id) >> 16) / 1000.0) FROM mastodon_statuses_before_rebuild";
    [
        PARTITION.to_string(),
        MAINTENANCE.to_string(),
        MAINTENANCE_BY_CALLER.to_string(),
        REBUILD.to_string(),
        views::DOWN.to_string(),
        partition(
            "twitter_data",
            "tweet_id",
            "362387865600000",
            "ingest_partition_key_at('twitter_data', now()) / 362387865600000 * 362387865600000",
            x_oldest,
        ),
        partition(
            "mastodon_statuses",
            "id",
            "5662310400000",
            "ingest_partition_key_at('mastodon_statuses', now()) / 5662310400000 * 5662310400000",
            mastodon_oldest,
        ),
        partition(
            "instagram_profile_snapshots",
            "scraped_at",
            "1 day",
            "date_trunc('day', now(), 'UTC')",
            "SELECT min(scraped_at) FROM instagram_profile_snapshots_before_rebuild",
        ),
        "ALTER PUBLICATION ingest_cdc SET (publish_via_partition_root = true);".to_string(),
        views::UP.to_string(),
    ]
    .concat()
}

fn down_sql() -> String {
    let unpart = |tbl: &str| {
        format!(
            r#"
DELETE FROM partman.part_config WHERE parent_table = 'public.{tbl}';
DROP TABLE IF EXISTS partman.template_public_{tbl};
SELECT pg_temp.ingest_rebuild('{tbl}', '', 'SELECT 1');"#
        )
    };
    [
        REBUILD.to_string(),
        views::DOWN.to_string(),
        unpart("twitter_data"),
        unpart("mastodon_statuses"),
        unpart("instagram_profile_snapshots"),
        "ALTER PUBLICATION ingest_cdc SET (publish_via_partition_root = false);".to_string(),
        views::UP.to_string(),
        r#"
DROP FUNCTION ingest_partition_maintenance(text, interval);
DROP FUNCTION ingest_partition_create(text, timestamptz, timestamptz);
DROP FUNCTION ingest_partition_replica_identity(text);
DROP FUNCTION ingest_partition_span(text);
DROP FUNCTION ingest_partition_key_at(text, timestamptz);
"#
        .to_string(),
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
