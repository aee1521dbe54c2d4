//! The migrations against a real Postgres: every step applies, every `down` undoes exactly its `up`, and
//! the schema ends with the publication and replica identities that CDC needs.

use migration::{CDC_PUBLICATION, Migrator, MigratorTrait, PUBLISHED_TABLES};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use testkit::Postgres;

use crate::day_boundary::clear_of_a_partition_day_boundary;

/// Everything a migration can create, as sorted text: tables and columns with types and nullability,
/// constraints, indexes, publications and their tables, replica identities, triggers, views and functions.
async fn schema(db: &DatabaseConnection) -> Vec<String> {
    let sql = r#"
        SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
               || coalesce(' default ' || column_default, '')
          FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'seaql_migrations'
        UNION ALL
        SELECT 'constraint ' || conrelid::regclass || ' ' || pg_get_constraintdef(oid)
          FROM pg_constraint WHERE connamespace = 'public'::regnamespace
           AND conrelid::regclass::text <> 'seaql_migrations'
        UNION ALL
        SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> 'seaql_migrations'
        UNION ALL
        SELECT 'publication ' || pubname || ' ' || coalesce(tablename, '') FROM pg_publication
          LEFT JOIN pg_publication_tables USING (pubname)
        UNION ALL
        SELECT 'replica identity ' || relname || ' ' || relreplident::text FROM pg_class
          WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relname <> 'seaql_migrations'
        UNION ALL
        SELECT 'trigger ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal
        UNION ALL
        SELECT 'view ' || viewname || ' ' || md5(definition) FROM pg_views WHERE schemaname = 'public'
        UNION ALL
        SELECT 'function ' || oid::regprocedure::text || ' ' || md5(prosrc) || ' ' || prosecdef::text FROM pg_proc
          WHERE pronamespace = 'public'::regnamespace
        ORDER BY 1"#;
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    rows.iter().map(|row| row.try_get_by_index::<String>(0).unwrap()).collect()
}

async fn fresh_database(pg: &Postgres) -> DatabaseConnection {
    let (_, url) = pg.create_database().await.unwrap();
    Database::connect(&url).await.unwrap()
}

#[tokio::test]
async fn each_down_undoes_exactly_its_up() {
    let pg = Postgres::start().await.unwrap();
    let db = fresh_database(&pg).await;
    let steps = Migrator::migrations().len();

    let mut before_each_step = vec![schema(&db).await];
    for _ in 0..steps {
        Migrator::up(&db, Some(1)).await.unwrap();
        let now = schema(&db).await;
        assert_ne!(Some(&now), before_each_step.last(), "a migration changed nothing");
        before_each_step.push(now);
    }
    assert!(Migrator::get_pending_migrations(&db).await.unwrap().is_empty());

    for step in (0..steps).rev() {
        Migrator::down(&db, Some(1)).await.unwrap();
        assert_eq!(schema(&db).await, before_each_step[step], "down of step {} left the schema different", step + 1);
    }
    assert!(schema(&db).await.is_empty(), "all downs leave an empty schema");
}

#[tokio::test]
async fn up_down_up_round_trips_to_the_same_schema() {
    // The partitions are named by their days: both `up`s make the same ones.
    clear_of_a_partition_day_boundary().await;
    let pg = Postgres::start().await.unwrap();
    let db = fresh_database(&pg).await;

    Migrator::up(&db, None).await.unwrap();
    let first = schema(&db).await;
    Migrator::reset(&db).await.unwrap();
    assert!(schema(&db).await.is_empty());
    Migrator::up(&db, None).await.unwrap();
    assert_eq!(schema(&db).await, first);
}

#[tokio::test]
async fn publication_covers_exactly_the_data_tables() {
    let pg = Postgres::start().await.unwrap();
    let db = pg.migrated_database::<Migrator>().await.unwrap().conn;

    let sql =
        format!("SELECT tablename::text FROM pg_publication_tables WHERE pubname = '{CDC_PUBLICATION}' ORDER BY 1");
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    let published: Vec<String> = rows.iter().map(|r| r.try_get_by_index(0).unwrap()).collect();
    let mut expected: Vec<String> = PUBLISHED_TABLES.iter().map(|t| t.to_string()).collect();
    expected.sort();
    assert_eq!(published, expected);
}

