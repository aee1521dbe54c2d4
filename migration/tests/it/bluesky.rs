//! Migration `m20261207_000012`, the Bluesky tables: each is a time set of days (the default partition,
//! today's and 4 ahead) whose partitions, those made later included, carry the table's triggers and replica
//! identity; a deletion marks its record whichever of the two is written first, in the stream as one
//! transaction; the maintenance and the owner's retention take the four tables; the roles reach what their
//! jobs need; the view gives each account's latest handle and status, a filter on `did` reaching the index;
//! and `down` gives back the policy and the maintenance as they were.

use migration::retention::{Retention, set};
use migration::{CDC_PUBLICATION, Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use testkit::Postgres;
use testkit::cdc::{ChangeKind, create_slot, peek_changes};
use testkit::stack::{apply_roles_named, role_url};

use crate::day_boundary::clear_of_a_partition_day_boundary;
use crate::sql::{exec, lines};
use crate::steps;

const TABLES: [&str; 4] = ["bluesky_posts", "bluesky_interactions", "bluesky_deletions", "bluesky_account_events"];

/// A migrated database on one connection, so that a `SET ROLE` holds for the statements after it.
async fn database(pg: &Postgres) -> DatabaseConnection {
    let (_, url) = pg.create_database().await.unwrap();
    let mut options = ConnectOptions::new(url);
    options.max_connections(1);
    let db = Database::connect(options).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    db
}

/// The database's time now, as a literal: one value for every statement that names the same record (each
/// statement's own `now()` is another).
async fn now_literal(db: &DatabaseConnection) -> String {
    format!("'{}'::timestamptz", lines(db, "SELECT now()::text").await.remove(0))
}

/// A post record made at `at` (SQL), its key's time.
fn post(did: &str, rkey: &str, at: &str) -> String {
    format!(
        "INSERT INTO bluesky_posts (did, rkey, rkey_at, uri, cid, text, event_at, raw, source, scraped_at)
         VALUES ('{did}', '{rkey}', {at}, 'at://{did}/app.bsky.feed.post/{rkey}', 'bafyrei', 'hello',
                 now(), '{{}}', 'bluesky.jetstream', now());"
    )
}

/// A like, repost or follow record made at `at`.
fn interaction(did: &str, collection: &str, rkey: &str, at: &str) -> String {
    format!(
        "INSERT INTO bluesky_interactions (did, collection, rkey, rkey_at, uri, cid, subject_did, event_at, raw,
                                           source, scraped_at)
         VALUES ('{did}', '{collection}', '{rkey}', {at}, 'at://{did}/{collection}/{rkey}', 'bafyrei',
                 'did:plc:subject', now(), '{{}}', 'bluesky.jetstream', now());"
    )
}

/// The deletion of a record made at `at`, read at `deleted_at`.
fn deletion(did: &str, collection: &str, rkey: &str, at: &str, deleted_at: &str) -> String {
    format!(
        "INSERT INTO bluesky_deletions (did, collection, rkey, rkey_at, deleted_at, source)
         VALUES ('{did}', '{collection}', '{rkey}', {at}, '{deleted_at}', 'bluesky.jetstream');"
    )
}

/// `len` letters and digits drawn by a linear congruential generator: text no compression shortens much.
fn incompressible(len: usize, seed: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            char::from(ALPHABET[(state >> 33) as usize % ALPHABET.len()])
        })
        .collect()
}

const POST: &str = "app.bsky.feed.post";
const LIKE: &str = "app.bsky.feed.like";
const FOLLOW: &str = "app.bsky.graph.follow";

