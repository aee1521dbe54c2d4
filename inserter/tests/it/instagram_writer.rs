//! Instagram records through the batch writer into a real Postgres: every profile, snapshot, post, hashtag,
//! link, comment and tagged user lands; a newer scrape updates and adds one snapshot, an older one changes
//! no row; a hidden like count keeps the known one; a Graph and a web scrape of one post share one row with
//! both ids, in either order; an owner never scraped gets a minimal row that a later profile fills; a replay
//! writes nothing; and every unstorable record is dead-lettered with its reason while the rest lands.

use chrono::{DateTime, Duration, TimeZone, Utc};
use entity::{
    ingest_errors, instagram_comments, instagram_hashtags, instagram_post_hashtags, instagram_post_tagged_users,
    instagram_posts, instagram_profile_snapshots, instagram_profiles,
};
use inserter::record::ConsumedRecord;
use inserter::writer::write;
use migration::CDC_PUBLICATION;
use sea_orm::{DatabaseConnection, EntityTrait, QueryOrder};
use serde_json::{Value, json};
use testkit::cdc;

pub(crate) use crate::support::{batch, setup};

pub(crate) const PROFILES: &str = "instagram.profiles";
pub(crate) const MEDIA: &str = "instagram.media";
pub(crate) const BLUEBOTTLE_GRAPH: i64 = 17841405309211844;
pub(crate) const BLUEBOTTLE_WEB: i64 = 1620131;
const INSTAGRAM: i64 = 25025320;
pub(crate) const GRAPH_POST: i64 = 3195531937028616383; // CxYz123AbC_
const WEB_POST: i64 = 3412160342377498722; // C9abcDEFghi
const HASHTAG_POST: i64 = 3466375131966345763; // DAbCdEfGhIj

pub(crate) fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/instagram/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

pub(crate) fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 3, 9, 0, 0).unwrap() + Duration::seconds(seconds)
}

pub(crate) fn record(
    topic: &str,
    offset: i64,
    value: &Value,
    headers: &[(&str, &str)],
    scraped_at: DateTime<Utc>,
) -> ConsumedRecord {
    let mut all: Vec<(String, Option<Vec<u8>>)> =
        headers.iter().map(|(k, v)| ((*k).to_owned(), Some(v.as_bytes().to_vec()))).collect();
    all.push(("scraped_at".into(), Some(scraped_at.to_rfc3339().into_bytes())));
    ConsumedRecord {
        topic: topic.into(),
        partition: 0,
        offset,
        key: value["id"].as_str().map(|id| id.as_bytes().to_vec()),
        payload: Some(value.to_string().into_bytes()),
        headers: all,
        timestamp: None,
    }
}

pub(crate) fn graph_profile(offset: i64, value: &Value, scraped_at: DateTime<Utc>) -> ConsumedRecord {
    record(PROFILES, offset, value, &[("source", "instagram.graph.business_discovery")], scraped_at)
}

pub(crate) fn web_profile(offset: i64, value: &Value, scraped_at: DateTime<Utc>) -> ConsumedRecord {
    record(PROFILES, offset, value, &[("source", "instagram.web.profile")], scraped_at)
}

pub(crate) fn graph_media(offset: i64, value: &Value, scraped_at: DateTime<Utc>) -> ConsumedRecord {
    let headers = [("source", "instagram.graph.business_discovery"), ("instagram_owner_id", "17841405309211844")];
    record(MEDIA, offset, value, &headers, scraped_at)
}

fn hashtag_media(offset: i64, value: &Value, scraped_at: DateTime<Utc>) -> ConsumedRecord {
    let headers = [
        ("source", "instagram.graph.hashtag.top_media"),
        ("instagram_hashtag", "Coffee"),
        ("instagram_hashtag_id", "17843826142012701"),
    ];
    record(MEDIA, offset, value, &headers, scraped_at)
}

pub(crate) fn web_media(offset: i64, value: &Value, scraped_at: DateTime<Utc>) -> ConsumedRecord {
    record(MEDIA, offset, value, &[("source", "instagram.web.profile")], scraped_at)
}