#[tokio::test]
async fn upserted_tables_log_full_before_images() {
    let pg = Postgres::start().await.unwrap();
    let db = pg.migrated_database::<Migrator>().await.unwrap().conn;

    let sql = "SELECT relname::text, relreplident::text FROM pg_class
               WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') AND NOT relispartition
               ORDER BY 1";
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    let identity = |table: &str| -> String {
        rows.iter()
            .find(|r| r.try_get_by_index::<String>(0).unwrap() == table)
            .map(|r| r.try_get_by_index(1).unwrap())
            .unwrap_or_else(|| panic!("no table {table}"))
    };
    for table in [
        "twitter_data",
        "twitter_users",
        "instagram_profiles",
        "instagram_posts",
        "instagram_comments",
        "mastodon_statuses",
        "bluesky_posts",
        "bluesky_interactions",
    ] {
        assert_eq!(identity(table), "f", "{table} must be REPLICA IDENTITY FULL");
    }
    for table in [
        "instagram_profile_snapshots",
        "instagram_post_hashtags",
        "instagram_post_tagged_users",
        "bluesky_deletions",
        "bluesky_account_events",
    ] {
        assert_eq!(identity(table), "d", "{table} is append-only: its key identifies a row");
    }

    // Postgres does not pass a replica identity on to partitions: each one, the default partition included,
    // must carry its table's, or its updates would reach CDC without their old row.
    let sql = "SELECT c.relname::text || ' of ' || p.relname::text || ': ' || c.relreplident::text
                 || ' under ' || p.relreplident::text
                 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
                WHERE p.relkind = 'p' ORDER BY 1";
    let partitions = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    let partitions: Vec<String> = partitions.iter().map(|r| r.try_get_by_index(0).unwrap()).collect();
    for parent in [
        "twitter_data",
        "mastodon_statuses",
        "instagram_profile_snapshots",
        "bluesky_posts",
        "bluesky_interactions",
        "bluesky_deletions",
        "bluesky_account_events",
    ] {
        let of_parent: Vec<&String> = partitions.iter().filter(|p| p.contains(&format!(" of {parent}: "))).collect();
        assert!(of_parent.len() >= 6, "{parent} has a default and today's partition and 4 ahead: {of_parent:?}");
        assert!(of_parent.iter().any(|p| p.starts_with(&format!("{parent}_default "))), "{of_parent:?}");
    }
    let mismatched: Vec<&String> = partitions
        .iter()
        .filter(|p| {
            let (_, identities) = p.split_once(": ").unwrap();
            let (own, parent) = identities.split_once(" under ").unwrap();
            own != parent
        })
        .collect();
    assert!(mismatched.is_empty(), "partitions with another replica identity than their table: {mismatched:?}");
}

#[tokio::test]
async fn the_migration_binary_reads_database_url_and_runs_up_and_down() {
    let pg = Postgres::start().await.unwrap();
    let (_, url) = pg.create_database().await.unwrap();
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_migration"))
            .args(args)
            .env("DATABASE_URL", &url)
            .output()
            .unwrap();
        assert!(output.status.success(), "migration {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    let db = Database::connect(&url).await.unwrap();

    run(&["up"]);
    assert!(Migrator::get_pending_migrations(&db).await.unwrap().is_empty());
    assert!(schema(&db).await.iter().any(|line| line.starts_with("column twitter_data.tweet_id bigint NO")));

    let steps = Migrator::migrations().len().to_string();
    run(&["down", "-n", &steps]);
    assert!(schema(&db).await.is_empty());
}

#[test]
fn help_shows_no_database_password() {
    for args in [&["--help"][..], &["up", "--help"], &["retention", "--help"]] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_migration"))
            .args(args)
            .env("DATABASE_URL", "postgres://ingest_owner:s3cret-pw@db:5432/ingest")
            .output()
            .unwrap();
        let help = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "migration {args:?}: {help}");
        assert!(help.contains("DATABASE_URL"), "migration {args:?}: {help}");
        assert!(!help.contains("s3cret-pw"), "migration {args:?} shows the password: {help}");
    }
}
