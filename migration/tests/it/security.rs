//! Migration `m20261207_000011` and roles.sql against the attacks of the security review, each run as the
//! role an attacker would hold: a definer function reached through a temporary table, retention chosen by
//! the inserter, maintenance silenced by an advisory lock, and roles wider than their job.

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use testkit::Postgres;
use testkit::stack::{apply_roles_named, role_url};

use crate::day_boundary::clear_of_a_partition_day_boundary;
use crate::sql::{exec, lines};

/// A database with the roles of compose and the schema migrated by its owner up to `to` (all: `None`).
async fn database(pg: &Postgres, to: Option<u32>) -> String {
    let (name, _) = pg.create_database().await.unwrap();
    apply_roles_named(pg, &name).unwrap();
    let owner = Database::connect(role_url(pg, "ingest_owner", &name)).await.unwrap();
    match to {
        None => Migrator::up(&owner, None).await.unwrap(),
        Some(n) => Migrator::up(&owner, Some(n)).await.unwrap(),
    }
    name
}

/// One connection as `role`, so that temporary objects and locks live in one session.
async fn session(pg: &Postgres, role: &str, database: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(role_url(pg, role, database));
    options.max_connections(1);
    Database::connect(options).await.unwrap()
}

/// The review's attack, as `inserter`: temporary tables named like those the profile merge touches, with a
/// trigger that runs a function of the attacker's, then a write that fires the merge. Returns whether the
/// attacker's function ran (as whoever ran the merge).
async fn attack_through_the_profile_merge(inserter: &DatabaseConnection) -> bool {
    exec(
        inserter,
        r#"
        CREATE TEMPORARY TABLE evil_ran (who text);
        CREATE FUNCTION pg_temp.evil() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO pg_temp.evil_ran VALUES (current_user);
            EXECUTE 'GRANT DELETE, TRUNCATE ON public.twitter_data TO inserter';
            EXECUTE 'DROP VIEW IF EXISTS public.posts_per_hour';
            RETURN NULL;
        END $$;
        CREATE TEMPORARY TABLE instagram_profiles (user_id bigint, graph_user_id bigint, raw jsonb, source text);
        INSERT INTO pg_temp.instagram_profiles VALUES (77, NULL, NULL, 'instagram.graph.x');
        CREATE TEMPORARY TABLE instagram_profile_snapshots (user_id bigint, scraped_at timestamptz);
        CREATE TEMPORARY TABLE instagram_posts (owner_id bigint);
        CREATE TEMPORARY TABLE instagram_comments (author_id bigint);
        CREATE TEMPORARY TABLE instagram_post_tagged_users (media_id bigint, user_id bigint);
        -- Whoever runs the merge must be able to read and write them.
        GRANT ALL ON pg_temp.evil_ran, pg_temp.instagram_profiles, pg_temp.instagram_profile_snapshots,
            pg_temp.instagram_posts, pg_temp.instagram_comments, pg_temp.instagram_post_tagged_users TO PUBLIC;
        "#,
    )
    .await;
    for table in ["instagram_profiles", "instagram_profile_snapshots", "instagram_posts", "instagram_comments"] {
        exec(
            inserter,
            &format!(
                "CREATE TRIGGER evil AFTER INSERT OR UPDATE OR DELETE ON pg_temp.{table}
                 FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.evil()"
            ),
        )
        .await;
    }
    // A minimal row keyed by a Graph id, then the web-id row that names it: the merge fires.
    exec(
        inserter,
        "INSERT INTO public.instagram_profiles (user_id, username) VALUES (77, 'graph');
         INSERT INTO public.instagram_profiles (user_id, graph_user_id, username, source, raw, scraped_at)
         VALUES (78, 77, 'web', 'instagram.web.profile', '{}', now());",
    )
    .await;
    lines(inserter, "SELECT count(*)::text FROM pg_temp.evil_ran").await != ["0"]
}