pub(crate) fn with(name: &str, changes: Value) -> Value {
    let mut value = fixture(name);
    for (key, new) in changes.as_object().unwrap() {
        if new.is_null() {
            value.as_object_mut().unwrap().remove(key);
        } else {
            value[key] = new.clone();
        }
    }
    value
}

pub(crate) async fn profile(db: &DatabaseConnection, id: i64) -> instagram_profiles::Model {
    instagram_profiles::Entity::find_by_id(id).one(db).await.unwrap().expect("the profile was stored")
}

pub(crate) async fn post(db: &DatabaseConnection, id: i64) -> instagram_posts::Model {
    instagram_posts::Entity::find_by_id(id).one(db).await.unwrap().expect("the post was stored")
}

pub(crate) async fn snapshots(db: &DatabaseConnection, id: i64) -> Vec<(DateTime<Utc>, Option<i64>)> {
    let rows = instagram_profile_snapshots::Entity::find()
        .order_by_asc(instagram_profile_snapshots::Column::ScrapedAt)
        .all(db)
        .await
        .unwrap();
    rows.into_iter().filter(|s| s.user_id == id).map(|s| (s.scraped_at, s.followers_count)).collect()
}

pub(crate) async fn count<E: EntityTrait>(db: &DatabaseConnection, _: E) -> usize {
    E::find().all(db).await.unwrap().len()
}

fn everything(scraped_at: DateTime<Utc>) -> Vec<ConsumedRecord> {
    vec![
        graph_profile(0, &fixture("graph_profile.json"), scraped_at),
        web_profile(1, &fixture("web_profile.json"), scraped_at),
        graph_media(0, &fixture("graph_media.json"), scraped_at),
        hashtag_media(1, &fixture("graph_hashtag_media.json"), scraped_at),
        web_media(2, &fixture("web_node.json"), scraped_at),
    ]
}

