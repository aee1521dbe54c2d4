//! Migrations `m20261201_000009` and `m20261207_000013` (Bluesky's branches), the analysts' views: each view's rows for a handful of representative posts
//! and snapshots (in UTC buckets whatever the session's time zone), its `down`, the analyst's SELECT on them
//! through `roles.sql`, and the plans of the cookbook's queries in docs/database.md on tables large enough
//! for the planner to prefer an index only where one pays.

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, Statement};
use testkit::Postgres;
use testkit::stack::{apply_roles_named, role_url};

use crate::sql::{exec, lines};
use crate::steps;

/// Posts across hours and a UTC day boundary, tags in mixed case and repeated, a deleted status, posts without
/// a time, two snapshots of one account, one of another, and an account without any.
const ROWS: &str = r#"
INSERT INTO twitter_data (tweet_id, text, created_at, hashtags, source, raw, scraped_at) VALUES
    (1, 'a', '2026-11-30 10:05Z', '{Rust,rust}', 'x.sample', '{}', now()),
    (2, 'b', '2026-11-30 10:59:59.999Z', '{RUST,Postgres}', 'x.sample', '{}', now()),
    (3, 'c', '2026-11-30 11:00Z', '{postgres}', 'x.search', '{}', now()),
    (4, 'd', '2026-11-30 23:30Z', '{Rust}', 'x.sample', '{}', now()),
    (5, 'e', NULL, '{rust}', 'x.sample', '{}', now()),
    (6, 'f', '2026-12-01 00:00Z', '{Rust}', 'x.sample', '{}', now()),
    (7, 'g', '2026-12-01 00:10Z', '{}', 'x.sample', '{}', now());

INSERT INTO mastodon_statuses (instance, id, uri, created_at, account_id, account_acct, account_username,
                               content_html, content_text, visibility, tags, raw, scraped_at) VALUES
    ('mastodon.social', 1, 'https://mastodon.social/s/1', '2026-11-30 10:30Z', 1, 'a', 'a', '', '', 'public',
     '{rust}', '{}', now()),
    ('mastodon.social', 2, 'https://mastodon.social/s/2', '2026-11-30 10:45Z', 1, 'a', 'a', '', '', 'public',
     '{rust,postgres}', '{}', now()),
    ('hachyderm.io', 1, 'https://hachyderm.io/s/1', '2026-11-30 10:50Z', 1, 'b', 'b', '', '', 'public',
     '{}', '{}', now());
INSERT INTO mastodon_status_deletions (instance, status_id, deleted_at, source)
VALUES ('mastodon.social', 2, '2026-11-30 12:00Z', 'sse.mastodon');

INSERT INTO instagram_profiles (user_id, username) VALUES (10, 'BlueBottle'), (11, 'other'), (12, 'never_scraped');
INSERT INTO instagram_profile_snapshots (user_id, scraped_at, followers_count, follows_count, media_count, source)
VALUES (10, '2026-11-29 12:00Z', 100, 5, 7, 'instagram.web.profile'),
       (10, '2026-11-30 12:00Z', 120, 6, NULL, 'instagram.graph.business_discovery'),
       (11, '2026-11-30 13:00Z', 1, 2, 3, 'instagram.web.profile');
INSERT INTO instagram_posts (media_id, shortcode, owner_id, taken_at, source, raw, scraped_at) VALUES
    (100, 'a', 10, '2026-11-30 10:10Z', 'instagram.web.profile', '{}', now()),
    (101, 'b', 10, NULL, 'instagram.web.profile', '{}', now()),
    (102, 'c', NULL, '2026-11-29 23:59:59Z', 'instagram.graph.hashtag.recent_media', '{}', now());
INSERT INTO instagram_hashtags (name) VALUES ('coffee'), ('rust');
INSERT INTO instagram_post_hashtags (media_id, hashtag) VALUES (100, 'coffee'), (100, 'rust'), (101, 'coffee'),
    (102, 'coffee');

-- A Bluesky post's `created_at` is its client's claim: one deleted, one without a time, and two claiming the
-- years 1 and 9999, which the views leave out (their calendars would otherwise run over millennia).
INSERT INTO bluesky_posts (did, rkey, rkey_at, uri, cid, created_at, text, hashtags, event_at, raw, source,
                           scraped_at) VALUES
    ('did:plc:a', '3k1', '2026-11-30 10:20Z', 'at://did:plc:a/app.bsky.feed.post/3k1', 'c', '2026-11-30 10:20Z',
     '', '{rust,postgres}', now(), '{}', 'bluesky.jetstream', now()),
    ('did:plc:a', '3k2', '2026-11-30 10:25Z', 'at://did:plc:a/app.bsky.feed.post/3k2', 'c', '2026-11-30 10:25Z',
     '', '{rust}', now(), '{}', 'bluesky.jetstream', now()),
    ('did:plc:b', '3k3', '2026-11-30 10:26Z', 'at://did:plc:b/app.bsky.feed.post/3k3', 'c', '0001-01-01 00:00Z',
     '', '{rust}', now(), '{}', 'bluesky.jetstream', now()),
    ('did:plc:b', '3k4', '2026-11-30 10:27Z', 'at://did:plc:b/app.bsky.feed.post/3k4', 'c', '9999-12-31 00:00Z',
     '', '{rust}', now(), '{}', 'bluesky.jetstream', now()),
    ('did:plc:b', '3k5', '2026-11-30 10:28Z', 'at://did:plc:b/app.bsky.feed.post/3k5', 'c', NULL,
     '', '{rust}', now(), '{}', 'bluesky.jetstream', now());