#[tokio::test]
async fn the_inserter_cannot_act_as_the_owner_through_the_profile_merge() {
    let pg = Postgres::start().await.unwrap();
    let as_superuser = |name: &str| Database::connect(pg.url(name));

    // Reproduced on the schema before the fix, with TEMPORARY as a database without roles.sql's revoke has it.
    let before = database(&pg, Some(10)).await;
    exec(&as_superuser(&before).await.unwrap(), &format!("GRANT TEMPORARY ON DATABASE {before} TO inserter")).await;
    let inserter = session(&pg, "inserter", &before).await;
    assert!(attack_through_the_profile_merge(&inserter).await, "the attack reproduces on migration 10");
    let escalated = "SELECT has_table_privilege('inserter', 'public.twitter_data', 'DELETE')::text";
    assert_eq!(lines(&inserter, escalated).await, ["true"]);

    // The same attack after the fix, still with TEMPORARY granted: the merge reads its own tables only.
    let after = database(&pg, None).await;
    exec(&as_superuser(&after).await.unwrap(), &format!("GRANT TEMPORARY ON DATABASE {after} TO inserter")).await;
    let inserter = session(&pg, "inserter", &after).await;
    assert!(!attack_through_the_profile_merge(&inserter).await, "the attacker's trigger never ran");
    assert_eq!(lines(&inserter, escalated).await, ["false"]);
    assert_eq!(lines(&inserter, "SELECT to_regclass('public.posts_per_hour')::text").await, ["posts_per_hour"]);
    let merged = "SELECT string_agg(user_id::text || '/' || coalesce(graph_user_id::text, '-'), ' ') \
                  FROM public.instagram_profiles";
    assert_eq!(lines(&inserter, merged).await, ["78/77"], "the real merge still happened");
}

/// Temporary views named like every relation the definer functions could read or write (the pipeline's, the
/// owner's settings, pg_partman's and the catalog's), each calling the attacker's function when read; a read
/// through one runs it, a write through one fails.
const SHADOWS: &str = r#"
SELECT DISTINCT ON (c.relname)
       format('CREATE TEMPORARY VIEW %I AS SELECT %s WHERE pg_temp.evil()', c.relname,
              (SELECT string_agg(format('NULL::%s AS %I', format_type(a.atttypid, a.atttypmod), a.attname), ', '
                                 ORDER BY a.attnum)
                 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped))
  FROM pg_class c
 WHERE c.relnamespace IN ('public'::regnamespace, 'ingest'::regnamespace, 'partman'::regnamespace,
                          'pg_catalog'::regnamespace)
   AND c.relkind IN ('r', 'v', 'p', 'm') AND NOT c.relispartition
   -- A view cannot have a column of a pseudo-type (anyarray), nor of an array of a row that has one.
   AND NOT EXISTS (SELECT 1 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                     LEFT JOIN pg_type e ON e.oid = t.typelem
                    WHERE a.attrelid = c.oid AND a.attnum > 0 AND (t.typtype = 'p' OR e.typtype IN ('p', 'c')))
 ORDER BY c.relname, c.relnamespace = 'pg_catalog'::regnamespace
"#;

#[tokio::test]
async fn no_definer_function_reads_or_writes_the_callers_temporary_relations() {
    clear_of_a_partition_day_boundary().await;
    let pg = Postgres::start().await.unwrap();
    let name = database(&pg, None).await;
    let superuser = Database::connect(pg.url(&name)).await.unwrap();
    exec(&superuser, &format!("GRANT TEMPORARY ON DATABASE {name} TO inserter")).await;
    let owner = session(&pg, "ingest_owner", &name).await;
    exec(&owner, "SELECT ingest_partition_create('twitter_data', now() - interval '10 days', now())").await;
    exec(&owner, "UPDATE ingest.partition_policy SET retention = interval '3 days'").await;
    // The newest partition of each table gone, so that the run makes one through pg_partman.
    for table in ["twitter_data", "mastodon_statuses", "instagram_profile_snapshots"] {
        let newest =
            format!("SELECT partition_tablename FROM partman.show_partitions('public.{table}', 'DESC') LIMIT 1");
        let newest = lines(&owner, &newest).await.remove(0);
        exec(&owner, &format!("DROP TABLE public.{newest}")).await;
    }
    let shadows = lines(&superuser, SHADOWS).await;
    assert!(shadows.len() > 100, "{}", shadows.len());

    let inserter = session(&pg, "inserter", &name).await;
    exec(
        &inserter,
        r#"
        CREATE TEMPORARY TABLE evil_ran (who text);
        GRANT ALL ON pg_temp.evil_ran TO PUBLIC;
        CREATE FUNCTION pg_temp.evil() RETURNS boolean LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO pg_temp.evil_ran VALUES (current_user);
            RETURN false;
        END $$;
        "#,
    )
    .await;
    for shadow in &shadows {
        exec(&inserter, shadow).await;
    }
    exec(&inserter, "GRANT ALL ON ALL TABLES IN SCHEMA pg_temp TO PUBLIC").await;

    // The maintenance (which calls pg_partman's functions) drops the old partitions.
    let maintained = lines(
        &inserter,
        "SELECT m.created || ' ' || m.dropped || ' ' || m.skipped \
           FROM unnest(ARRAY['twitter_data', 'mastodon_statuses', 'instagram_profile_snapshots']) AS t, \
                LATERAL public.ingest_partition_maintenance(t) AS m",
    )
    .await;
    assert_eq!(maintained, ["1 7 false", "1 0 false", "1 0 false"], "the work done, through the shadows");
    // The merge, through the inserter's own write.
    exec(
        &inserter,
        "INSERT INTO public.instagram_profiles (user_id, username) VALUES (77, 'graph');
         INSERT INTO public.instagram_profiles (user_id, graph_user_id, username, source, raw, scraped_at)
         VALUES (78, 77, 'web', 'instagram.web.profile', '{}', now());",
    )
    .await;
    let merged = "SELECT string_agg(user_id::text || '/' || coalesce(graph_user_id::text, '-'), ' ') \
                  FROM public.instagram_profiles";
    assert_eq!(lines(&inserter, merged).await, ["78/77"]);

    // The inserter's own triggers run as the inserter and may read its views: that is no escalation.
    let ran = "SELECT coalesce(string_agg(DISTINCT who, ' '), 'nobody') FROM pg_temp.evil_ran WHERE who <> 'inserter'";
    assert_eq!(lines(&inserter, ran).await, ["nobody"], "the attacker's function ran as someone else");
}