#[tokio::test]
async fn every_profile_snapshot_post_hashtag_link_comment_and_tagged_user_lands() {
    let (_pg, db) = setup().await;
    let written = write(&db, "g", &mut batch(everything(at(0)))).await.unwrap();
    assert_eq!(written.dead_letters(), 0);

    let graph = profile(&db, BLUEBOTTLE_GRAPH).await;
    assert_eq!(
        (graph.username.as_deref(), graph.full_name.as_deref()),
        (Some("bluebottle"), Some("Blue Bottle Coffee"))
    );
    assert_eq!((graph.followers_count, graph.follows_count, graph.media_count), (Some(267793), Some(1130), Some(1205)));
    assert_eq!((graph.source.as_deref(), graph.scraped_at), (Some("instagram.graph.business_discovery"), Some(at(0))));
    assert_eq!(graph.raw, Some(fixture("graph_profile.json")));
    let web = profile(&db, INSTAGRAM).await;
    assert_eq!(
        (web.category.as_deref(), web.is_verified, web.followers_count),
        (Some("Digital creator"), Some(true), Some(676000000))
    );
    assert_eq!(
        web.raw,
        Some(fixture("web_profile.json")),
        "the owner's full profile is not downgraded by its minimal reference"
    );
    for (id, username) in [(555, "fan"), (556, "another_fan"), (777, "friend")] {
        let minimal = profile(&db, id).await;
        assert_eq!(minimal.username.as_deref(), Some(username));
        assert_eq!((minimal.raw, minimal.scraped_at, minimal.source), (None, None, None), "a minimal row");
    }
    assert_eq!(count(&db, instagram_profiles::Entity).await, 5);
    assert_eq!(snapshots(&db, BLUEBOTTLE_GRAPH).await, [(at(0), Some(267793))]);
    assert_eq!(snapshots(&db, INSTAGRAM).await, [(at(0), Some(676000000))]);
    assert_eq!(count(&db, instagram_profile_snapshots::Entity).await, 2);

    let graph_post = post(&db, GRAPH_POST).await;
    assert_eq!(graph_post.shortcode, "CxYz123AbC_");
    assert_eq!((graph_post.graph_media_id, graph_post.owner_id), (Some(17858843269216389), Some(BLUEBOTTLE_GRAPH)));
    assert_eq!(graph_post.taken_at, Some(Utc.with_ymd_and_hms(2025, 6, 1, 14, 3, 11).unwrap()));
    assert_eq!((graph_post.like_count, graph_post.comments_count), (Some(1234), Some(56)));
    assert_eq!(graph_post.raw, fixture("graph_media.json"));
    let hashtag_post = post(&db, HASHTAG_POST).await;
    assert_eq!((hashtag_post.shortcode.as_str(), hashtag_post.owner_id), ("DAbCdEfGhIj", None));
    let web_post = post(&db, WEB_POST).await;
    assert_eq!(
        (web_post.owner_id, web_post.graph_media_id, web_post.media_type.as_deref()),
        (Some(INSTAGRAM), None, Some("IMAGE"))
    );
    assert_eq!(count(&db, instagram_posts::Entity).await, 3);

    let tags = instagram_hashtags::Entity::find().all(&db).await.unwrap();
    let mut names: Vec<(String, Option<i64>)> = tags.into_iter().map(|t| (t.name, t.graph_hashtag_id)).collect();
    names.sort();
    let expected = [
        ("bluebottle", None),
        ("coffee", Some(17843826142012701)),
        ("coffeetime", None),
        ("instagramstories", None),
        ("summer", None),
    ];
    assert_eq!(names, expected.map(|(n, id)| (n.to_owned(), id)));
    let links = instagram_post_hashtags::Entity::find().all(&db).await.unwrap();
    let mut links: Vec<(i64, String)> = links.into_iter().map(|l| (l.media_id, l.hashtag)).collect();
    links.sort();
    let expected = [
        (GRAPH_POST, "bluebottle"),
        (GRAPH_POST, "coffee"),
        (WEB_POST, "instagramstories"),
        (WEB_POST, "summer"),
        (HASHTAG_POST, "coffee"),
        (HASHTAG_POST, "coffeetime"),
    ];
    assert_eq!(links, expected.map(|(id, n)| (id, n.to_owned())));

    let comments =
        instagram_comments::Entity::find().order_by_asc(instagram_comments::Column::CommentId).all(&db).await.unwrap();
    let comments: Vec<_> = comments
        .iter()
        .map(|c| (c.comment_id, c.media_id, c.parent_comment_id, c.author_id, c.text.as_str()))
        .collect();
    assert_eq!(
        comments,
        [
            (18012345678901234, WEB_POST, None, Some(555), "nice"),
            (18012345678901235, WEB_POST, Some(18012345678901234), Some(INSTAGRAM), "thank you!"),
            (18012345678901236, WEB_POST, None, Some(556), "🔥🔥"),
        ]
    );
    let tagged = instagram_post_tagged_users::Entity::find().all(&db).await.unwrap();
    assert_eq!(tagged.iter().map(|t| (t.media_id, t.user_id)).collect::<Vec<_>>(), [(WEB_POST, 777)]);
}

#[tokio::test]
async fn newer_scrapes_update_and_add_a_snapshot_older_ones_change_no_row_and_hidden_likes_are_kept() {
    let (_pg, db) = setup().await;
    let profile_with = |followers: i64| with("graph_profile.json", json!({"followers_count": followers}));
    let media_with = |likes: Value| with("graph_media.json", json!({"like_count": likes, "comments_count": 60}));
    let scrape = |offset, followers, likes: Value, scraped_at| {
        vec![
            graph_profile(offset, &profile_with(followers), scraped_at),
            graph_media(offset, &media_with(likes), scraped_at),
        ]
    };
    write(&db, "g", &mut batch(scrape(0, 100, json!(10), at(10)))).await.unwrap();

    write(&db, "g", &mut batch(scrape(1, 200, json!(20), at(20)))).await.unwrap();
    let updated = profile(&db, BLUEBOTTLE_GRAPH).await;
    assert_eq!((updated.followers_count, updated.scraped_at), (Some(200), Some(at(20))), "a newer scrape updates");
    assert_eq!(
        snapshots(&db, BLUEBOTTLE_GRAPH).await,
        [(at(10), Some(100)), (at(20), Some(200))],
        "and adds one snapshot"
    );
    let updated_post = post(&db, GRAPH_POST).await;
    assert_eq!(
        (updated_post.like_count, updated_post.comments_count, updated_post.scraped_at),
        (Some(20), Some(60), at(20))
    );

    write(&db, "g", &mut batch(scrape(2, 150, json!(15), at(15)))).await.unwrap();
    assert_eq!(profile(&db, BLUEBOTTLE_GRAPH).await, updated, "an older scrape changes no profile value");
    assert_eq!(post(&db, GRAPH_POST).await, updated_post, "nor any post value");
    assert_eq!(
        snapshots(&db, BLUEBOTTLE_GRAPH).await,
        [(at(10), Some(100)), (at(15), Some(150)), (at(20), Some(200))],
        "but its counts join the history where they belong"
    );

    write(&db, "g", &mut batch(vec![graph_media(3, &media_with(Value::Null), at(30))])).await.unwrap();
    assert_eq!(
        post(&db, GRAPH_POST).await,
        updated_post,
        "a hidden like count keeps the known one; nothing else changed"
    );
    let hidden_and_more_comments = with("graph_media.json", json!({"like_count": null, "comments_count": 61}));
    write(&db, "g", &mut batch(vec![graph_media(4, &hidden_and_more_comments, at(40))])).await.unwrap();
    let latest = post(&db, GRAPH_POST).await;
    assert_eq!((latest.like_count, latest.comments_count, latest.scraped_at), (Some(20), Some(61), at(40)));
}

