//! One profile row per account, whichever API scraped it, through the batch writer into a real Postgres: a
//! Graph scrape that names the web id (`ig_id`) and a web scrape of the account land on one row keyed by the
//! web id, in either order, with one history of snapshots and its posts owned by it; a row written under the
//! Graph id (an older Graph scrape, a Graph media's owner) merges into it once a scrape names both ids, and
//! nothing is written under that Graph id again; the merge needs no more than the inserter's grants.

use entity::{instagram_posts, instagram_profile_snapshots, instagram_profiles};
use inserter::writer::write;
use migration::Migrator;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait};
use serde_json::{Value, json};
use testkit::Postgres;

use super::instagram_writer::{
    BLUEBOTTLE_GRAPH, BLUEBOTTLE_WEB, GRAPH_POST, at, batch, count, fixture, graph_media, graph_profile, post, profile,
    setup, snapshots, web_media, web_profile, with,
};

/// The web's `data.user` for the account the Graph fixtures describe.
fn bluebottle_on_the_web() -> Value {
    with("web_profile.json", json!({"id": "1620131", "username": "bluebottle", "full_name": "Blue Bottle Coffee"}))
}

async fn no_row(db: &DatabaseConnection, id: i64) -> bool {
    instagram_profiles::Entity::find_by_id(id).one(db).await.unwrap().is_none()
}

/// What every scenario ends with: one row keyed by the web id with the Graph id beside it, the post owned
/// by it, and nothing left under the Graph id.
async fn assert_one_account(db: &DatabaseConnection) -> instagram_profiles::Model {
    let row = profile(db, BLUEBOTTLE_WEB).await;
    assert_eq!(row.graph_user_id, Some(BLUEBOTTLE_GRAPH));
    assert_eq!(count(db, instagram_profiles::Entity).await, 1, "one row for the account");
    assert!(no_row(db, BLUEBOTTLE_GRAPH).await, "nothing under the Graph id");
    assert_eq!(snapshots(db, BLUEBOTTLE_GRAPH).await, []);
    assert_eq!(post(db, GRAPH_POST).await.owner_id, Some(BLUEBOTTLE_WEB));
    row
}

#[tokio::test]
async fn a_graph_scrape_then_a_web_scrape_of_one_account_are_one_row_with_one_history() {
    let (_pg, db) = setup().await;
    let graph = vec![
        graph_profile(0, &fixture("graph_profile_ig_id.json"), at(0)),
        graph_media(0, &fixture("graph_media.json"), at(0)),
    ];
    assert_eq!(write(&db, "g", &mut batch(graph)).await.unwrap().dead_letters(), 0);
    let row = assert_one_account(&db).await;
    assert_eq!((row.followers_count, row.raw), (Some(267793), Some(fixture("graph_profile_ig_id.json"))));

    let web =
        vec![web_profile(0, &bluebottle_on_the_web(), at(10)), web_media(0, &fixture("web_node_video.json"), at(10))];
    assert_eq!(write(&db, "g", &mut batch(web)).await.unwrap().dead_letters(), 0);
    let row = assert_one_account(&db).await;
    assert_eq!(
        (row.category.as_deref(), row.followers_count, row.source.as_deref()),
        (Some("Digital creator"), Some(676000000), Some("instagram.web.profile")),
        "the newer web scrape updates the row"
    );
    assert_eq!(row.graph_user_id, Some(BLUEBOTTLE_GRAPH), "kept: the web does not send it");
    assert_eq!(snapshots(&db, BLUEBOTTLE_WEB).await, [(at(0), Some(267793)), (at(10), Some(676000000))]);
}

#[tokio::test]
async fn a_web_scrape_then_a_graph_scrape_of_one_account_are_one_row_with_one_history() {
    let (_pg, db) = setup().await;
    let web =
        vec![web_profile(0, &bluebottle_on_the_web(), at(0)), web_media(0, &fixture("web_node_video.json"), at(0))];
    write(&db, "g", &mut batch(web)).await.unwrap();
    assert_eq!(profile(&db, BLUEBOTTLE_WEB).await.graph_user_id, None);

    let graph = vec![
        graph_profile(0, &fixture("graph_profile_ig_id.json"), at(10)),
        graph_media(0, &fixture("graph_media.json"), at(10)),
    ];
    assert_eq!(write(&db, "g", &mut batch(graph)).await.unwrap().dead_letters(), 0);
    let row = assert_one_account(&db).await;
    assert_eq!(
        (row.category.as_deref(), row.followers_count, row.source.as_deref()),
        (Some("Digital creator"), Some(267793), Some("instagram.graph.business_discovery")),
        "the newer Graph scrape updates what it sends, the web's other fields stay"
    );
    assert_eq!(snapshots(&db, BLUEBOTTLE_WEB).await, [(at(0), Some(676000000)), (at(10), Some(267793))]);

    // An older Graph scrape still teaches the Graph id, and changes nothing else.
    let (_pg2, db) = setup().await;
    write(&db, "g", &mut batch(vec![web_profile(0, &bluebottle_on_the_web(), at(10))])).await.unwrap();
    write(&db, "g", &mut batch(vec![graph_profile(0, &fixture("graph_profile_ig_id.json"), at(0))])).await.unwrap();
    let row = profile(&db, BLUEBOTTLE_WEB).await;
    assert_eq!((row.graph_user_id, row.followers_count), (Some(BLUEBOTTLE_GRAPH), Some(676000000)));
    assert_eq!(count(&db, instagram_profile_snapshots::Entity).await, 2);

    // Both in one batch.
    let (_pg3, db) = setup().await;
    let records = vec![
        graph_media(0, &fixture("graph_media.json"), at(0)),
        web_profile(0, &bluebottle_on_the_web(), at(5)),
        graph_profile(1, &fixture("graph_profile_ig_id.json"), at(10)),
    ];
    assert_eq!(write(&db, "g", &mut batch(records)).await.unwrap().dead_letters(), 0);
    assert_one_account(&db).await;
    assert_eq!(snapshots(&db, BLUEBOTTLE_WEB).await, [(at(5), Some(676000000)), (at(10), Some(267793))]);
}

