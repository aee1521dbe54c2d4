//! Bluesky in the analysts' views: `posts_per_hour` and `top_hashtags_per_day` count Bluesky posts too
//! (`platform` `bluesky`), by `created_at` and without the deleted ones, as they count Mastodon statuses.
//!
//! A Bluesky post's `created_at` is what its author's client claims, where X's, Mastodon's and Instagram's
//! times are the server's: a post may claim the year 1 or 9999. The views' calendars run from a table's
//! first post to its last, an hour (or a day) at a time, so one such claim would stretch them over
//! millennia. The Bluesky calendars therefore start no earlier than 2020 and end no later than a day from
//! now; posts claiming a time outside stay in the table and out of these counts.

use sea_orm_migration::prelude::*;

use crate::m20261201_000009_analyst_views as views;

/// The Bluesky branch of `posts_per_hour`, after the Instagram one.
const POSTS_PER_HOUR: &str = r#"
UNION ALL
SELECT h.hour, 'bluesky'::text, c.source, c.posts
  FROM generate_series((SELECT date_trunc('hour', min(created_at), 'UTC') FROM bluesky_posts
                         WHERE created_at >= timestamptz '2020-01-01 00:00Z'),
                       (SELECT max(created_at) FROM bluesky_posts WHERE created_at < now() + interval '1 day'),
                       interval '1 hour') AS h (hour)
 CROSS JOIN LATERAL (SELECT p.source, count(*) AS posts FROM bluesky_posts p
                      WHERE p.created_at >= h.hour AND p.created_at < h.hour + interval '1 hour'
                        AND p.deleted_at IS NULL
                      GROUP BY p.source) AS c"#;

/// The Bluesky branch of `top_hashtags_per_day`, after the Instagram one.
const TOP_HASHTAGS_PER_DAY: &str = r#"
    UNION ALL
    SELECT d.day::date, 'bluesky'::text, c.hashtag, c.posts
      FROM generate_series(date_trunc('day', (SELECT min(created_at) FROM bluesky_posts
                                               WHERE created_at >= timestamptz '2020-01-01 00:00Z') AT TIME ZONE 'UTC'),
                           (SELECT max(created_at) FROM bluesky_posts
                             WHERE created_at < now() + interval '1 day') AT TIME ZONE 'UTC',
                           interval '1 day') AS d (day)
     CROSS JOIN LATERAL (
        SELECT tag.hashtag, count(*) AS posts
          FROM bluesky_posts p
         CROSS JOIN LATERAL (SELECT DISTINCT lower(h) AS hashtag FROM unnest(p.hashtags) AS h) AS tag
         WHERE p.created_at >= d.day AT TIME ZONE 'UTC' AND p.created_at < (d.day + interval '1 day') AT TIME ZONE 'UTC'
           AND p.deleted_at IS NULL
         GROUP BY tag.hashtag) AS c"#;

// Debezium reads the published tables, and not the views (which an install whose default privileges predate
// `m20261207_000011_security` would otherwise give it, the views being made again).
const NOT_FOR_DEBEZIUM: &str = r#"
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'debezium') THEN
        REVOKE ALL ON posts_per_hour, top_hashtags_per_day, follower_history FROM debezium;
    END IF;
END $$;
"#;

/// The views of migration 9, each with its Bluesky branch.
fn with_bluesky() -> String {
    let pph_end = "GROUP BY p.source) AS c;";
    let top_end = "GROUP BY tag.hashtag) AS c\n  ) AS counts;";
    assert!(views::UP.contains(pph_end) && views::UP.contains(top_end), "migration 9's views as written");
    views::UP.replacen(pph_end, &format!("GROUP BY p.source) AS c{POSTS_PER_HOUR};"), 1).replacen(
        top_end,
        &format!("GROUP BY tag.hashtag) AS c{TOP_HASHTAGS_PER_DAY}\n  ) AS counts;"),
        1,
    )
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::sql::run(manager, &format!("{}{}{NOT_FOR_DEBEZIUM}", views::DOWN, with_bluesky())).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::sql::run(manager, &format!("{}{}{NOT_FOR_DEBEZIUM}", views::DOWN, views::UP)).await
    }
}