#[tokio::test]
async fn a_graph_and_a_web_scrape_of_one_post_share_one_row_with_both_ids_in_either_order() {
    let (_pg, db) = setup().await;
    // Graph first, then the web.
    write(&db, "g", &mut batch(vec![graph_media(0, &fixture("graph_media.json"), at(0))])).await.unwrap();
    write(&db, "g", &mut batch(vec![web_media(0, &fixture("web_node_video.json"), at(10))])).await.unwrap();
    let row = post(&db, GRAPH_POST).await;
    assert_eq!(row.graph_media_id, Some(17858843269216389), "kept: the web does not send it");
    assert_eq!(row.owner_id, Some(BLUEBOTTLE_GRAPH), "the first owner known stays (the web's id is another number)");
    assert_eq!(
        row.permalink.as_deref(),
        Some("https://www.instagram.com/p/CxYz123AbC_/"),
        "kept: the web does not send it"
    );
    assert_eq!(
        (row.media_type.as_deref(), row.video_view_count, row.like_count),
        (Some("VIDEO"), Some(5000), Some(1300))
    );
    assert_eq!((row.source.as_str(), row.scraped_at), ("instagram.web.profile", at(10)));
    assert_eq!(profile(&db, BLUEBOTTLE_WEB).await.username.as_deref(), Some("bluebottle"), "both owners have a row");
    assert_eq!(count(&db, instagram_posts::Entity).await, 1);

    // The web first, then an older Graph scrape: its id is still learnt, nothing else changes.
    let (_pg2, db) = setup().await;
    write(&db, "g", &mut batch(vec![web_media(0, &fixture("web_node_video.json"), at(10))])).await.unwrap();
    write(&db, "g", &mut batch(vec![graph_media(0, &fixture("graph_media.json"), at(0))])).await.unwrap();
    let row = post(&db, GRAPH_POST).await;
    assert_eq!((row.graph_media_id, row.owner_id), (Some(17858843269216389), Some(BLUEBOTTLE_WEB)));
    assert_eq!((row.like_count, row.permalink, row.scraped_at), (Some(1300), None, at(10)));

    // Both in one batch: written as if one after the other.
    let (_pg3, db) = setup().await;
    let records = vec![
        web_media(0, &fixture("web_node_video.json"), at(10)),
        graph_media(0, &fixture("graph_media.json"), at(0)),
    ];
    assert_eq!(write(&db, "g", &mut batch(records)).await.unwrap().dead_letters(), 0);
    let row = post(&db, GRAPH_POST).await;
    assert_eq!((row.graph_media_id, row.owner_id), (Some(17858843269216389), Some(BLUEBOTTLE_GRAPH)));
    assert_eq!((row.like_count, row.permalink.is_some(), row.scraped_at), (Some(1300), true, at(10)));
}