#[tokio::test]
async fn rows_under_the_graph_id_merge_once_a_scrape_names_both_ids_and_none_come_back() {
    let (_pg, db) = setup().await;
    // Scraped before business discovery was asked for `ig_id`: two rows, nothing tells they are one account.
    let before = vec![
        graph_profile(0, &fixture("graph_profile.json"), at(0)),
        graph_media(0, &fixture("graph_media.json"), at(0)),
        web_profile(0, &bluebottle_on_the_web(), at(5)),
    ];
    write(&db, "g", &mut batch(before)).await.unwrap();
    assert_eq!(count(&db, instagram_profiles::Entity).await, 2);
    assert_eq!(post(&db, GRAPH_POST).await.owner_id, Some(BLUEBOTTLE_GRAPH));

    write(&db, "g", &mut batch(vec![graph_profile(1, &fixture("graph_profile_ig_id.json"), at(10))])).await.unwrap();
    let row = assert_one_account(&db).await;
    assert_eq!((row.followers_count, row.scraped_at), (Some(267793), Some(at(10))));
    assert_eq!(
        snapshots(&db, BLUEBOTTLE_WEB).await,
        [(at(0), Some(267793)), (at(5), Some(676000000)), (at(10), Some(267793))],
        "the Graph id's history moved to the account's row"
    );

    // Old records again (a replay, a re-driven dead letter): written under the web id, or not at all.
    let replay = vec![
        graph_profile(0, &with("graph_profile.json", json!({"followers_count": 1})), at(20)),
        graph_media(0, &with("graph_media.json", json!({"like_count": 99})), at(20)),
    ];
    assert_eq!(write(&db, "g", &mut batch(replay)).await.unwrap().dead_letters(), 0);
    let after = assert_one_account(&db).await;
    assert_eq!(after.followers_count, row.followers_count, "a Graph scrape without the web id writes no row");
    assert_eq!(snapshots(&db, BLUEBOTTLE_WEB).await.last(), Some(&(at(20), Some(1))), "its snapshot is the account's");
    assert_eq!(post(&db, GRAPH_POST).await.like_count, Some(99));
}

#[tokio::test]
async fn a_minimal_owner_row_under_the_graph_id_merges_into_the_account_row() {
    let (_pg, db) = setup().await;
    write(&db, "g", &mut batch(vec![graph_media(0, &fixture("graph_media.json"), at(0))])).await.unwrap();
    let minimal = profile(&db, BLUEBOTTLE_GRAPH).await;
    assert_eq!((minimal.username.as_deref(), minimal.raw), (Some("bluebottle"), None));

    write(&db, "g", &mut batch(vec![graph_profile(0, &fixture("graph_profile_ig_id.json"), at(5))])).await.unwrap();
    let row = assert_one_account(&db).await;
    assert_eq!(row.full_name.as_deref(), Some("Blue Bottle Coffee"));

    // A later media page of the account makes no minimal row under the Graph id again.
    let next = with("graph_media.json", json!({"comments_count": 57}));
    write(&db, "g", &mut batch(vec![graph_media(1, &next, at(10))])).await.unwrap();
    assert_one_account(&db).await;
    assert_eq!(count(&db, instagram_posts::Entity).await, 1);
}

#[tokio::test]
async fn the_merge_needs_only_the_inserters_grants() {
    let pg = Postgres::start().await.unwrap();
    let test = pg.migrated_database::<Migrator>().await.unwrap();
    test.conn
        .execute_unprepared(
            r#"
            CREATE ROLE inserter LOGIN PASSWORD 'inserter';
            GRANT USAGE ON SCHEMA public TO inserter;
            GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO inserter;
            GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO inserter;
            "#,
        )
        .await
        .unwrap();
    let db = Database::connect(pg.url_as("inserter", "inserter", &test.name)).await.unwrap();
    write(&db, "g", &mut batch(vec![graph_media(0, &fixture("graph_media.json"), at(0))])).await.unwrap();
    let written =
        write(&db, "g", &mut batch(vec![graph_profile(0, &fixture("graph_profile_ig_id.json"), at(5))])).await.unwrap();
    assert_eq!(written.dead_letters(), 0);
    assert_one_account(&db).await;
}