INSERT INTO bluesky_deletions (did, collection, rkey, rkey_at, deleted_at, source)
VALUES ('did:plc:a', 'app.bsky.feed.post', '3k2', '2026-11-30 10:25Z', '2026-11-30 12:00Z', 'bluesky.jetstream');
"#;

const POSTS_PER_HOUR: &str = "SELECT to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' ' || platform \
                              || ' ' || source || ' ' || posts FROM posts_per_hour ORDER BY hour, platform, source";

#[tokio::test]
async fn the_views_count_in_utc_buckets_and_down_drops_them() {
    let pg = Postgres::start().await.unwrap();
    let (_, url) = pg.create_database().await.unwrap();
    // Half an hour off UTC: a bucket taken in the session's zone would show.
    let db = Database::connect(format!("{url}?options=-c%20TimeZone%3DAsia/Kolkata")).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    exec(&db, ROWS).await;

    assert_eq!(
        lines(&db, POSTS_PER_HOUR).await,
        [
            "2026-11-29 23:00 instagram instagram.graph.hashtag.recent_media 1",
            "2026-11-30 10:00 bluesky bluesky.jetstream 1",
            "2026-11-30 10:00 instagram instagram.web.profile 1",
            "2026-11-30 10:00 mastodon hachyderm.io 1",
            "2026-11-30 10:00 mastodon mastodon.social 1",
            "2026-11-30 10:00 x x.sample 2",
            "2026-11-30 11:00 x x.search 1",
            "2026-11-30 23:00 x x.sample 1",
            "2026-12-01 00:00 x x.sample 2",
        ]
    );

    let hashtags = "SELECT day || ' ' || platform || ' ' || hashtag || ' ' || posts || ' ' || rank \
                    FROM top_hashtags_per_day ORDER BY day, platform, rank, hashtag";
    assert_eq!(
        lines(&db, hashtags).await,
        [
            "2026-11-29 instagram coffee 1 1",
            "2026-11-30 bluesky postgres 1 1",
            "2026-11-30 bluesky rust 1 1",
            "2026-11-30 instagram coffee 1 1",
            "2026-11-30 instagram rust 1 1",
            "2026-11-30 mastodon rust 1 1",
            "2026-11-30 x rust 3 1",
            "2026-11-30 x postgres 2 2",
            "2026-12-01 x rust 1 1",
        ]
    );

    let history = "SELECT concat_ws(' ', platform, account_id, username, \
                   to_char(observed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), followers, following, \
                   coalesce(posts::text, '-'), source) FROM follower_history ORDER BY account_id, observed_at";
    assert_eq!(
        lines(&db, history).await,
        [
            "instagram 10 bluebottle 2026-11-29 12:00 100 5 7 instagram.web.profile",
            "instagram 10 bluebottle 2026-11-30 12:00 120 6 - instagram.graph.business_discovery",
            "instagram 11 other 2026-11-30 13:00 1 2 3 instagram.web.profile",
        ]
    );
    let one = "SELECT followers::text FROM follower_history WHERE username = 'bluebottle' ORDER BY observed_at";
    assert_eq!(lines(&db, one).await, ["100", "120"]);

    // Back to before the views' migration: the migrations after it are undone first.
    steps::down_to_before(&db, "m20261201_000009").await;
    assert_eq!(lines(&db, "SELECT count(*)::text FROM pg_views WHERE schemaname = 'public'").await, ["0"]);
    assert_eq!(lines(&db, "SELECT count(*)::text FROM twitter_data").await, ["7"], "the tables keep their rows");
    Migrator::up(&db, None).await.unwrap();
    // The Bluesky tables were dropped on the way down, and come back empty.
    assert_eq!(lines(&db, POSTS_PER_HOUR).await.len(), 8);
}