#[tokio::test]
async fn an_owner_never_scraped_gets_a_minimal_row_that_a_later_profile_fills() {
    let (_pg, db) = setup().await;
    write(&db, "g", &mut batch(vec![graph_media(0, &fixture("graph_media.json"), at(10))])).await.unwrap();
    let minimal = profile(&db, BLUEBOTTLE_GRAPH).await;
    assert_eq!(
        (minimal.username.as_deref(), minimal.raw.as_ref(), minimal.scraped_at),
        (Some("bluebottle"), None, None)
    );
    assert_eq!(post(&db, GRAPH_POST).await.owner_id, Some(BLUEBOTTLE_GRAPH));

    // A profile scraped before the post still fills the minimal row.
    write(&db, "g", &mut batch(vec![graph_profile(0, &fixture("graph_profile.json"), at(5))])).await.unwrap();
    let full = profile(&db, BLUEBOTTLE_GRAPH).await;
    assert_eq!(
        (full.full_name.as_deref(), full.followers_count, full.scraped_at),
        (Some("Blue Bottle Coffee"), Some(267793), Some(at(5)))
    );
    assert_eq!(full.raw, Some(fixture("graph_profile.json")));

    // A later reference to the account leaves the full row alone, in another batch or in the same one.
    write(
        &db,
        "g",
        &mut batch(vec![graph_media(1, &with("graph_media.json", json!({"username": "renamed"})), at(20))]),
    )
    .await
    .unwrap();
    assert_eq!(profile(&db, BLUEBOTTLE_GRAPH).await, full);
    let records = vec![
        graph_media(2, &fixture("graph_media.json"), at(30)),
        graph_profile(1, &with("graph_profile.json", json!({"followers_count": 300000})), at(30)),
    ];
    write(&db, "g", &mut batch(records)).await.unwrap();
    assert_eq!(profile(&db, BLUEBOTTLE_GRAPH).await.followers_count, Some(300000));
}

#[tokio::test]
async fn a_replay_writes_nothing_and_emits_no_change_event() {
    let (_pg, db) = setup().await;
    let mut records = everything(at(0));
    records.push(web_media(3, &fixture("web_node_video.json"), at(0)));
    write(&db, "g", &mut batch(records.clone())).await.unwrap();
    let before = post(&db, GRAPH_POST).await;
    cdc::create_slot(&db, "replay").await.unwrap();

    write(&db, "g", &mut batch(records.clone())).await.unwrap();
    write(&db, "g", &mut batch(records.into_iter().rev().collect())).await.unwrap();
    // A newer scrape that sends what the row holds. (Not the Graph object of the post the web wrote last:
    // its URLs differ from the web's, so that scrape is a change.)
    let newer_same = vec![
        web_media(9, &fixture("web_node_video.json"), at(60)),
        web_media(10, &fixture("web_node.json"), at(60)),
        hashtag_media(9, &fixture("graph_hashtag_media.json"), at(60)),
        // The hashtag's Graph id is set once: another one later changes nothing.
        record(
            MEDIA,
            11,
            &fixture("graph_hashtag_media.json"),
            &[
                ("source", "instagram.graph.hashtag.recent_media"),
                ("instagram_hashtag", "coffee"),
                ("instagram_hashtag_id", "99"),
            ],
            at(60),
        ),
    ];
    write(&db, "g", &mut batch(newer_same)).await.unwrap();

    assert_eq!(cdc::peek_changes(&db, "replay", CDC_PUBLICATION).await.unwrap(), vec![]);
    assert_eq!(post(&db, GRAPH_POST).await, before);
    let coffee = instagram_hashtags::Entity::find_by_id("coffee").one(&db).await.unwrap().unwrap();
    assert_eq!(coffee.graph_hashtag_id, Some(17843826142012701));
    let more_likes = with("web_node_video.json", json!({"edge_media_preview_like": {"count": 1301}}));
    write(&db, "g", &mut batch(vec![web_media(12, &more_likes, at(90))])).await.unwrap();
    let changes = cdc::peek_changes(&db, "replay", CDC_PUBLICATION).await.unwrap();
    assert_eq!(changes.len(), 1, "a real change is published: {changes:?}");
    assert_eq!(changes[0].table, "instagram_posts");
}

