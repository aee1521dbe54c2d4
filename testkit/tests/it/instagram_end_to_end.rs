//! Instagram end to end, with the real binaries: the scraper polls a local server that answers as the Graph API
//! (business discovery, hashtag search and media) and the web profile endpoint do, produces to the broker, and
//! the inserter lands the records in Postgres. Then a second scrape, with grown counts: the profiles follow, a
//! snapshot a profile is added, the posts' counts follow. A post that both APIs return lands on one row.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use testkit::Process;
use testkit::http::{HttpServer, Reply, Request};
use testkit::stack::{Role, Stack, StackOptions};

const TOKEN: &str = "EAAGe2e-token";
const APP_USER: &str = "17841400000000001";
const GRAPH_BLUEBOTTLE: &str = "17841405309211844";
const HASHTAG_ID: &str = "17843853986012965";
/// A post both APIs return: the web's id is the number its shortcode encodes.
const SHARED_SHORTCODE: &str = "C9bFlDJv0uH";
const SHARED_MEDIA_ID: i64 = 3412345678901234567;

/// The answers of scrape `n` (counts grow with `n`).
fn respond(request: &Request, n: u32) -> Reply {
    let path = request.path();
    if path == format!("/v25.0/{APP_USER}") {
        let fields = request.query("fields").unwrap_or_default();
        if !fields.contains("username(bluebottle)") {
            return Reply::json(
                400,
                r#"{"error":{"message":"Invalid user id","type":"OAuthException","code":110,"error_subcode":2207013,"fbtrace_id":"A"}}"#,
            );
        }
        return Reply::json(
            200,
            &format!(
                r##"{{"business_discovery":{{"id":"{GRAPH_BLUEBOTTLE}","username":"bluebottle","name":"Blue Bottle Coffee","biography":"Coffee","followers_count":{},"follows_count":10,"media_count":2,"media":{{"data":[{{"id":"17858843269216389","caption":"Sunday #Coffee at #BlueBottle","media_type":"IMAGE","media_url":"https://cdn.example/1.jpg","permalink":"https://www.instagram.com/p/{SHARED_SHORTCODE}/","timestamp":"2025-06-03T14:03:11+0000","like_count":{},"comments_count":5,"username":"bluebottle"}},{{"id":"17858843269216390","caption":"New beans","media_type":"VIDEO","permalink":"https://www.instagram.com/reel/C9bFlDJv003/","timestamp":"2025-06-02T09:00:00+0000","comments_count":{},"username":"bluebottle"}}],"paging":{{"cursors":{{"before":"QVFIUb"}}}}}}}},"id":"{APP_USER}"}}"##,
                1000 * n,
                10 * n,
                n
            ),
        );
    }
    if path == "/v25.0/ig_hashtag_search" {
        return Reply::json(200, &format!(r#"{{"data":[{{"id":"{HASHTAG_ID}"}}]}}"#));
    }
    if path == format!("/v25.0/{HASHTAG_ID}/recent_media") {
        return Reply::json(
            200,
            &format!(
                r##"{{"data":[{{"id":"17900000000000001","caption":"#coffee and a #Latte","media_type":"IMAGE","permalink":"https://www.instagram.com/p/C8vOfxsVAAB/","timestamp":"2025-06-03T10:00:00+0000","like_count":{},"comments_count":0}}]}}"##,
                3 * n
            ),
        );
    }
    if path == "/api/v1/users/web_profile_info/" {
        return match request.query("username").as_deref() {
            Some("nasa") => Reply::json(
                200,
                &format!(
                    r##"{{"data":{{"user":{{"id":"528817151","username":"nasa","full_name":"NASA","biography":"Explore the universe","is_private":false,"is_verified":true,"is_business_account":false,"edge_followed_by":{{"count":{}}},"edge_follow":{{"count":80}},"edge_owner_to_timeline_media":{{"count":4000,"page_info":{{"has_next_page":true,"end_cursor":"x"}},"edges":[{{"node":{{"__typename":"GraphImage","id":"3100000000000000002","shortcode":"CsFaZNTtgAC","display_url":"https://cdn.example/n.jpg","is_video":false,"taken_at_timestamp":1717250591,"owner":{{"id":"528817151","username":"nasa"}},"edge_media_to_caption":{{"edges":[{{"node":{{"text":"Saturn #space"}}}}]}},"edge_liked_by":{{"count":{}}},"edge_media_preview_like":{{"count":{}}},"edge_media_to_comment":{{"count":1,"edges":[{{"node":{{"id":"18012345678901234","text":"wow","created_at":1717250600,"owner":{{"id":"999","username":"fan"}},"edge_liked_by":{{"count":2}}}}}}]}},"edge_media_to_tagged_user":{{"edges":[{{"node":{{"user":{{"id":"777","username":"friend","full_name":"F"}}}}}}]}}}}}}]}}}}}},"status":"ok"}}"##,
                    2000 * n,
                    5 * n,
                    5 * n
                ),
            ),
            Some("bluebottle") => Reply::json(
                200,
                &format!(
                    r##"{{"data":{{"user":{{"id":"1548484","username":"bluebottle","full_name":"Blue Bottle Coffee","is_private":false,"is_verified":false,"is_business_account":true,"edge_followed_by":{{"count":{}}},"edge_follow":{{"count":10}},"edge_owner_to_timeline_media":{{"count":2,"edges":[{{"node":{{"__typename":"GraphImage","id":"{SHARED_MEDIA_ID}","shortcode":"{SHARED_SHORTCODE}","display_url":"https://cdn.example/1.jpg","is_video":false,"taken_at_timestamp":1748959391,"owner":{{"id":"1548484","username":"bluebottle"}},"edge_media_to_caption":{{"edges":[{{"node":{{"text":"Sunday #Coffee at #BlueBottle"}}}}]}},"edge_liked_by":{{"count":{}}},"edge_media_to_comment":{{"count":5}}}}}}]}}}}}},"status":"ok"}}"##,
                    1000 * n + 1,
                    10 * n
                ),
            ),
            _ => Reply::json(404, r#"{"message":"User not found","status":"fail"}"#),
        };
    }
    Reply::json(404, r#"{"message":"unexpected","status":"fail"}"#)
}

async fn query(db: &DatabaseConnection, sql: &str) -> Vec<sea_orm::QueryResult> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap()
}

async fn number(db: &DatabaseConnection, sql: &str) -> i64 {
    query(db, sql).await[0].try_get_by_index(0).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn scrape_and_insert(stack: &Stack, server: &HttpServer, dir: &tempfile::TempDir, n: u32) {
    let mut command = stack.scraper();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let envs: Vec<(String, String)> = vec![
        ("SCRAPER_SOURCES".into(), "instagram-graph,instagram-web".into()),
        ("INSTAGRAM_ROUNDS".into(), "1".into()),
        ("INSTAGRAM_USERNAMES".into(), "bluebottle,@NASA,ghost".into()),
        ("INSTAGRAM_HASHTAGS".into(), "#coffee".into()),
        ("INSTAGRAM_ACCESS_TOKEN".into(), TOKEN.into()),
        ("INSTAGRAM_USER_ID".into(), APP_USER.into()),
        ("INSTAGRAM_GRAPH_BASE_URL".into(), format!("{}/v25.0", server.url())),
        ("INSTAGRAM_WEB_BASE_URL".into(), server.url()),
        ("SCRAPER_METRICS_ADDR".into(), "127.0.0.1:0".into()),
        ("TOPIC_PARTITIONS".into(), "2".into()),
    ];
    let kept: Vec<(String, String)> =
        command.get_envs().filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned()))).collect();
    command
        .env_clear()
        .envs(kept)
        .envs(envs)
        .env("PATH", path)
        .env("RUST_LOG", "info,librdkafka=warn")
        .current_dir(dir.path());
    let mut scraper = Process::spawn(command, &dir.path().join(format!("scraper-{n}.log"))).unwrap();
    let status = scraper.wait(Duration::from_secs(90)).await.unwrap();
    assert!(status.success(), "{}", scraper.log());
    assert!(!scraper.log().contains(TOKEN), "the token is never logged");

    let mut command = stack.inserter();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kept: Vec<(String, String)> =
        command.get_envs().filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned()))).collect();
    command
        .env_clear()
        .envs(kept)
        .env("PATH", path)
        .env("RUST_LOG", "info,librdkafka=warn")
        .env("INSERTER_METRICS_ADDR", "127.0.0.1:0")
        .env("BATCH_TIMEOUT", "100ms")
        .args(["--exit-when-idle", "4s"])
        .current_dir(dir.path());
    let mut inserter = Process::spawn(command, &dir.path().join(format!("inserter-{n}.log"))).unwrap();
    let status = inserter.wait(Duration::from_secs(120)).await.unwrap();
    assert!(status.success(), "{}", inserter.log());
}