#[tokio::test]
async fn each_table_is_a_time_set_of_days_whose_partitions_carry_its_triggers_and_identity() {
    clear_of_a_partition_day_boundary().await;
    let pg = Postgres::start().await.unwrap();
    let db = database(&pg).await;

    let today = lines(&db, "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM_DD')").await.remove(0);
    for table in TABLES {
        let partitions = format!(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = '{table}'::regclass ORDER BY 1"
        );
        let partitions = lines(&db, &partitions).await;
        assert_eq!(partitions.len(), 6, "the default, today and 4 ahead: {partitions:?}");
        assert!(partitions.contains(&format!("{table}_default")), "{partitions:?}");
        assert!(partitions.contains(&format!("{table}_p{today}")), "{partitions:?}");
        let config = format!(
            "SELECT control || ' ' || partition_interval || ' ' || premake || ' ' || automatic_maintenance
               FROM partman.part_config WHERE parent_table = 'public.{table}'"
        );
        let control = if table == "bluesky_account_events" { "event_at" } else { "rkey_at" };
        assert_eq!(lines(&db, &config).await, [format!("{control} 1 day 4 off")]);
    }

    // A post made 8 days ahead (a client's clock) waits in the default partition, and moves into its day's
    // partition when maintenance makes it; so does its deletion, which then marks it again in its partition.
    let ahead = &format!("{} + interval '8 days'", now_literal(&db).await);
    exec(&db, &post("did:plc:ahead", "3ahead", ahead)).await;
    exec(&db, &interaction("did:plc:ahead", LIKE, "3ahead", ahead)).await;
    let where_post = "SELECT tableoid::regclass::text FROM bluesky_posts";
    assert_eq!(lines(&db, where_post).await, ["bluesky_posts_default"]);
    for table in ["bluesky_posts", "bluesky_interactions", "bluesky_deletions"] {
        let made = format!("SELECT ingest_partition_create('{table}', {ahead}, {ahead})::text");
        assert_eq!(lines(&db, &made).await, ["1"], "{table}");
    }
    let moved = lines(&db, where_post).await.remove(0);
    assert!(moved.starts_with("bluesky_posts_p") && moved != "bluesky_posts_default", "{moved}");

    let triggers = |table: &str, trigger: &str| {
        format!(
            "SELECT count(*)::text FROM pg_inherits i
               LEFT JOIN pg_trigger t ON t.tgrelid = i.inhrelid AND t.tgname = '{trigger}'
              WHERE i.inhparent = '{table}'::regclass AND t.oid IS NULL"
        )
    };
    for (table, trigger) in [
        ("bluesky_posts", "bluesky_posts_born_deleted"),
        ("bluesky_interactions", "bluesky_interactions_born_deleted"),
        ("bluesky_deletions", "bluesky_deletions_mark"),
    ] {
        assert_eq!(lines(&db, &triggers(table, trigger)).await, ["0"], "every partition of {table} has {trigger}");
    }
    exec(&db, &deletion("did:plc:ahead", POST, "3ahead", ahead, "2026-12-07 12:00Z")).await;
    exec(&db, &deletion("did:plc:ahead", LIKE, "3ahead", ahead, "2026-12-07 12:01Z")).await;
    let marked = "SELECT (SELECT deleted_at FROM bluesky_posts)::text || ' ' \
                  || (SELECT deleted_at FROM bluesky_interactions)::text";
    exec(&db, "SET TimeZone = 'UTC'").await;
    assert_eq!(lines(&db, marked).await, ["2026-12-07 12:00:00+00 2026-12-07 12:01:00+00"]);

    let identities = "SELECT p.relname::text || ' ' || c.relreplident::text
                        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
                       WHERE p.relname LIKE 'bluesky%' AND c.relreplident <> p.relreplident";
    assert_eq!(lines(&db, identities).await, Vec::<String>::new(), "each partition has its table's identity");
    let parents = "SELECT string_agg(relname || ' ' || relreplident::text, ', ' ORDER BY relname) FROM pg_class
                    WHERE relname = ANY ('{bluesky_posts,bluesky_interactions,bluesky_deletions,bluesky_account_events}')";
    assert_eq!(
        lines(&db, parents).await,
        ["bluesky_account_events d, bluesky_deletions d, bluesky_interactions f, bluesky_posts f"]
    );
}