#[tokio::test]
async fn the_analyst_may_read_the_views() {
    let pg = Postgres::start().await.unwrap();
    let (name, _) = pg.create_database().await.unwrap();
    let apply_roles = || apply_roles_named(&pg, &name).unwrap();
    apply_roles();
    let owner = Database::connect(role_url(&pg, "ingest_owner", &name)).await.unwrap();
    Migrator::up(&owner, None).await.unwrap();
    exec(&owner, ROWS).await;

    let analyst = Database::connect(role_url(&pg, "analyst", &name)).await.unwrap();
    let counts = "SELECT (SELECT count(*) FROM posts_per_hour) || ' ' || (SELECT count(*) FROM top_hashtags_per_day) \
                  || ' ' || (SELECT count(*) FROM follower_history)";
    assert_eq!(lines(&analyst, counts).await, ["9 9 3"], "from ingest_owner's default privileges");

    // A database whose views predate the analyst's grants gets them from a second run of roles.sql.
    exec(&owner, "REVOKE SELECT ON posts_per_hour, top_hashtags_per_day, follower_history FROM analyst").await;
    assert!(analyst.execute_unprepared("SELECT 1 FROM posts_per_hour").await.is_err());
    apply_roles();
    assert_eq!(lines(&analyst, counts).await, ["9 9 3"]);
}

/// The cookbook's queries (docs/database.md, "Cookbook for analysts"), each with the indexes its plan uses.
/// The `created_at` indexes also serve the calendars' bounds, so what proves the posts are read by them is
/// that no table is read whole.
const COOKBOOK: &[(&str, &[&str])] = &[
    (
        "SELECT hour, platform, sum(posts) AS posts
  FROM posts_per_hour
 WHERE hour >= now() - interval '1 day'
 GROUP BY hour, platform
 ORDER BY hour, platform;",
        &[
            "twitter_data_created_at_idx",
            "mastodon_statuses_created_at_idx",
            "instagram_posts_taken_at_idx",
            "bluesky_posts_created_at_idx",
        ],
    ),
    (
        "SELECT hashtag, posts, rank
  FROM top_hashtags_per_day
 WHERE day = (now() AT TIME ZONE 'UTC')::date - 1 AND platform = 'x'
 ORDER BY rank, hashtag
 LIMIT 10;",
        &["twitter_data_created_at_idx"],
    ),
    (
        "SELECT day, platform, posts, rank
  FROM top_hashtags_per_day
 WHERE day >= (now() AT TIME ZONE 'UTC')::date - 7 AND hashtag = 'rust'
 ORDER BY day, platform;",
        &[
            "twitter_data_created_at_idx",
            "mastodon_statuses_created_at_idx",
            "instagram_posts_taken_at_idx",
            "instagram_post_hashtags_pkey",
            "bluesky_posts_created_at_idx",
        ],
    ),
    (
        "SELECT observed_at, followers, following, posts
  FROM follower_history
 WHERE username = 'bluebottle'
 ORDER BY observed_at;",
        &["instagram_profiles_username_idx", "instagram_profile_snapshots_pkey"],
    ),
    (
        "SELECT observed_at, followers, followers - lag(followers) OVER (ORDER BY observed_at) AS gained
  FROM follower_history
 WHERE account_id = 1620131
 ORDER BY observed_at;",
        &["instagram_profiles_pkey", "instagram_profile_snapshots_pkey"],
    ),
];

/// Twenty thousand posts per platform over the last month, and as many snapshots: enough that reading a whole
/// table costs the planner more than the index does. Written without triggers (foreign keys included): the
/// rows are consistent as made, and the load takes a second instead of several.
///
/// The posts' ids are small, so they sit in the default partitions whatever the day. The snapshots are
/// partitioned by `scraped_at`, so they end a day before the start of today's UTC day (the first partition
/// the migration makes, with a day to spare should the day turn during the test): dated back from now, the
/// minutes since midnight would fill today's partition with anywhere from 0 to 1,440 rows, and the planner
/// reads a partition of a few hundred rows whole, so the plans would depend on the hour the suite runs.
const MANY_ROWS: &str = r#"
SET session_replication_role = replica;
INSERT INTO twitter_data (tweet_id, text, created_at, hashtags, source, raw, scraped_at)
SELECT i, 'post ' || i, now() - i * interval '130 seconds',
       CASE i % 3 WHEN 0 THEN '{Rust,rust}'::text[] WHEN 1 THEN ARRAY['tag' || i % 50] ELSE '{}' END,
       CASE WHEN i % 4 = 0 THEN 'x.search' ELSE 'x.sample' END, '{}', now()
  FROM generate_series(1, 20000) AS i;
INSERT INTO mastodon_statuses (instance, id, uri, created_at, account_id, account_acct, account_username,
                               content_html, content_text, visibility, tags, raw, scraped_at, deleted_at)
SELECT 'mastodon.social', i, 'https://mastodon.social/s/' || i, now() - i * interval '130 seconds', 1 + i % 500,
       'a', 'a', '', '', 'public', ARRAY['tag' || i % 40], '{}', now(), CASE WHEN i % 10 = 0 THEN now() END
  FROM generate_series(1, 20000) AS i;
