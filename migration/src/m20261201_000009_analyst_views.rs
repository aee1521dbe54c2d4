//! Views for the questions analysts ask most: posts per hour, the day's top hashtags, an account's follower
//! history. Plain views: they read the tables as they are now, cost the inserter nothing, and need no refresh.

use sea_orm_migration::prelude::*;

// Time buckets come from a calendar (`generate_series` over the table's own range), each bucket counted by a
// LATERAL subquery over a range of `created_at`/`taken_at`, not from `GROUP BY date_trunc(..., created_at)`:
// a filter on the bucket (`hour >= now() - '1 day'`, `day = '2026-11-30'`) then prunes the calendar, and each
// remaining bucket is one range scan of the existing index. On a `date_trunc` expression the same filter could
// only be checked row by row, over the whole table, unless every post table carried one more index per bucket
// size for every insert to maintain. The calendar's bounds are the table's `min` and `max`, one index probe
// each. The bucket is a subquery of its own, not a join, because the planner then sees its bounds as
// parameters and estimates one bucket at a sliver of the table; a join's range condition is estimated at a
// ninth of the table per bucket, and plans built on that hash whole tables and compile with JIT.
//
// Buckets are UTC (`date_trunc` with 'UTC', `AT TIME ZONE 'UTC'`), so a view's rows do not depend on the
// reader's `TimeZone`.
//
// Mastodon statuses carry no `source` column; their `instance` tells the streams apart, as `source` does for
// X and Instagram. Deleted statuses are left out. Retweets and reblogs are rows of their own and count as
// posts, as in the tables.
//
// `security_invoker`: a view reads the tables with its reader's privileges, not its owner's, so the grants on
// the tables stay the one statement of who may read what. Readers get SELECT on the views themselves from
// ingest_owner's default privileges (`docker/postgres/roles.sql`), as for a table.
pub(crate) const UP: &str = r#"
CREATE VIEW posts_per_hour WITH (security_invoker = true) AS
SELECT h.hour, 'x'::text AS platform, c.source, c.posts
  FROM generate_series((SELECT date_trunc('hour', min(created_at), 'UTC') FROM twitter_data),
                       (SELECT max(created_at) FROM twitter_data), interval '1 hour') AS h (hour)
 CROSS JOIN LATERAL (SELECT t.source, count(*) AS posts FROM twitter_data t
                      WHERE t.created_at >= h.hour AND t.created_at < h.hour + interval '1 hour'
                      GROUP BY t.source) AS c
UNION ALL
SELECT h.hour, 'mastodon'::text, c.instance, c.posts
  FROM generate_series((SELECT date_trunc('hour', min(created_at), 'UTC') FROM mastodon_statuses),
                       (SELECT max(created_at) FROM mastodon_statuses), interval '1 hour') AS h (hour)
 CROSS JOIN LATERAL (SELECT s.instance, count(*) AS posts FROM mastodon_statuses s
                      WHERE s.created_at >= h.hour AND s.created_at < h.hour + interval '1 hour'
                        AND s.deleted_at IS NULL
                      GROUP BY s.instance) AS c
UNION ALL
SELECT h.hour, 'instagram'::text, c.source, c.posts
  FROM generate_series((SELECT date_trunc('hour', min(taken_at), 'UTC') FROM instagram_posts),
                       (SELECT max(taken_at) FROM instagram_posts), interval '1 hour') AS h (hour)
 CROSS JOIN LATERAL (SELECT p.source, count(*) AS posts FROM instagram_posts p
                      WHERE p.taken_at >= h.hour AND p.taken_at < h.hour + interval '1 hour'
                      GROUP BY p.source) AS c;