#[tokio::test]
async fn every_definer_function_searches_its_schemas_before_pg_temp() {
    let pg = Postgres::start().await.unwrap();
    let name = database(&pg, None).await;
    let owner = Database::connect(role_url(&pg, "ingest_owner", &name)).await.unwrap();
    let definers = "SELECT p.oid::regprocedure::text || ' ' || coalesce(array_to_string(p.proconfig, ';'), '-')
                      FROM pg_proc p WHERE p.prosecdef
                       AND p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace,
                                                  'partman'::regnamespace)
                     ORDER BY 1";
    let found = lines(&owner, definers).await;
    assert_eq!(found.len(), 2, "{found:?}");
    for function in &found {
        assert!(function.contains("search_path=public, pg_temp"), "{function}");
    }
    // Triggers run as whoever writes: none is a definer but the merge.
    let trigger_definers = "SELECT count(*)::text FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
                             WHERE p.prosecdef AND NOT t.tgisinternal
                               AND p.proname <> 'instagram_profile_merge_graph_row'";
    assert_eq!(lines(&owner, trigger_definers).await, ["0"]);
}

#[tokio::test]
async fn only_the_owner_may_create_temporary_tables() {
    let pg = Postgres::start().await.unwrap();
    let name = database(&pg, None).await;
    for role in ["inserter", "redriver", "debezium", "analyst"] {
        let db = session(&pg, role, &name).await;
        // The analyst's transactions are read-only by default, which would refuse the table for another reason.
        exec(&db, "SET default_transaction_read_only = off").await;
        let denied = db.execute_unprepared("CREATE TEMPORARY TABLE t (x int)").await.unwrap_err().to_string();
        assert!(denied.contains("permission denied"), "{role}: {denied}");
    }
    let owner = session(&pg, "ingest_owner", &name).await;
    exec(&owner, "CREATE TEMPORARY TABLE t (x int)").await;
}

#[tokio::test]
async fn retention_is_the_owners_and_the_inserter_only_runs_maintenance() {
    clear_of_a_partition_day_boundary().await;
    let pg = Postgres::start().await.unwrap();
    let name = database(&pg, None).await;
    let owner = session(&pg, "ingest_owner", &name).await;
    exec(&owner, "SELECT ingest_partition_create('twitter_data', now() - interval '10 days', now())").await;
    let partitions = "SELECT count(*)::text FROM pg_inherits WHERE inhparent = 'twitter_data'::regclass";
    assert_eq!(lines(&owner, partitions).await, ["16"], "the default, 10 days back, today, 4 ahead");

    let inserter = session(&pg, "inserter", &name).await;
    for attempt in [
        "UPDATE ingest.partition_policy SET retention = '1 day'",
        "SELECT ingest_partition_maintenance('twitter_data', interval '1 day')",
        "SELECT ingest_partition_create('twitter_data', now(), now())",
    ] {
        assert!(inserter.execute_unprepared(attempt).await.is_err(), "the inserter may not: {attempt}");
    }
    let run = "SELECT created || ' ' || dropped || ' ' || skipped || ' ' || coalesce(retention::text, 'forever') \
               FROM ingest_partition_maintenance('twitter_data')";
    assert_eq!(lines(&inserter, run).await, ["0 0 false forever"], "nothing is dropped until the owner says");

    use migration::retention::{Retention, set};
    let week = Retention::For(std::time::Duration::from_secs(7 * 86_400));
    set(&owner, &[("twitter_data", Some(week))]).await.unwrap();
    let day = Retention::For(std::time::Duration::from_secs(3_600));
    let too_short = set(&owner, &[("twitter_data", Some(week)), ("mastodon_statuses", Some(day))]).await;
    assert!(too_short.unwrap_err().to_string().contains("partition_policy_retention_check"));
    // Postgres reports the error before it rolls back and unlocks: one more round trip waits for that.
    exec(&owner, "SELECT 1").await;
    assert_eq!(lines(&inserter, run).await, ["0 3 false 7 days"], "the days wholly older than 7 days");
    let policy = migration::retention::show(&owner).await.unwrap();
    let of = |table: &str| policy.iter().find(|line| line.starts_with(&format!("{table}: "))).cloned();
    let snapshots = of("instagram_profile_snapshots").unwrap_or_default();
    assert!(snapshots.starts_with("instagram_profile_snapshots: keeps for ever, not maintained yet"), "{policy:?}");
    let posts = of("twitter_data").unwrap_or_default();
    assert!(posts.starts_with("twitter_data: keeps 7 days, maintained 2"), "{policy:?}");
}

