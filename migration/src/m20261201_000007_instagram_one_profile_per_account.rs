//! One `instagram_profiles` row per account, whichever API scraped it: the row is keyed by the web id, the
//! Graph API's id for the same account sits beside it in `graph_user_id` (as `graph_media_id` does for a
//! post). A row keyed by a Graph id (a Graph scrape that did not name the web id, or the minimal row of a
//! Graph media's owner) is merged into the web-id row as soon as a row says which Graph id it has.
//!
//! The merge lives in the database, not the inserter: the inserter has no DELETE, and the two halves of an
//! account arrive on two topics in any order, from any number of inserters. Triggers keep it one rule:
//! - once a row has `graph_user_id = G`, nothing is written under G any more: a snapshot or a post's owner
//!   given as G is written under the web id, a minimal or Graph-scraped row keyed G is not written (any
//!   Graph scrape without the web id predates the one that named it, so the upsert would keep nothing of it);
//! - when a row learns (or repeats) `graph_user_id = G` and a row keyed G exists, that row's snapshots, posts,
//!   comments and tags move to the web-id row and it is deleted. Running on every write of such a row (not
//!   only the first) heals a duplicate a concurrent inserter wrote under G at its next scrape.
//!
//! A row keyed G is merged only if it is minimal or Graph-scraped: a web-scraped row is an account's web id,
//! whatever number it is.

use sea_orm_migration::prelude::*;

/// The merge as this migration made it; `m20261207_000011_security` replaces it and its `down` restores this.
pub(crate) const MERGE_GRAPH_ROW: &str = r#"
-- SECURITY DEFINER: the merge deletes the duplicate, and the inserter's role has no DELETE. The references
-- are moved before the delete, which would otherwise cascade to them.
CREATE OR REPLACE FUNCTION instagram_profile_merge_graph_row() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    graph_id constant bigint := NEW.graph_user_id;
    web_id constant bigint := NEW.user_id;
BEGIN
    IF graph_id = web_id OR NOT EXISTS (
        SELECT 1 FROM instagram_profiles
         WHERE user_id = graph_id AND (raw IS NULL OR source LIKE 'instagram.graph.%')
    ) THEN
        RETURN NULL;
    END IF;
    -- A snapshot the web-id row already has at that instant stays as it is; the other one goes with the row.
    UPDATE instagram_profile_snapshots s SET user_id = web_id
     WHERE s.user_id = graph_id
       AND NOT EXISTS (SELECT 1 FROM instagram_profile_snapshots w
                        WHERE w.user_id = web_id AND w.scraped_at = s.scraped_at);
    UPDATE instagram_posts SET owner_id = web_id WHERE owner_id = graph_id;
    UPDATE instagram_comments SET author_id = web_id WHERE author_id = graph_id;
    INSERT INTO instagram_post_tagged_users (media_id, user_id)
        SELECT media_id, web_id FROM instagram_post_tagged_users WHERE user_id = graph_id
        ON CONFLICT DO NOTHING;
    DELETE FROM instagram_profiles WHERE user_id = graph_id;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION instagram_profile_merge_graph_row() FROM PUBLIC;
"#;

const UP_BEFORE_MERGE: &str = r#"
ALTER TABLE instagram_profiles ADD COLUMN graph_user_id bigint UNIQUE CHECK (graph_user_id > 0);

CREATE FUNCTION instagram_profile_skip_known_graph_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.graph_user_id IS NULL AND (NEW.raw IS NULL OR NEW.source LIKE 'instagram.graph.%')
       AND EXISTS (SELECT 1 FROM instagram_profiles p WHERE p.graph_user_id = NEW.user_id) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER instagram_profiles_skip_known_graph_id BEFORE INSERT ON instagram_profiles
    FOR EACH ROW EXECUTE FUNCTION instagram_profile_skip_known_graph_id();

CREATE FUNCTION instagram_snapshot_to_web_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.user_id := coalesce((SELECT p.user_id FROM instagram_profiles p WHERE p.graph_user_id = NEW.user_id),
                            NEW.user_id);
    RETURN NEW;
END $$;
CREATE TRIGGER instagram_profile_snapshots_to_web_id BEFORE INSERT ON instagram_profile_snapshots
    FOR EACH ROW EXECUTE FUNCTION instagram_snapshot_to_web_id();

CREATE FUNCTION instagram_post_owner_to_web_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.owner_id := coalesce((SELECT p.user_id FROM instagram_profiles p WHERE p.graph_user_id = NEW.owner_id),
                             NEW.owner_id);
    RETURN NEW;
END $$;
CREATE TRIGGER instagram_posts_owner_to_web_id BEFORE INSERT ON instagram_posts
    FOR EACH ROW WHEN (NEW.owner_id IS NOT NULL) EXECUTE FUNCTION instagram_post_owner_to_web_id();

"#;