-- A post counts once per tag, however often and in whichever case it carries it. X sends tags as typed;
-- Mastodon's and Instagram's are lower-cased already. `rank` is per day and platform, so a filter on `day`
-- still reaches the calendar below the window. An Instagram post's tags are read through the link table's
-- primary key, post by post, as an array column would be: as a join, the planner may hash the whole link
-- table for each day instead.
CREATE VIEW top_hashtags_per_day WITH (security_invoker = true) AS
SELECT day, platform, hashtag, posts, rank() OVER (PARTITION BY day, platform ORDER BY posts DESC) AS rank
  FROM (
    SELECT d.day::date AS day, 'x'::text AS platform, c.hashtag, c.posts
      FROM generate_series(date_trunc('day', (SELECT min(created_at) FROM twitter_data) AT TIME ZONE 'UTC'),
                           (SELECT max(created_at) FROM twitter_data) AT TIME ZONE 'UTC',
                           interval '1 day') AS d (day)
     CROSS JOIN LATERAL (
        SELECT tag.hashtag, count(*) AS posts
          FROM twitter_data t
         CROSS JOIN LATERAL (SELECT DISTINCT lower(h) AS hashtag FROM unnest(t.hashtags) AS h) AS tag
         WHERE t.created_at >= d.day AT TIME ZONE 'UTC' AND t.created_at < (d.day + interval '1 day') AT TIME ZONE 'UTC'
         GROUP BY tag.hashtag) AS c
    UNION ALL
    SELECT d.day::date, 'mastodon'::text, c.hashtag, c.posts
      FROM generate_series(date_trunc('day', (SELECT min(created_at) FROM mastodon_statuses) AT TIME ZONE 'UTC'),
                           (SELECT max(created_at) FROM mastodon_statuses) AT TIME ZONE 'UTC',
                           interval '1 day') AS d (day)
     CROSS JOIN LATERAL (
        SELECT tag.hashtag, count(*) AS posts
          FROM mastodon_statuses s
         CROSS JOIN LATERAL (SELECT DISTINCT lower(h) AS hashtag FROM unnest(s.tags) AS h) AS tag
         WHERE s.created_at >= d.day AT TIME ZONE 'UTC' AND s.created_at < (d.day + interval '1 day') AT TIME ZONE 'UTC'
           AND s.deleted_at IS NULL
         GROUP BY tag.hashtag) AS c
    UNION ALL
    SELECT d.day::date, 'instagram'::text, c.hashtag, c.posts
      FROM generate_series(date_trunc('day', (SELECT min(taken_at) FROM instagram_posts) AT TIME ZONE 'UTC'),
                           (SELECT max(taken_at) FROM instagram_posts) AT TIME ZONE 'UTC',
                           interval '1 day') AS d (day)
     CROSS JOIN LATERAL (
        SELECT tag.hashtag, count(*) AS posts
          FROM instagram_posts p
         CROSS JOIN LATERAL unnest(ARRAY(SELECT ph.hashtag FROM instagram_post_hashtags ph
                                          WHERE ph.media_id = p.media_id)) AS tag (hashtag)
         WHERE p.taken_at >= d.day AT TIME ZONE 'UTC' AND p.taken_at < (d.day + interval '1 day') AT TIME ZONE 'UTC'
         GROUP BY tag.hashtag) AS c
  ) AS counts;

-- Only Instagram keeps a history of an account's counts (instagram_profile_snapshots); twitter_users holds
-- the latest profile only, and Mastodon statuses have no account table. `username` is the account's current
-- one, lower-cased: Instagram's own handles are lower case, and `lower()` makes `username = '...'` a lookup
-- in instagram_profiles_username_idx.
CREATE VIEW follower_history WITH (security_invoker = true) AS
SELECT 'instagram'::text AS platform, s.user_id AS account_id, lower(p.username) AS username,
       s.scraped_at AS observed_at, s.followers_count AS followers, s.follows_count AS following,
       s.media_count AS posts, s.source
  FROM instagram_profile_snapshots s
  JOIN instagram_profiles p ON p.user_id = s.user_id;
"#;

pub(crate) const DOWN: &str = r#"
DROP VIEW follower_history;
DROP VIEW top_hashtags_per_day;
DROP VIEW posts_per_hour;
"#;

crate::sql::sql_migration!(UP, DOWN);