#[tokio::test]
async fn scrapes_of_one_profile_in_a_batch_keep_the_newest_and_every_snapshot() {
    let (_pg, db) = setup().await;
    let records = vec![
        graph_profile(0, &with("graph_profile.json", json!({"followers_count": 1, "biography": "old"})), at(0)),
        graph_profile(1, &with("graph_profile.json", json!({"followers_count": 3, "biography": null})), at(30)),
        graph_profile(2, &with("graph_profile.json", json!({"followers_count": 2})), at(20)),
    ];
    assert_eq!(write(&db, "g", &mut batch(records)).await.unwrap().dead_letters(), 0);
    let row = profile(&db, BLUEBOTTLE_GRAPH).await;
    assert_eq!((row.followers_count, row.scraped_at), (Some(3), Some(at(30))));
    assert_eq!(
        row.biography.as_deref(),
        Some("Delicious coffee, delivered."),
        "the newest without one keeps the latest known"
    );
    assert_eq!(snapshots(&db, BLUEBOTTLE_GRAPH).await, [(at(0), Some(1)), (at(20), Some(2)), (at(30), Some(3))]);
}

#[tokio::test]
async fn every_unstorable_record_is_dead_lettered_with_its_reason_and_the_rest_lands() {
    let (_pg, db) = setup().await;
    let records = vec![
        graph_profile(0, &with("graph_profile.json", json!({"followers_count": -1})), at(0)), // a CHECK refuses it
        web_profile(1, &fixture("web_profile.json"), at(0)),
        record(PROFILES, 2, &fixture("web_profile.json"), &[("source", "instagram.graph.other")], at(0)),
        graph_media(0, &with("graph_media.json", json!({"permalink": "https://www.instagram.com/bluebottle/"})), at(0)),
        web_media(
            1,
            &with(
                "web_node.json",
                json!({"like_count": null, "edge_liked_by": {"count": -5}, "edge_media_preview_like": null}),
            ),
            at(0),
        ),
        hashtag_media(2, &fixture("graph_hashtag_media.json"), at(0)),
        record(MEDIA, 3, &fixture("graph_media.json"), &[], at(0)), // no source, read by its shape; no owner
        ConsumedRecord { payload: Some(b"{\"id\":\"1\"".to_vec()), ..web_media(4, &json!({}), at(0)) },
    ];
    let written = write(&db, "g", &mut batch(records)).await.unwrap();
    assert_eq!(written.dead_letters(), 5);
    assert!(written.rows_offered() > 0, "{written:?}");

    let errors = ingest_errors::Entity::find().all(&db).await.unwrap();
    let reason = |topic: &str, offset: i64| {
        errors.iter().find(|e| e.topic == topic && e.offset == offset).map(|e| e.error.clone()).unwrap_or_default()
    };
    assert!(
        reason(PROFILES, 0).contains("database refused") && reason(PROFILES, 0).contains("followers_count"),
        "{}",
        reason(PROFILES, 0)
    );
    assert!(
        reason(PROFILES, 2).contains("no mapping for source `instagram.graph.other` on topic `instagram.profiles`")
    );
    assert!(reason(MEDIA, 0).contains("is not a post's URL with a shortcode"));
    assert!(
        reason(MEDIA, 1).contains("database refused") && reason(MEDIA, 1).contains("like_count"),
        "{}",
        reason(MEDIA, 1)
    );
    assert!(reason(MEDIA, 4).contains("not valid JSON"));

    assert!(instagram_profiles::Entity::find_by_id(BLUEBOTTLE_GRAPH).one(&db).await.unwrap().is_none());
    assert_eq!(snapshots(&db, BLUEBOTTLE_GRAPH).await, [], "nothing of a refused record lands after its refusal");
    assert_eq!(profile(&db, INSTAGRAM).await.category.as_deref(), Some("Digital creator"));
    assert!(instagram_posts::Entity::find_by_id(WEB_POST).one(&db).await.unwrap().is_none());
    assert_eq!(count(&db, instagram_comments::Entity).await, 0, "the refused post's comments are left out");
    assert_eq!(post(&db, HASHTAG_POST).await.source, "instagram.graph.hashtag.top_media");
    let unknown = post(&db, GRAPH_POST).await;
    assert_eq!(
        (unknown.source.as_str(), unknown.owner_id, unknown.graph_media_id),
        ("unknown", None, Some(17858843269216389))
    );
}