#[tokio::test]
async fn a_deletion_marks_its_record_whichever_is_written_first() {
    let pg = Postgres::start().await.unwrap();
    let db = database(&pg).await;
    exec(&db, "SET TimeZone = 'UTC'").await;
    let now = &now_literal(&db).await;
    let old = "'2015-06-01 12:00Z'::timestamptz"; // no partition: the default one

    // The record first, then its deletion.
    exec(&db, &post("did:plc:a", "3post1", now)).await;
    exec(&db, &post("did:plc:a", "3post2", old)).await;
    exec(&db, &interaction("did:plc:a", LIKE, "3like1", now)).await;
    // The deletion first, then the record (a replay, an event read late): born deleted.
    exec(&db, &deletion("did:plc:b", POST, "3post3", now, "2026-12-07 10:00Z")).await;
    exec(&db, &post("did:plc:b", "3post3", now)).await;
    exec(&db, &deletion("did:plc:b", FOLLOW, "3follow1", now, "2026-12-07 10:01Z")).await;
    exec(&db, &interaction("did:plc:b", FOLLOW, "3follow1", now)).await;
    create_slot(&db, "bluesky").await.unwrap();
    exec(
        &db,
        &[
            deletion("did:plc:a", POST, "3post1", now, "2026-12-07 11:00Z"),
            deletion("did:plc:a", POST, "3post2", old, "2026-12-07 11:01Z"),
            deletion("did:plc:a", LIKE, "3like1", now, "2026-12-07 11:02Z"),
            // Names no stored record: the like of the same key is not a post, nor the post a repost.
            deletion("did:plc:a", "app.bsky.feed.repost", "3like1", now, "2026-12-07 11:03Z"),
            deletion("did:plc:a", LIKE, "3post1", now, "2026-12-07 11:04Z"),
        ]
        .concat(),
    )
    .await;
    // A later update of a deleted record leaves the mark as it is.
    exec(
        &db,
        &format!(
            "{} ON CONFLICT (did, rkey, rkey_at) DO UPDATE SET text = 'edited'",
            post("did:plc:a", "3post1", now).trim_end_matches(';')
        ),
    )
    .await;

    let posts = "SELECT did || ' ' || rkey || ' ' || text || ' ' || coalesce(deleted_at::text, 'live') \
                 FROM bluesky_posts ORDER BY 1";
    assert_eq!(
        lines(&db, posts).await,
        [
            "did:plc:a 3post1 edited 2026-12-07 11:00:00+00",
            "did:plc:a 3post2 hello 2026-12-07 11:01:00+00",
            "did:plc:b 3post3 hello 2026-12-07 10:00:00+00",
        ]
    );
    let interactions = "SELECT did || ' ' || collection || ' ' || rkey || ' ' || coalesce(deleted_at::text, 'live') \
                        FROM bluesky_interactions ORDER BY 1";
    assert_eq!(
        lines(&db, interactions).await,
        [
            "did:plc:a app.bsky.feed.like 3like1 2026-12-07 11:02:00+00",
            "did:plc:b app.bsky.graph.follow 3follow1 2026-12-07 10:01:00+00",
        ]
    );

    // The deletions and their marks are one transaction in the stream, each reported as its table's.
    let changes = peek_changes(&db, "bluesky", CDC_PUBLICATION).await.unwrap();
    let seen: Vec<(ChangeKind, &str)> = changes.iter().map(|c| (c.kind, c.table.as_str())).collect();
    use ChangeKind::{Insert, Update};
    assert_eq!(
        seen,
        [
            (Insert, "bluesky_deletions"),
            (Update, "bluesky_posts"),
            (Insert, "bluesky_deletions"),
            (Update, "bluesky_posts"),
            (Insert, "bluesky_deletions"),
            (Update, "bluesky_interactions"),
            (Insert, "bluesky_deletions"),
            (Insert, "bluesky_deletions"),
            (Update, "bluesky_posts"),
        ],
        "{changes:#?}"
    );
    let marked = &changes[1];
    assert!(marked.old_columns.as_ref().is_some_and(|old| old.len() == marked.columns.len()), "the whole old row");
    exec(&db, "SELECT pg_drop_replication_slot('bluesky')").await;

    for (refused, why) in [
        (post("plc:a", "3x", now), "bluesky_posts_did_check"),
        (post("did:plc:a", "", now), "bluesky_posts_rkey_check"),
        (post(&format!("did:plc:{}", "a".repeat(2041)), "3x", now), "bluesky_posts_did_check"),
        (interaction("did:plc:a", POST, "3x", now), "bluesky_interactions_collection_check"),
        (
            deletion("did:plc:a", "app.bsky.actor.profile", "self", now, "2026-12-07 12:00Z"),
            "bluesky_deletions_collection_check",
        ),
    ] {
        let error = db.execute_unprepared(&refused).await.unwrap_err().to_string();
        assert!(error.contains(why), "{refused}: {error}");
    }
    // The longest key the contract lets through fits each key's btree, uncompressed (Postgres compresses a
    // large index entry first, which would hide a repetitive value's length).
    let did = format!("did:plc:{}", incompressible(2040, 1));
    let rkey = incompressible(512, 2);
    exec(&db, &post(&did, &rkey, now)).await;
    exec(&db, &interaction(&did, "app.bsky.feed.repost", &rkey, now)).await;
    exec(&db, &deletion(&did, "app.bsky.feed.repost", &rkey, now, "2026-12-07 12:00Z")).await;
    exec(
        &db,
        &format!(
            "INSERT INTO bluesky_account_events (did, seq, event_at, kind, raw, source, scraped_at)
             VALUES ('{did}', 1, now(), 'identity', '{{}}', 'bluesky.jetstream', now())"
        ),
    )
    .await;
}