INSERT INTO instagram_profiles (user_id, username)
SELECT i, 'user' || i FROM generate_series(1, 10000) AS i UNION ALL SELECT 1620131, 'bluebottle';
INSERT INTO instagram_profile_snapshots (user_id, scraped_at, followers_count, follows_count, media_count, source)
SELECT 1 + i % 10000, date_trunc('day', now(), 'UTC') - interval '1 day' - i * interval '1 minute', i, 1, 1,
       'instagram.web.profile'
  FROM generate_series(1, 20000) AS i
UNION ALL
SELECT 1620131, date_trunc('day', now(), 'UTC') - (1 + i) * interval '1 day', 1000 - i, 10, 100, 'instagram.web.profile'
  FROM generate_series(1, 30) AS i;
INSERT INTO instagram_posts (media_id, shortcode, owner_id, taken_at, source, raw, scraped_at)
SELECT i, 'c' || i, 1 + i % 10000, now() - i * interval '130 seconds', 'instagram.web.profile', '{}', now()
  FROM generate_series(1, 20000) AS i;
INSERT INTO instagram_hashtags (name) SELECT 'tag' || i FROM generate_series(0, 49) AS i;
INSERT INTO instagram_hashtags (name) VALUES ('rust');
INSERT INTO instagram_post_hashtags (media_id, hashtag)
SELECT i, CASE WHEN i % 7 = 0 THEN 'rust' ELSE 'tag' || i % 50 END FROM generate_series(1, 20000) AS i;
-- Their record keys' times (the partition key) are older than any partition made: all in the default one.
INSERT INTO bluesky_posts (did, rkey, rkey_at, uri, cid, created_at, text, hashtags, event_at, raw, source,
                           scraped_at)
SELECT 'did:plc:' || i % 500, 'r' || i, date_trunc('day', now(), 'UTC') - interval '40 days' - i * interval '1 second',
       'u', 'c', now() - i * interval '130 seconds', '',
       CASE i % 3 WHEN 0 THEN '{rust}'::text[] WHEN 1 THEN ARRAY['tag' || i % 50] ELSE '{}' END, now(), '{}',
       'bluesky.jetstream', now()
  FROM generate_series(1, 20000) AS i;
RESET session_replication_role;
ANALYZE;
"#;

/// Whether `plan` reads `index`, or, on a partitioned table, that index's copy on one of its partitions
/// (`twitter_data_created_at_idx` is `twitter_data_p<first id>_created_at_idx` there), by an index scan
/// (`using <index> on`) or a bitmap one (`Bitmap Index Scan on <index>`).
fn uses_index(plan: &str, index: &str) -> bool {
    const PARTITIONED: &[&str] = &["twitter_data", "mastodon_statuses", "instagram_profile_snapshots", "bluesky_posts"];
    plan.contains(index)
        || PARTITIONED.iter().any(|table| {
            index.strip_prefix(&format!("{table}_")).is_some_and(|suffix| {
                plan.split_whitespace()
                    .any(|name| name.starts_with(&format!("{table}_")) && name.ends_with(&format!("_{suffix}")))
            })
        })
}

#[tokio::test]
async fn the_cookbook_queries_use_the_indexes_the_docs_name() {
    let pg = Postgres::start().await.unwrap();
    let (_, url) = pg.create_database().await.unwrap();
    // The planner cannot tell how few buckets of a calendar view a filter leaves, and its estimates are high
    // enough to compile some of these queries with JIT, which on this little data takes longer than the query.
    // The plans are the same either way.
    let db = Database::connect(format!("{url}?options=-c%20jit%3Doff")).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    exec(&db, MANY_ROWS).await;

    for (query, indexes) in COOKBOOK {
        let plan = lines(&db, &format!("EXPLAIN (COSTS OFF) {query}")).await.join("\n");
        println!("{query}\n{plan}\n");
        for index in *indexes {
            assert!(uses_index(&plan, index), "{query}\nuses {index}:\n{plan}");
        }
        // A partition made ahead of its day is empty, and the planner reads an empty table without its index.
        for scanned in plan.lines().filter_map(|l| l.split_once("Seq Scan on ")).map(|(_, rest)| rest) {
            let relation = scanned.split_whitespace().next().unwrap();
            let rows = lines(&db, &format!("SELECT count(*)::text FROM {relation}")).await;
            assert_eq!(rows, ["0"], "{query}\nreads no table with rows whole ({relation}):\n{plan}");
        }
        let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), *query)).await.unwrap();
        assert!(!rows.is_empty(), "{query}\nanswers something on this data");
    }
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/database.md")).unwrap();
    for (query, _) in COOKBOOK {
        assert!(docs.contains(query), "docs/database.md shows the query as it is tested:\n{query}");
    }
}
