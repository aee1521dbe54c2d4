//! Migration `m20261201_000007` against a real Postgres holding the duplicates it exists for: a Graph-id
//! profile row whose `raw` names its web id merges into the web-id row (snapshots, posts, comments and tags
//! move to it, the duplicate goes), or becomes the web-id row when there is none; rows that share only a
//! username stay apart; and its `down` runs, leaving the merged rows merged.

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use testkit::Postgres;

const GRAPH: i64 = 17841405309211844;
const WEB: i64 = 1620131;
/// A Graph row naming a web id no row has.
const LONE_GRAPH: i64 = 17841400000000002;
const LONE_WEB: i64 = 2620131;
/// A Graph row scraped before `ig_id` was asked for, and a web row with its username.
const OLD_GRAPH: i64 = 17841400000000003;
const SAME_NAME_WEB: i64 = 3620131;

const DUPLICATES: &str = r#"
INSERT INTO instagram_profiles (user_id, username, full_name, biography, followers_count, source, raw, scraped_at)
VALUES
    (17841405309211844, 'bluebottle', 'Blue Bottle Coffee', 'From the Graph API', 300,
     'instagram.graph.business_discovery', '{"id": "17841405309211844", "ig_id": 1620131}', '2025-06-03 10:00Z'),
    (1620131, 'bluebottle', NULL, 'From the web', 200,
     'instagram.web.profile', '{"id": "1620131"}', '2025-06-03 09:00Z'),
    (17841400000000002, 'lonely', 'Lone Graph', NULL, 10,
     'instagram.graph.business_discovery', '{"id": "17841400000000002", "ig_id": "2620131"}', '2025-06-03 09:00Z'),
    (17841400000000003, 'namesake', NULL, NULL, 1,
     'instagram.graph.business_discovery', '{"id": "17841400000000003"}', '2025-06-03 09:00Z'),
    (3620131, 'namesake', NULL, NULL, 2, 'instagram.web.profile', '{"id": "3620131"}', '2025-06-03 09:00Z'),
    (555, 'fan', NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO instagram_profile_snapshots (user_id, scraped_at, followers_count, source) VALUES
    (17841405309211844, '2025-06-03 08:00Z', 100, 'instagram.graph.business_discovery'),
    (17841405309211844, '2025-06-03 10:00Z', 300, 'instagram.graph.business_discovery'),
    (17841405309211844, '2025-06-03 09:00Z', 999, 'instagram.graph.business_discovery'),
    (1620131, '2025-06-03 09:00Z', 200, 'instagram.web.profile'),
    (17841400000000002, '2025-06-03 09:00Z', 10, 'instagram.graph.business_discovery');
INSERT INTO instagram_posts (media_id, shortcode, owner_id, source, raw, scraped_at) VALUES
    (1, 'A', 17841405309211844, 'instagram.graph.business_discovery', '{}', '2025-06-03 10:00Z'),
    (2, 'B', 1620131, 'instagram.web.profile', '{}', '2025-06-03 09:00Z'),
    (3, 'C', 17841400000000002, 'instagram.graph.business_discovery', '{}', '2025-06-03 09:00Z');
INSERT INTO instagram_comments (comment_id, media_id, author_id, text, source, raw, scraped_at) VALUES
    (10, 2, 17841405309211844, 'thanks', 'instagram.web.profile', '{}', '2025-06-03 09:00Z'),
    (11, 2, 555, 'nice', 'instagram.web.profile', '{}', '2025-06-03 09:00Z');
INSERT INTO instagram_post_tagged_users (media_id, user_id) VALUES
    (2, 17841405309211844), (2, 1620131), (3, 17841405309211844);
"#;

/// Each row of `sql` as the text of its one column.
async fn column(db: &DatabaseConnection, sql: &str) -> Vec<String> {
    let result = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql.to_owned())).await.unwrap();
    result.iter().map(|row| row.try_get_by_index::<String>(0).unwrap()).collect()
}