#[tokio::test]
async fn maintenance_and_the_owners_retention_take_the_bluesky_tables() {
    clear_of_a_partition_day_boundary().await;
    let pg = Postgres::start().await.unwrap();
    let db = database(&pg).await;
    exec(&db, "SELECT ingest_partition_create('bluesky_posts', now() - interval '10 days', now())").await;
    for (i, days) in [9, 8, 6, 4, 1, 0].into_iter().enumerate() {
        exec(&db, &post("did:plc:a", &format!("3post{i}"), &format!("now() - interval '{days} days'"))).await;
    }

    set(&db, &[("bluesky_posts", Some(Retention::For(std::time::Duration::from_secs(5 * 86_400))))]).await.unwrap();
    let run = |tbl: &str| {
        format!("SELECT created || ' ' || dropped || ' ' || skipped FROM ingest_partition_maintenance('{tbl}')")
    };
    let done = lines(&db, &run("bluesky_posts")).await.remove(0);
    assert!(["0 5 false", "0 6 false"].contains(&done.as_str()), "the days wholly older than 5 days: {done}");
    let kept = lines(&db, "SELECT rkey FROM bluesky_posts ORDER BY rkey_at").await;
    assert_eq!(kept, ["3post3", "3post4", "3post5"], "posts of the last 5 days stay, the older are gone");
    for table in ["bluesky_interactions", "bluesky_deletions", "bluesky_account_events"] {
        assert_eq!(lines(&db, &run(table)).await, ["0 0 false"], "{table}");
    }

    // The migration's flag sets the four at once.
    let month = Retention::For(std::time::Duration::from_secs(30 * 86_400));
    let tables: Vec<(&str, Option<Retention>)> = TABLES.iter().map(|t| (*t, Some(month))).collect();
    set(&db, &tables).await.unwrap();
    let policy = "SELECT table_name || ' ' || coalesce(retention::text, 'forever') FROM ingest.partition_policy \
                  ORDER BY 1";
    assert_eq!(
        lines(&db, policy).await,
        [
            "bluesky_account_events 30 days",
            "bluesky_deletions 30 days",
            "bluesky_interactions 30 days",
            "bluesky_posts 30 days",
            "instagram_profile_snapshots forever",
            "mastodon_statuses forever",
            "twitter_data forever",
        ]
    );
    let other =
        db.execute_unprepared("INSERT INTO ingest.partition_policy (table_name) VALUES ('bluesky_other')").await;
    assert!(other.unwrap_err().to_string().contains("partition_policy_table_name_check"));
}

#[tokio::test]
async fn each_role_reaches_what_its_job_needs_of_the_bluesky_tables() {
    let pg = Postgres::start().await.unwrap();
    let (name, _) = pg.create_database().await.unwrap();
    apply_roles_named(&pg, &name).unwrap();
    let owner = Database::connect(role_url(&pg, "ingest_owner", &name)).await.unwrap();
    Migrator::up(&owner, None).await.unwrap();
    let may = |role: &str, relation: &str, privilege: &str| {
        format!("SELECT has_table_privilege('{role}', 'public.{relation}', '{privilege}')::text")
    };
    for table in TABLES {
        for (role, privilege, expected) in [
            ("debezium", "SELECT", "true"),
            ("analyst", "SELECT", "true"),
            ("inserter", "INSERT", "true"),
            ("inserter", "UPDATE", "true"),
            ("inserter", "DELETE", "false"),
        ] {
            assert_eq!(lines(&owner, &may(role, table, privilege)).await, [expected], "{role} {privilege} {table}");
        }
    }
    assert_eq!(lines(&owner, &may("debezium", "bluesky_accounts", "SELECT")).await, ["false"]);
    assert_eq!(lines(&owner, &may("analyst", "bluesky_accounts", "SELECT")).await, ["true"]);

    // The inserter writes a post and its deletion (the mark is its own UPDATE) and runs the maintenance.
    let inserter = Database::connect(role_url(&pg, "inserter", &name)).await.unwrap();
    let at = &now_literal(&inserter).await;
    exec(&inserter, &post("did:plc:a", "3post1", at)).await;
    exec(&inserter, &deletion("did:plc:a", POST, "3post1", at, "2026-12-07 12:00Z")).await;
    let marked = "SELECT (deleted_at IS NOT NULL)::text FROM bluesky_posts";
    assert_eq!(lines(&inserter, marked).await, ["true"]);
    for table in TABLES {
        let run = format!("SELECT skipped::text FROM ingest_partition_maintenance('{table}')");
        assert_eq!(lines(&inserter, &run).await, ["false"], "{table}");
    }
    let analyst = Database::connect(role_url(&pg, "analyst", &name)).await.unwrap();
    assert_eq!(lines(&analyst, "SELECT count(*)::text FROM bluesky_accounts").await, ["0"]);
}

