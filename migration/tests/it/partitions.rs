//! Migration `m20261201_000010`, the partitioned tables: rows already stored move into their day's partition
//! (or the default one), `down` gives back plain tables with every row, partitions are made by the clock (a
//! far-future id makes none), a partition made late takes its rows out of the default one, and retention
//! drops whole partitions without a single change event on a slot.

use migration::{CDC_PUBLICATION, Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use testkit::Postgres;

use crate::day_boundary::clear_of_a_partition_day_boundary;
use crate::sql::{exec, lines};
use crate::steps;
use testkit::cdc::{ChangeKind, create_slot, peek_changes};

/// One connection, so that a `SET ROLE` holds for the statements after it.
async fn database(pg: &Postgres) -> DatabaseConnection {
    let (_, url) = pg.create_database().await.unwrap();
    let mut options = sea_orm::ConnectOptions::new(url);
    options.max_connections(1);
    Database::connect(options).await.unwrap()
}

/// An X post created `ago` before now (a SQL interval), its id the snowflake X would give it.
fn tweet_at(id_offset: i64, at: &str) -> String {
    format!(
        "INSERT INTO twitter_data (tweet_id, text, created_at, source, raw, scraped_at)
         SELECT ((floor(extract(epoch FROM {at}) * 1000)::bigint - 1288834974657) << 22) + {id_offset},
                'post', {at}, 'x.sample', '{{}}', now();"
    )
}

/// The owner's statement that sets `table`'s retention.
fn retention(table: &str, retention: &str) -> String {
    format!("UPDATE ingest.partition_policy SET retention = interval '{retention}' WHERE table_name = '{table}'")
}

/// Where each post is stored, `tweet_id offset -> partition`, where offset tells the posts apart.
async fn partition_of_each_post(db: &DatabaseConnection) -> Vec<String> {
    lines(db, "SELECT (tweet_id & 4194303)::text || ' ' || tableoid::regclass::text FROM twitter_data ORDER BY 1").await
}

#[tokio::test]
async fn stored_rows_move_into_their_days_partition_and_down_keeps_every_row() {
    clear_of_a_partition_day_boundary().await;
    let pg = Postgres::start().await.unwrap();
    let db = database(&pg).await;
    Migrator::up(&db, Some(9)).await.unwrap();
    for (offset, at) in [
        (1, "now() - interval '2 days'"),
        (2, "now()"),
        (3, "'2015-06-01 12:00Z'::timestamptz"),
        (4, "now() + interval '40 years'"),
    ] {
        exec(&db, &tweet_at(offset, at)).await;
    }
    exec(
        &db,
        "INSERT INTO instagram_profiles (user_id, username) VALUES (10, 'a');
         INSERT INTO instagram_profile_snapshots (user_id, scraped_at, source)
         VALUES (10, now() - interval '3 days', 'instagram.web.profile'), (10, now(), 'instagram.web.profile');",
    )
    .await;

    Migrator::up(&db, None).await.unwrap();
    let stored = partition_of_each_post(&db).await;
    assert_eq!(stored.len(), 4, "{stored:?}");
    let day_sql = |ago: &str| {
        format!(
            "SELECT 'twitter_data_p' || (((floor(extract(epoch FROM now() - interval '{ago}') * 1000)::bigint
                    - 1288834974657) << 22) / 362387865600000 * 362387865600000)::text"
        )
    };
    assert_eq!(stored[0], format!("1 {}", lines(&db, &day_sql("2 days")).await[0]));
    assert_eq!(stored[1], format!("2 {}", lines(&db, &day_sql("0 days")).await[0]));
    assert_eq!(stored[2], "3 twitter_data_default", "older than the 30 days partitioned at migration");
    assert_eq!(stored[3], "4 twitter_data_default", "no partition is made for the far future");
    let snapshots = "SELECT tableoid::regclass::text FROM instagram_profile_snapshots ORDER BY scraped_at";
    let day = |ago: &str| format!("instagram_profile_snapshots_p{}", ago);
    let today = lines(&db, "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM_DD')").await.remove(0);
    let three_days_ago =
        lines(&db, "SELECT to_char((now() - interval '3 days') AT TIME ZONE 'UTC', 'YYYY_MM_DD')").await.remove(0);
    assert_eq!(lines(&db, snapshots).await, [day(&three_days_ago), day(&today)]);

    steps::down_to_before(&db, "m20261201_000010").await;
    let plain = lines(&db, "SELECT relkind::text FROM pg_class WHERE relname = 'twitter_data'").await;
    assert_eq!(plain, ["r"], "down leaves a plain table");
    let after_down = partition_of_each_post(&db).await;
    assert_eq!(after_down.len(), 4);
    assert!(after_down.iter().all(|l| l.ends_with(" twitter_data")), "{after_down:?}");
    assert_eq!(lines(&db, "SELECT count(*)::text FROM instagram_profile_snapshots").await, ["2"]);
}