#[tokio::test]
async fn duplicates_whose_graph_row_names_the_web_id_merge_and_down_runs() {
    let pg = Postgres::start().await.unwrap();
    let (_, url) = pg.create_database().await.unwrap();
    let db = Database::connect(&url).await.unwrap();
    // The migrations before this one: later ones may follow it.
    let before = Migrator::migrations()
        .iter()
        .position(|m| m.name().contains("instagram_one_profile_per_account"))
        .expect("the migration exists");
    Migrator::up(&db, Some(before as u32)).await.unwrap();
    db.execute_unprepared(DUPLICATES).await.unwrap();

    Migrator::up(&db, Some(1)).await.unwrap();

    let profiles = column(
        &db,
        "SELECT concat_ws(' ', user_id, coalesce(graph_user_id::text, '-'), username, coalesce(full_name, '-'),
                biography, followers_count, source, scraped_at AT TIME ZONE 'UTC')
           FROM instagram_profiles ORDER BY user_id",
    )
    .await;
    assert_eq!(
        profiles,
        [
            "555 - fan -".to_owned(),
            format!(
                "{WEB} {GRAPH} bluebottle Blue Bottle Coffee From the Graph API 300 instagram.graph.business_discovery 2025-06-03 10:00:00"
            ),
            format!(
                "{LONE_WEB} {LONE_GRAPH} lonely Lone Graph 10 instagram.graph.business_discovery 2025-06-03 09:00:00"
            ),
            format!("{SAME_NAME_WEB} - namesake - 2 instagram.web.profile 2025-06-03 09:00:00"),
            format!("{OLD_GRAPH} - namesake - 1 instagram.graph.business_discovery 2025-06-03 09:00:00"),
        ],
        "the newer Graph scrape's values win, the web row keeps what the Graph row lacks; a shared username is no proof"
    );
    let snapshots = column(
        &db,
        "SELECT concat_ws(' ', user_id, to_char(scraped_at AT TIME ZONE 'UTC', 'HH24:MI'), followers_count)
           FROM instagram_profile_snapshots ORDER BY user_id, scraped_at",
    )
    .await;
    assert_eq!(
        snapshots,
        [
            format!("{WEB} 08:00 100"),
            format!("{WEB} 09:00 200"),
            format!("{WEB} 10:00 300"),
            format!("{LONE_WEB} 09:00 10"),
        ],
        "one history; at an instant both rows have, the web-id row's snapshot stays"
    );
    let owners = column(&db, "SELECT concat_ws(' ', media_id, owner_id) FROM instagram_posts ORDER BY 1").await;
    assert_eq!(owners, [format!("1 {WEB}"), format!("2 {WEB}"), format!("3 {LONE_WEB}")]);
    let authors = column(&db, "SELECT concat_ws(' ', comment_id, author_id) FROM instagram_comments ORDER BY 1").await;
    assert_eq!(authors, [format!("10 {WEB}"), "11 555".to_owned()], "no comment went with the deleted row");
    let tagged =
        column(&db, "SELECT concat_ws(' ', media_id, user_id) FROM instagram_post_tagged_users ORDER BY 1").await;
    assert_eq!(tagged, [format!("2 {WEB}"), format!("3 {WEB}")]);

    Migrator::down(&db, Some(1)).await.unwrap();
    let columns = column(
        &db,
        "SELECT column_name::text FROM information_schema.columns
          WHERE table_name = 'instagram_profiles' AND column_name = 'graph_user_id'",
    )
    .await;
    assert!(columns.is_empty(), "down drops the column");
    let ids = column(&db, "SELECT user_id::text FROM instagram_profiles ORDER BY user_id").await;
    assert_eq!(ids.len(), 5, "merged rows stay merged: {ids:?}");
    Migrator::up(&db, Some(1)).await.unwrap();
}