#[tokio::test]
async fn the_accounts_view_gives_each_accounts_latest_handle_and_status() {
    let pg = Postgres::start().await.unwrap();
    let db = database(&pg).await;
    exec(&db, "SET TimeZone = 'UTC'").await;
    exec(
        &db,
        r#"
        INSERT INTO bluesky_account_events (did, seq, event_at, kind, handle, active, status, raw, source, scraped_at)
        VALUES ('did:plc:a', 1, '2026-12-01 10:00Z', 'identity', 'old.bsky.social', NULL, NULL, '{}', 'bluesky.jetstream', now()),
               ('did:plc:a', 5, '2026-12-03 10:00Z', 'identity', 'new.bsky.social', NULL, NULL, '{}', 'bluesky.jetstream', now()),
               -- Newer, without a handle: the handle known stays.
               ('did:plc:a', 9, '2026-12-04 10:00Z', 'identity', NULL, NULL, NULL, '{}', 'bluesky.jetstream', now()),
               ('did:plc:a', 2, '2026-12-01 11:00Z', 'account', NULL, false, 'deactivated', '{}', 'bluesky.jetstream', now()),
               ('did:plc:a', 7, '2026-12-03 11:00Z', 'account', NULL, true, NULL, '{}', 'bluesky.jetstream', now()),
               -- Two events at one time: the later sequence number wins.
               ('did:plc:b', 3, '2026-12-02 09:00Z', 'account', NULL, true, NULL, '{}', 'bluesky.jetstream', now()),
               ('did:plc:b', 4, '2026-12-02 09:00Z', 'account', NULL, false, 'takendown', '{}', 'bluesky.jetstream', now()),
               ('did:plc:c', 6, '2026-12-02 08:00Z', 'identity', 'c.example.com', NULL, NULL, '{}', 'bluesky.jetstream', now());
        "#,
    )
    .await;
    let accounts = "SELECT concat_ws(' ', did, coalesce(handle, '-'), coalesce(handle_at::text, '-'), \
                    coalesce(active::text, '-'), coalesce(status, '-'), coalesce(status_at::text, '-')) \
                    FROM bluesky_accounts ORDER BY did";
    assert_eq!(
        lines(&db, accounts).await,
        [
            "did:plc:a new.bsky.social 2026-12-03 10:00:00+00 true - 2026-12-03 11:00:00+00",
            "did:plc:b - - false takendown 2026-12-02 09:00:00+00",
            "did:plc:c c.example.com 2026-12-02 08:00:00+00 - - -",
        ]
    );

    // A filter on `did` is applied in the scan, where an index serves it, not after the grouping.
    let plan =
        lines(&db, "EXPLAIN (COSTS OFF) SELECT * FROM bluesky_accounts WHERE did = 'did:plc:a'").await.join("\n");
    assert!(plan.contains("Cond: (did = 'did:plc:a'::text)"), "{plan}");
    assert!(!plan.contains("Filter: (did ="), "{plan}");
}

#[tokio::test]
async fn down_gives_back_the_policy_and_the_maintenance_as_they_were() {
    let pg = Postgres::start().await.unwrap();
    let db = database(&pg).await;
    steps::down_to_before(&db, "m20261207_000012").await;

    let policy = "SELECT string_agg(table_name, ' ' ORDER BY table_name) FROM ingest.partition_policy";
    assert_eq!(lines(&db, policy).await, ["instagram_profile_snapshots mastodon_statuses twitter_data"]);
    let refused =
        db.execute_unprepared("INSERT INTO ingest.partition_policy (table_name) VALUES ('bluesky_posts')").await;
    assert!(refused.unwrap_err().to_string().contains("partition_policy_table_name_check"));
    let maintenance = db.execute_unprepared("SELECT ingest_partition_maintenance('bluesky_posts')").await;
    assert!(maintenance.unwrap_err().to_string().contains("not a partitioned table of the pipeline"));
    let partman = "SELECT (SELECT count(*) FROM partman.part_config WHERE parent_table LIKE 'public.bluesky%') \
                   + (SELECT count(*) FROM pg_class WHERE relname LIKE '%bluesky%')";
    assert_eq!(lines(&db, &format!("SELECT ({partman})::text")).await, ["0"]);

    Migrator::up(&db, None).await.unwrap();
    assert_eq!(lines(&db, "SELECT count(*)::text FROM ingest.partition_policy").await, ["7"]);
}