#[tokio::test]
async fn partitions_follow_the_clock_so_a_far_future_id_makes_none() {
    clear_of_a_partition_day_boundary().await;
    let pg = Postgres::start().await.unwrap();
    let db = database(&pg).await;
    Migrator::up(&db, None).await.unwrap();
    let partitions = "SELECT count(*)::text FROM pg_inherits WHERE inhparent = 'twitter_data'::regclass";
    let before = lines(&db, partitions).await;
    assert_eq!(before, ["6"], "today, 4 days ahead and the default");

    // The largest id a bigint holds, and one forty years ahead: pg_partman's own maintenance would follow
    // either, making partitions up to it and then dropping the real ones as older than the retention.
    exec(&db, &tweet_at(1, "now() + interval '40 years'")).await;
    exec(
        &db,
        "INSERT INTO twitter_data (tweet_id, text, source, raw, scraped_at)
         VALUES (9223372036854775807, 'max', 'x.sample', '{}', now());",
    )
    .await;
    exec(&db, &retention("twitter_data", "30 days")).await;
    let run = "SELECT created::text || ' ' || dropped::text FROM ingest_partition_maintenance('twitter_data')";
    assert_eq!(lines(&db, run).await, ["0 0"]);
    assert_eq!(lines(&db, partitions).await, before);
    let default = "SELECT count(*)::text FROM twitter_data_default";
    assert_eq!(lines(&db, default).await, ["2"], "the far-future posts are kept, in the default partition");
    assert_eq!(lines(&db, "SELECT count(*)::text FROM twitter_data").await, ["2"]);
}

#[tokio::test]
async fn a_partition_made_late_takes_its_rows_out_of_the_default_one() {
    clear_of_a_partition_day_boundary().await;
    let pg = Postgres::start().await.unwrap();
    let db = database(&pg).await;
    Migrator::up(&db, None).await.unwrap();
    exec(&db, &tweet_at(1, "now() + interval '8 days'")).await;
    exec(
        &db,
        "INSERT INTO mastodon_statuses (instance, id, uri, created_at, account_id, account_acct, account_username,
                                        content_html, content_text, visibility, raw, scraped_at)
         VALUES ('mastodon.social', floor(extract(epoch FROM now() + interval '8 days') * 1000)::bigint << 16,
                 'https://mastodon.social/s/1', now(), 1, 'a', 'a', '', '', 'public', '{}', now());",
    )
    .await;
    assert_eq!(partition_of_each_post(&db).await, ["1 twitter_data_default"]);

    // What maintenance does when that day comes within its reach, here made to come now.
    let made =
        "SELECT ingest_partition_create('twitter_data', now() + interval '8 days', now() + interval '8 days')::text";
    assert_eq!(lines(&db, made).await, ["1"]);
    let stored = partition_of_each_post(&db).await;
    assert!(stored[0].starts_with("1 twitter_data_p"), "{stored:?}");
    let made = "SELECT ingest_partition_create('mastodon_statuses', now() + interval '8 days', now() + interval '8 days')::text";
    assert_eq!(lines(&db, made).await, ["1"]);
    let stored = lines(&db, "SELECT tableoid::regclass::text FROM mastodon_statuses").await;
    assert!(stored[0].starts_with("mastodon_statuses_p"), "{stored:?}");
    let identity =
        "SELECT relreplident::text FROM pg_class WHERE relname = (SELECT tableoid::regclass::text FROM twitter_data)";
    assert_eq!(lines(&db, identity).await, ["f"], "a partition made later has its table's replica identity too");
}