#[tokio::test]
async fn a_run_skips_while_another_holds_the_table_and_an_advisory_lock_silences_nothing() {
    let pg = Postgres::start().await.unwrap();
    let name = database(&pg, None).await;
    let inserter = session(&pg, "inserter", &name).await;
    let run = "SELECT skipped::text || ' ' || (last_done_at IS NOT NULL)::text \
               FROM ingest_partition_maintenance('twitter_data')";

    // The review's silencer: any login may take the advisory lock the maintenance used to take.
    let analyst = session(&pg, "analyst", &name).await;
    exec(&analyst, "SELECT pg_advisory_lock(hashtext('ingest_partition_maintenance public.twitter_data'))").await;
    assert_eq!(lines(&inserter, run).await, ["false true"], "the run did its work");

    // Another inserter's run in progress: this one skips, and says when the table was last maintained.
    let other = session(&pg, "inserter", &name).await;
    exec(&other, "BEGIN; SELECT ingest_partition_maintenance('twitter_data')").await;
    assert_eq!(lines(&inserter, run).await, ["true true"]);
    exec(&other, "COMMIT").await;
    assert_eq!(lines(&inserter, run).await, ["false true"]);
}

#[tokio::test]
async fn each_role_reaches_what_its_job_needs_and_nothing_more() {
    let pg = Postgres::start().await.unwrap();
    let name = database(&pg, None).await;
    let owner = session(&pg, "ingest_owner", &name).await;
    let may = |role: &str, table: &str, privilege: &str| {
        format!("SELECT has_table_privilege('{role}', 'public.{table}', '{privilege}')::text")
    };
    let check = async |role: &str, table: &str, privilege: &str, expected: bool| {
        let got = lines(&owner, &may(role, table, privilege)).await;
        assert_eq!(got, [expected.to_string()], "{role} {privilege} on {table}");
    };
    // Debezium: the published tables alone.
    for table in migration::PUBLISHED_TABLES {
        check("debezium", table, "SELECT", true).await;
    }
    for table in ["kafka_offsets", "ingest_errors", "seaql_migrations", "posts_per_hour", "bluesky_accounts"] {
        check("debezium", table, "SELECT", false).await;
    }
    // The inserter: reads the migrations' bookkeeping, never writes it; no DELETE anywhere.
    check("inserter", "seaql_migrations", "SELECT", true).await;
    check("inserter", "seaql_migrations", "INSERT", false).await;
    check("inserter", "seaql_migrations", "UPDATE", false).await;
    check("inserter", "ingest_errors", "DELETE", false).await;
    check("inserter", "twitter_data", "INSERT", true).await;
    // The redriver: what the inserter does, and DELETE on the dead letters alone.
    check("redriver", "ingest_errors", "DELETE", true).await;
    check("redriver", "twitter_data", "INSERT", true).await;
    check("redriver", "twitter_data", "DELETE", false).await;
    check("redriver", "kafka_offsets", "DELETE", false).await;
    check("redriver", "seaql_migrations", "INSERT", false).await;

    // A second run of roles.sql (as after an upgrade) keeps all of it.
    apply_roles_named(&pg, &name).unwrap();
    check("debezium", "kafka_offsets", "SELECT", false).await;
    check("debezium", "twitter_data", "SELECT", true).await;
    check("inserter", "seaql_migrations", "INSERT", false).await;
}