#[tokio::test]
async fn profiles_snapshots_posts_and_hashtags_land_and_a_second_scrape_updates_them() {
    let stack = Stack::start(&StackOptions::new().unwrap()).await.unwrap();
    stack.migrate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let scrape = Arc::new(AtomicU32::new(1));
    let server = HttpServer::with({
        let scrape = scrape.clone();
        move |request| respond(request, scrape.load(Ordering::SeqCst))
    })
    .await
    .unwrap();

    scrape_and_insert(&stack, &server, &dir, 1).await;
    let db = stack.connect(Role::Analyst).await.unwrap();
    assert_eq!(number(&db, "SELECT count(*) FROM ingest_errors").await, 0);
    assert_eq!(number(&db, "SELECT count(*) FROM instagram_profiles WHERE scraped_at IS NOT NULL").await, 3);
    assert_eq!(
        number(&db, "SELECT count(*) FROM instagram_profiles WHERE scraped_at IS NULL AND user_id IN (777, 999)").await,
        2,
        "the comment's author and the tagged user: minimal rows"
    );
    assert_eq!(number(&db, "SELECT count(*) FROM instagram_profile_snapshots").await, 3);
    assert_eq!(number(&db, "SELECT followers_count FROM instagram_profiles WHERE user_id = 528817151").await, 2000);
    assert_eq!(
        number(&db, &format!("SELECT followers_count FROM instagram_profiles WHERE user_id = {GRAPH_BLUEBOTTLE}"))
            .await,
        1000
    );
    assert_eq!(number(&db, "SELECT count(*) FROM instagram_posts").await, 4);
    assert_eq!(
        number(&db, &format!("SELECT graph_media_id FROM instagram_posts WHERE media_id = {SHARED_MEDIA_ID} AND shortcode = '{SHARED_SHORTCODE}'")).await,
        17858843269216389,
        "the Graph API's and the web's record of one post are one row"
    );
    assert_eq!(number(&db, "SELECT like_count FROM instagram_posts WHERE media_id = 3100000000000000002").await, 5);
    let tags = query(&db, "SELECT name FROM instagram_hashtags ORDER BY name").await;
    let tags: Vec<String> = tags.iter().map(|row| row.try_get_by_index(0).unwrap()).collect();
    assert_eq!(tags, ["bluebottle", "coffee", "latte", "space"]);
    assert_eq!(
        number(&db, "SELECT graph_hashtag_id FROM instagram_hashtags WHERE name = 'coffee'").await,
        HASHTAG_ID.parse::<i64>().unwrap()
    );
    assert_eq!(number(&db, "SELECT count(*) FROM instagram_post_hashtags WHERE hashtag = 'coffee'").await, 2);
    assert_eq!(number(&db, "SELECT count(*) FROM instagram_comments WHERE media_id = 3100000000000000002").await, 1);
    assert_eq!(number(&db, "SELECT count(*) FROM instagram_post_tagged_users WHERE user_id = 777").await, 1);

    scrape.store(2, Ordering::SeqCst);
    scrape_and_insert(&stack, &server, &dir, 2).await;
    assert_eq!(number(&db, "SELECT count(*) FROM ingest_errors").await, 0);
    assert_eq!(number(&db, "SELECT count(*) FROM instagram_profile_snapshots").await, 6, "one more snapshot a profile");
    assert_eq!(
        number(
            &db,
            "SELECT count(DISTINCT followers_count) FROM instagram_profile_snapshots WHERE user_id = 528817151"
        )
        .await,
        2,
        "the snapshots keep the history"
    );
    assert_eq!(number(&db, "SELECT followers_count FROM instagram_profiles WHERE user_id = 528817151").await, 4000);
    assert_eq!(
        number(&db, &format!("SELECT followers_count FROM instagram_profiles WHERE user_id = {GRAPH_BLUEBOTTLE}"))
            .await,
        2000
    );
    assert_eq!(number(&db, "SELECT count(*) FROM instagram_posts").await, 4);
    assert_eq!(number(&db, "SELECT like_count FROM instagram_posts WHERE media_id = 3100000000000000002").await, 10);
    assert_eq!(
        number(&db, &format!("SELECT like_count FROM instagram_posts WHERE media_id = {SHARED_MEDIA_ID}")).await,
        20
    );
    assert_eq!(number(&db, "SELECT like_count FROM instagram_posts WHERE shortcode = 'C8vOfxsVAAB'").await, 6);
    assert_eq!(number(&db, "SELECT comments_count FROM instagram_posts WHERE shortcode = 'C9bFlDJv003'").await, 2);
}