#[tokio::test]
async fn retention_drops_whole_partitions_and_sends_no_change_event() {
    clear_of_a_partition_day_boundary().await;
    let pg = Postgres::start().await.unwrap();
    let db = database(&pg).await;
    Migrator::up(&db, None).await.unwrap();
    exec(&db, "SELECT ingest_partition_create('twitter_data', now() - interval '10 days', now())").await;
    exec(&db, "SELECT ingest_partition_create('instagram_profile_snapshots', now() - interval '10 days', now())").await;
    for (offset, days) in [(1, 9), (2, 8), (3, 6), (4, 4), (5, 1), (6, 0)] {
        exec(&db, &tweet_at(offset, &format!("now() - interval '{days} days'"))).await;
    }
    exec(
        &db,
        "INSERT INTO instagram_profiles (user_id, username) VALUES (10, 'a');
         INSERT INTO instagram_profile_snapshots (user_id, scraped_at, source)
         SELECT 10, now() - d * interval '1 day', 'instagram.web.profile' FROM generate_series(0, 9) AS d;",
    )
    .await;
    create_slot(&db, "retention").await.unwrap();

    exec(&db, &retention("twitter_data", "5 days")).await;
    exec(&db, &retention("instagram_profile_snapshots", "5 days")).await;
    let run =
        |tbl: &str| format!("SELECT created::text || ' ' || dropped::text FROM ingest_partition_maintenance('{tbl}')");
    let done = lines(&db, &run("twitter_data")).await.remove(0);
    let (created, dropped) = done.split_once(' ').unwrap();
    assert_eq!(created, "0");
    assert!(["5", "6"].contains(&dropped), "the days wholly older than 5 days: {done}");
    let kept: Vec<String> = partition_of_each_post(&db).await.iter().map(|l| l[..1].to_string()).collect();
    assert_eq!(kept, ["4", "5", "6"], "posts of the last 5 days stay, the older are gone");
    lines(&db, &run("instagram_profile_snapshots")).await;
    let snapshots = lines(&db, "SELECT count(*)::text FROM instagram_profile_snapshots").await;
    assert!(["5", "6"].contains(&snapshots[0].as_str()), "{snapshots:?}");

    // A DELETE of the same rows would have sent one change each; dropped partitions send none.
    exec(&db, "UPDATE twitter_data SET like_count = 1 WHERE tweet_id & 4194303 = 6").await;
    let changes = peek_changes(&db, "retention", CDC_PUBLICATION).await.unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].kind, ChangeKind::Update);
    assert_eq!(changes[0].table, "twitter_data", "a change to a partition is reported as its table's");
    exec(&db, "SELECT pg_drop_replication_slot('retention')").await;
}

#[tokio::test]
async fn only_the_owner_and_the_inserter_may_run_maintenance_and_a_short_retention_is_refused() {
    let pg = Postgres::start().await.unwrap();
    let db = database(&pg).await;
    exec(&db, "CREATE ROLE inserter; CREATE ROLE someone_else").await;
    Migrator::up(&db, None).await.unwrap();
    exec(&db, "GRANT USAGE ON SCHEMA public TO inserter, someone_else").await;

    exec(&db, "SET ROLE inserter").await;
    assert_eq!(lines(&db, "SELECT dropped::text FROM ingest_partition_maintenance('twitter_data')").await, ["0"]);
    let denied = db.execute_unprepared("SELECT ingest_partition_create('twitter_data', now(), now())").await;
    assert!(denied.unwrap_err().to_string().contains("permission denied"), "the inserter may not pick the range");
    exec(&db, "RESET ROLE; SET ROLE someone_else").await;
    let denied = db.execute_unprepared("SELECT ingest_partition_maintenance('twitter_data')").await;
    assert!(denied.unwrap_err().to_string().contains("permission denied"));
    exec(&db, "RESET ROLE").await;

    let short = db.execute_unprepared(&retention("twitter_data", "1 hour")).await;
    assert!(short.unwrap_err().to_string().contains("partition_policy_retention_check"));
    let other = db.execute_unprepared("SELECT ingest_partition_maintenance('twitter_users')").await;
    assert!(other.unwrap_err().to_string().contains("not a partitioned table of the pipeline"));
}