const UP_AFTER_MERGE: &str = r#"
CREATE TRIGGER instagram_profiles_merge_graph_row AFTER INSERT OR UPDATE ON instagram_profiles
    FOR EACH ROW WHEN (NEW.graph_user_id IS NOT NULL) EXECUTE FUNCTION instagram_profile_merge_graph_row();

-- The duplicates already stored: a Graph-scraped row whose `raw` names its web id (`ig_id`, when business
-- discovery was asked for it). The web-id row learns the Graph id and takes the Graph scrape's values where
-- that scrape is the newer (as the upsert would); with no web-id row yet, one is made from the Graph row.
-- Either write fires the merge above. Rows that share only a username are left apart: usernames change
-- hands, and a wrong merge cannot be undone; the next business discovery (which now asks for `ig_id`)
-- merges them.
CREATE TEMPORARY TABLE instagram_graph_rows_naming_web_id ON COMMIT DROP AS
SELECT DISTINCT ON (web_id) g.*, (g.raw ->> 'ig_id')::bigint AS web_id
  FROM instagram_profiles g
 WHERE g.source LIKE 'instagram.graph.%' AND g.graph_user_id IS NULL
   AND g.raw ->> 'ig_id' ~ '^0*[1-9][0-9]{0,17}$' AND (g.raw ->> 'ig_id')::bigint <> g.user_id
 ORDER BY web_id, g.scraped_at DESC;

UPDATE instagram_profiles w SET
    graph_user_id   = g.user_id,
    username        = CASE WHEN newer THEN coalesce(g.username, w.username) ELSE coalesce(w.username, g.username) END,
    full_name       = CASE WHEN newer THEN coalesce(g.full_name, w.full_name) ELSE coalesce(w.full_name, g.full_name) END,
    biography       = CASE WHEN newer THEN coalesce(g.biography, w.biography) ELSE coalesce(w.biography, g.biography) END,
    external_url    = CASE WHEN newer THEN coalesce(g.external_url, w.external_url)
                           ELSE coalesce(w.external_url, g.external_url) END,
    profile_pic_url = CASE WHEN newer THEN coalesce(g.profile_pic_url, w.profile_pic_url)
                           ELSE coalesce(w.profile_pic_url, g.profile_pic_url) END,
    followers_count = CASE WHEN newer THEN coalesce(g.followers_count, w.followers_count)
                           ELSE coalesce(w.followers_count, g.followers_count) END,
    follows_count   = CASE WHEN newer THEN coalesce(g.follows_count, w.follows_count)
                           ELSE coalesce(w.follows_count, g.follows_count) END,
    media_count     = CASE WHEN newer THEN coalesce(g.media_count, w.media_count)
                           ELSE coalesce(w.media_count, g.media_count) END,
    source          = CASE WHEN newer THEN g.source ELSE w.source END,
    raw             = CASE WHEN newer THEN g.raw ELSE w.raw END,
    scraped_at      = CASE WHEN newer THEN g.scraped_at ELSE w.scraped_at END
  FROM (SELECT g.*, w.scraped_at IS NULL OR g.scraped_at > w.scraped_at AS newer
          FROM instagram_graph_rows_naming_web_id g JOIN instagram_profiles w ON w.user_id = g.web_id) g
 WHERE w.user_id = g.web_id AND w.graph_user_id IS NULL;

INSERT INTO instagram_profiles (user_id, graph_user_id, username, full_name, biography, external_url,
                                profile_pic_url, category, is_private, is_verified, is_business, followers_count,
                                follows_count, media_count, source, raw, scraped_at, ingested_at)
SELECT web_id, user_id, username, full_name, biography, external_url, profile_pic_url, category, is_private,
       is_verified, is_business, followers_count, follows_count, media_count, source, raw, scraped_at, ingested_at
  FROM instagram_graph_rows_naming_web_id g
 WHERE NOT EXISTS (SELECT 1 FROM instagram_profiles w WHERE w.user_id = g.web_id);
"#;

// Merged rows stay merged: which snapshots, posts and comments were a Graph-id row's is not kept.
const DOWN: &str = r#"
DROP TRIGGER instagram_profiles_merge_graph_row ON instagram_profiles;
DROP FUNCTION instagram_profile_merge_graph_row();
DROP TRIGGER instagram_posts_owner_to_web_id ON instagram_posts;
DROP FUNCTION instagram_post_owner_to_web_id();
DROP TRIGGER instagram_profile_snapshots_to_web_id ON instagram_profile_snapshots;
DROP FUNCTION instagram_snapshot_to_web_id();
DROP TRIGGER instagram_profiles_skip_known_graph_id ON instagram_profiles;
DROP FUNCTION instagram_profile_skip_known_graph_id();
ALTER TABLE instagram_profiles DROP COLUMN graph_user_id;
"#;

crate::sql::sql_migration!(&[UP_BEFORE_MERGE, MERGE_GRAPH_ROW, UP_AFTER_MERGE].concat(), DOWN);
