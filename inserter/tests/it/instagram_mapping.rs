//! The Instagram mappings on real-format objects: a Graph API profile and media object (its permalink's
//! shortcode decoded to the canonical media id, its owner and hashtag from headers), a web profile and a
//! web timeline node with comments, a threaded reply and tagged users, replayed records told apart by their
//! shape, and a reason for every payload that cannot become rows.

use chrono::{DateTime, TimeZone, Utc};
use inserter::mapping::DecodeError;
use inserter::mapping::instagram::{Context, InstagramRows, Kind, decode_shortcode, encode_shortcode, map};
use serde_json::{Value, json};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/instagram/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

fn scraped_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 3, 9, 0, 0).unwrap()
}

fn context(source: &str) -> Context<'_> {
    Context::new(source, scraped_at())
}

fn business_media() -> Context<'static> {
    Context { owner_id: Some("17841405309211844"), ..context("instagram.graph.business_discovery") }
}

fn hashtag_media() -> Context<'static> {
    Context {
        hashtag: Some("Coffee"),
        hashtag_id: Some("17843826142012701"),
        ..context("instagram.graph.hashtag.recent_media")
    }
}

fn mapped(kind: Kind, name: &str, context: &Context) -> InstagramRows {
    map(kind, &fixture(name), context).unwrap()
}

fn error(kind: Kind, payload: &Value, context: &Context) -> String {
    map(kind, payload.to_string().as_bytes(), context).unwrap_err().to_string()
}

/// A hashtag's name and Graph id.
type Tag = (String, Option<i64>);

/// The hashtag rows and the links as (media id, name).
fn hashtags(rows: &InstagramRows) -> (Vec<Tag>, Vec<(i64, String)>) {
    let tags = rows.hashtags.iter().map(|h| (h.name.as_ref().clone(), *h.graph_hashtag_id.as_ref())).collect();
    let links = rows.post_hashtags.iter().map(|l| (*l.media_id.as_ref(), l.hashtag.as_ref().clone())).collect();
    (tags, links)
}

fn referenced(rows: &InstagramRows) -> Vec<(i64, Option<String>)> {
    rows.referenced_profiles.iter().map(|p| (*p.user_id.as_ref(), p.username.as_ref().clone())).collect()
}

const GRAPH_POST: i64 = 3195531937028616383; // CxYz123AbC_

#[test]
fn shortcodes_decode_to_media_ids_and_back() {
    assert_eq!(decode_shortcode("B"), Ok(1));
    assert_eq!(decode_shortcode("BA"), Ok(64));
    assert_eq!(decode_shortcode("CxYz123AbC_"), Ok(GRAPH_POST));
    // A pair often quoted is BQ0ikbSh-Fe <-> 1449367366203646366; the digits say otherwise.
    assert_eq!(decode_shortcode("BQ0ikbSh-Fe"), Ok(1455940616331977054));
    assert_eq!(encode_shortcode(1455940616331977054), "BQ0ikbSh-Fe");
    assert_eq!(encode_shortcode(GRAPH_POST), "CxYz123AbC_");
}

#[test]
fn a_graph_profile_fills_its_columns_and_one_snapshot() {
    let rows = mapped(Kind::Profile, "graph_profile.json", &context("instagram.graph.business_discovery"));
    let [profile] = &rows.profiles[..] else { panic!("one profile: {:?}", rows.profiles) };
    assert_eq!(profile.user_id.as_ref(), &17841405309211844);
    assert_eq!(profile.username.as_ref().as_deref(), Some("bluebottle"));
    assert_eq!(profile.full_name.as_ref().as_deref(), Some("Blue Bottle Coffee"));
    assert_eq!(profile.biography.as_ref().as_deref(), Some("Delicious coffee, delivered."));
    assert_eq!(profile.external_url.as_ref().as_deref(), Some("http://bluebottlecoffee.com/"));
    assert!(profile.profile_pic_url.as_ref().as_deref().unwrap().ends_with("bluebottle.jpg?_nc_cat=1"));
    assert_eq!((profile.category.as_ref(), profile.is_private.as_ref()), (&None, &None), "the Graph API does not say");
    let counts = [&profile.followers_count, &profile.follows_count, &profile.media_count].map(|c| *c.as_ref());
    assert_eq!(counts, [Some(267793), Some(1130), Some(1205)]);
    assert_eq!(profile.source.as_ref().as_deref(), Some("instagram.graph.business_discovery"));
    assert_eq!(
        profile.raw.as_ref().as_ref(),
        Some(&fixture_json("graph_profile.json")),
        "raw is the object, media page included"
    );
    assert_eq!(profile.scraped_at.as_ref(), &Some(scraped_at()));
    assert!(profile.ingested_at.is_not_set());

    let [snapshot] = &rows.snapshots[..] else { panic!("one snapshot") };
    assert_eq!((snapshot.user_id.as_ref(), snapshot.scraped_at.as_ref()), (&17841405309211844, &scraped_at()));
    let counts = [&snapshot.followers_count, &snapshot.follows_count, &snapshot.media_count].map(|c| *c.as_ref());
    assert_eq!(counts, [Some(267793), Some(1130), Some(1205)]);
    assert!(
        rows.posts.is_empty() && rows.referenced_profiles.is_empty(),
        "the media page arrives as records of its own"
    );
}

#[test]
fn a_graph_profile_naming_its_web_id_is_keyed_by_it_with_the_graph_id_beside_it() {
    let rows = mapped(Kind::Profile, "graph_profile_ig_id.json", &context("instagram.graph.business_discovery"));
    let [profile] = &rows.profiles[..] else { panic!("one profile: {:?}", rows.profiles) };
    assert_eq!((profile.user_id.as_ref(), profile.graph_user_id.as_ref()), (&1620131, &Some(17841405309211844)));
    let [snapshot] = &rows.snapshots[..] else { panic!("one snapshot") };
    assert_eq!(snapshot.user_id.as_ref(), &1620131, "the account's history is under its web id");

    let rows = mapped(Kind::Profile, "graph_profile.json", &context("instagram.graph.business_discovery"));
    assert_eq!(
        (rows.profiles[0].user_id.as_ref(), rows.profiles[0].graph_user_id.as_ref()),
        (&17841405309211844, &None),
        "without ig_id (scraped before it was asked for): keyed by the Graph id, as before"
    );
    let rows = mapped(Kind::Profile, "web_profile.json", &context("instagram.web.profile"));
    assert_eq!(rows.profiles[0].graph_user_id.as_ref(), &None);
}

#[test]
fn a_graph_media_object_is_keyed_by_its_permalinks_shortcode() {
    let rows = mapped(Kind::Media, "graph_media.json", &business_media());
    let [post] = &rows.posts[..] else { panic!("one post") };
    assert_eq!(post.media_id.as_ref(), &GRAPH_POST);
    assert_eq!(post.shortcode.as_ref(), "CxYz123AbC_");
    assert_eq!(post.graph_media_id.as_ref(), &Some(17858843269216389));
    assert_eq!(post.owner_id.as_ref(), &Some(17841405309211844), "from the instagram_owner_id header");
    assert_eq!(post.media_type.as_ref().as_deref(), Some("IMAGE"));
    assert_eq!(post.caption.as_ref().as_deref(), Some("Sunday #Coffee at #BlueBottle"));
    assert_eq!(post.permalink.as_ref().as_deref(), Some("https://www.instagram.com/p/CxYz123AbC_/"));
    assert!(post.media_url.as_ref().as_deref().unwrap().ends_with("cxyz.jpg"));
    assert_eq!(post.taken_at.as_ref(), &Some(Utc.with_ymd_and_hms(2025, 6, 1, 14, 3, 11).unwrap()));
    assert_eq!((post.like_count.as_ref(), post.comments_count.as_ref()), (&Some(1234), &Some(56)));
    assert_eq!(post.video_view_count.as_ref(), &None);
    assert_eq!(post.source.as_ref(), "instagram.graph.business_discovery");
    assert_eq!(post.raw.as_ref(), &fixture_json("graph_media.json"));
    assert_eq!(referenced(&rows), [(17841405309211844, Some("bluebottle".into()))], "the owner, minimal");
    let (tags, links) = hashtags(&rows);
    assert_eq!(tags, [("coffee".into(), None), ("bluebottle".into(), None)]);
    assert_eq!(links, [(GRAPH_POST, "coffee".into()), (GRAPH_POST, "bluebottle".into())]);
    assert!(rows.profiles.is_empty() && rows.comments.is_empty() && rows.tagged_users.is_empty());
}

#[test]
fn hashtag_media_have_no_owner_and_carry_the_hashtag_searched() {
    let rows = mapped(Kind::Media, "graph_hashtag_media.json", &hashtag_media());
    let [post] = &rows.posts[..] else { panic!("one post") };
    assert_eq!(post.media_id.as_ref(), &decode_shortcode("DAbCdEfGhIj").unwrap(), "a /reel/ permalink");
    assert_eq!(post.owner_id.as_ref(), &None);
    assert_eq!(post.media_url.as_ref(), &None, "not sent for this video");
    assert_eq!(post.source.as_ref(), "instagram.graph.hashtag.recent_media");
    assert!(rows.referenced_profiles.is_empty());
    let (tags, links) = hashtags(&rows);
    assert_eq!(tags, [("coffeetime".into(), None), ("coffee".into(), Some(17843826142012701))]);
    assert_eq!(links.len(), 2, "{links:?}");

    let elsewhere = Context { hashtag: Some("#Latte"), ..hashtag_media() };
    let (tags, _) = hashtags(&mapped(Kind::Media, "graph_hashtag_media.json", &elsewhere));
    assert_eq!(tags.last(), Some(&("latte".into(), Some(17843826142012701))), "a tag not in the caption is linked too");
}

#[test]
fn a_web_profile_fills_every_column_and_one_snapshot() {
    let rows = mapped(Kind::Profile, "web_profile.json", &context("instagram.web.profile"));
    let [profile] = &rows.profiles[..] else { panic!("one profile") };
    assert_eq!(profile.user_id.as_ref(), &25025320);
    assert_eq!(profile.username.as_ref().as_deref(), Some("instagram"));
    assert_eq!(profile.full_name.as_ref().as_deref(), Some("Instagram"));
    assert_eq!(profile.biography.as_ref().as_deref(), Some("Discover what's new on Instagram 🔎✨"));
    assert_eq!(profile.external_url.as_ref().as_deref(), Some("https://help.instagram.com/"));
    assert!(profile.profile_pic_url.as_ref().as_deref().unwrap().ends_with("s320.jpg"), "the HD picture");
    assert_eq!(profile.category.as_ref().as_deref(), Some("Digital creator"));
    let flags = [&profile.is_private, &profile.is_verified, &profile.is_business].map(|f| *f.as_ref());
    assert_eq!(flags, [Some(false), Some(true), Some(true)]);
    let counts = [&profile.followers_count, &profile.follows_count, &profile.media_count].map(|c| *c.as_ref());
    assert_eq!(counts, [Some(676000000), Some(150), Some(7890)]);
    assert_eq!(profile.raw.as_ref().as_ref(), Some(&fixture_json("web_profile.json")));
    assert_eq!(rows.snapshots.len(), 1);
    assert_eq!(rows.snapshots[0].followers_count.as_ref(), &Some(676000000));
    assert_eq!(rows.snapshots[0].source.as_ref(), "instagram.web.profile");
}

#[test]
fn a_web_node_gives_its_post_comments_replies_and_tagged_users() {
    let rows = mapped(Kind::Media, "web_node.json", &context("instagram.web.profile"));
    let [post] = &rows.posts[..] else { panic!("one post") };
    assert_eq!(post.media_id.as_ref(), &3412160342377498722);
    assert_eq!(post.shortcode.as_ref(), "C9abcDEFghi");
    assert_eq!((post.graph_media_id.as_ref(), post.permalink.as_ref()), (&None, &None), "the web does not give them");
    assert_eq!(post.owner_id.as_ref(), &Some(25025320));
    assert_eq!(post.media_type.as_ref().as_deref(), Some("IMAGE"), "GraphImage, spelt as the Graph API does");
    assert_eq!(post.caption.as_ref().as_deref(), Some("Summer is here ☀️ #Summer #InstagramStories\nPhoto by @friend"));
    assert!(post.media_url.as_ref().as_deref().unwrap().ends_with("c9abc_1080.jpg"));
    assert!(post.thumbnail_url.as_ref().as_deref().unwrap().ends_with("c9abc_640.jpg"));
    assert_eq!(post.taken_at.as_ref(), &Some(Utc.timestamp_opt(1717250591, 0).unwrap()));
    assert_eq!((post.like_count.as_ref(), post.comments_count.as_ref()), (&Some(100), &Some(20)));
    assert_eq!(post.video_view_count.as_ref(), &None);
    assert_eq!(post.raw.as_ref(), &fixture_json("web_node.json"));

    let comments: Vec<_> = rows
        .comments
        .iter()
        .map(|c| {
            let author = (*c.author_id.as_ref(), c.author_username.as_ref().clone());
            (
                *c.comment_id.as_ref(),
                *c.parent_comment_id.as_ref(),
                author,
                c.text.as_ref().clone(),
                *c.like_count.as_ref(),
            )
        })
        .collect();
    assert_eq!(
        comments,
        [
            (18012345678901234, None, (Some(555), Some("fan".into())), "nice".into(), Some(2)),
            (18012345678901236, None, (Some(556), Some("another_fan".into())), "🔥🔥".into(), None),
            (
                18012345678901235,
                Some(18012345678901234),
                (Some(25025320), Some("instagram".into())),
                "thank you!".into(),
                Some(1)
            ),
        ],
        "each comment once (the preview repeats one), the reply pointing at its parent"
    );
    let first = &rows.comments[0];
    assert_eq!(first.media_id.as_ref(), &3412160342377498722);
    assert_eq!(first.created_at.as_ref(), &Some(Utc.timestamp_opt(1717250600, 0).unwrap()));
    assert_eq!(first.raw.as_ref(), &fixture_json("web_node.json")["edge_media_to_comment"]["edges"][0]["node"]);
    assert_eq!(first.source.as_ref(), "instagram.web.profile");

    let tagged: Vec<_> = rows.tagged_users.iter().map(|t| (*t.media_id.as_ref(), *t.user_id.as_ref())).collect();
    assert_eq!(tagged, [(3412160342377498722, 777)], "a tagged user without an id is skipped");
    let mut accounts = referenced(&rows);
    accounts.sort();
    accounts.dedup();
    let expected = [(555, "fan"), (556, "another_fan"), (777, "friend"), (25025320, "instagram")];
    assert_eq!(accounts, expected.map(|(id, name)| (id, Some(name.to_owned()))));
    let (tags, _) = hashtags(&rows);
    assert_eq!(tags, [("summer".into(), None), ("instagramstories".into(), None)]);
}

#[test]
fn a_web_video_node_and_an_id_its_shortcode_does_not_encode() {
    let rows = mapped(Kind::Media, "web_node_video.json", &context("instagram.web.profile"));
    let post = &rows.posts[0];
    assert_eq!(post.media_id.as_ref(), &GRAPH_POST, "the same post as the Graph object");
    assert_eq!(post.media_type.as_ref().as_deref(), Some("VIDEO"));
    assert!(post.media_url.as_ref().as_deref().unwrap().ends_with("cxyz.mp4"), "a video's URL is the video");
    assert_eq!(post.like_count.as_ref(), &Some(1300), "from the like preview when edge_liked_by is absent");
    assert_eq!((post.comments_count.as_ref(), post.video_view_count.as_ref()), (&Some(60), &Some(5000)));
    assert!(rows.comments.is_empty() && rows.tagged_users.is_empty());

    let mut node = fixture_json("web_node_video.json");
    node["id"] = json!("3412345678901234567");
    let rows = map(Kind::Media, node.to_string().as_bytes(), &context("instagram.web.profile")).unwrap();
    assert_eq!(rows.posts[0].media_id.as_ref(), &3412345678901234567, "the node's id wins");
    assert_eq!(rows.posts[0].shortcode.as_ref(), "CxYz123AbC_");
}

#[test]
fn replayed_records_are_told_apart_by_their_shape() {
    for source in ["replay", "unknown"] {
        let graph = mapped(Kind::Profile, "graph_profile.json", &context(source));
        assert_eq!(graph.profiles[0].full_name.as_ref().as_deref(), Some("Blue Bottle Coffee"));
        assert_eq!(graph.profiles[0].source.as_ref().as_deref(), Some(source));
        let web = mapped(Kind::Profile, "web_profile.json", &context(source));
        assert_eq!(web.profiles[0].category.as_ref().as_deref(), Some("Digital creator"));
        let graph = mapped(Kind::Media, "graph_media.json", &context(source));
        assert_eq!(graph.posts[0].graph_media_id.as_ref(), &Some(17858843269216389));
        let web = mapped(Kind::Media, "web_node.json", &context(source));
        assert_eq!(web.comments.len(), 3);
    }
    let replayed = Context { owner_id: Some("17841405309211844"), ..context("replay") };
    let rows = mapped(Kind::Media, "graph_media.json", &replayed);
    assert_eq!(rows.posts[0].owner_id.as_ref(), &Some(17841405309211844), "a replay's headers are read too");
}

#[test]
fn every_payload_that_cannot_become_rows_has_its_reason() {
    let web = context("instagram.web.profile");
    let graph = business_media();
    let reason = |kind: Kind, payload: &[u8], context: &Context| map(kind, payload, context).unwrap_err().to_string();
    assert!(reason(Kind::Media, b"Hello, Kafka", &graph).contains("not valid JSON"));
    assert_eq!(map(Kind::Media, b"", &graph).unwrap_err(), DecodeError::Empty);
    assert!(reason(Kind::Profile, b"[1]", &web).contains("not an object"));

    let without = |name: &str, field: &str| {
        let mut value = fixture_json(name);
        value.as_object_mut().unwrap().remove(field);
        value
    };
    let with = |name: &str, field: &str, new: Value| {
        let mut value = fixture_json(name);
        value[field] = new;
        value
    };
    assert!(error(Kind::Profile, &without("graph_profile.json", "id"), &graph).contains("missing field `id`"));
    assert!(
        error(Kind::Profile, &with("graph_profile_ig_id.json", "ig_id", json!(0)), &graph).contains("positive 64-bit")
    );
    assert!(
        error(Kind::Profile, &with("web_profile.json", "id", json!("instagram")), &web).contains("positive 64-bit")
    );
    assert!(error(Kind::Media, &with("graph_media.json", "id", json!("-1")), &graph).contains("positive 64-bit"));
    let bad_time = error(Kind::Media, &with("graph_media.json", "timestamp", json!("2025-06-01 14:03")), &graph);
    assert_eq!(bad_time, "timestamp `2025-06-01 14:03` is not a time like 2025-06-01T14:03:11+0000");
    let far = error(Kind::Media, &with("web_node.json", "taken_at_timestamp", json!(i64::MAX)), &web);
    assert!(far.starts_with("taken_at_timestamp `9223372036854775807` is not a time in Unix seconds"), "{far}");
    assert!(
        error(Kind::Media, &without("graph_media.json", "permalink"), &graph).contains("missing field `permalink`")
    );
    let profile_link = error(
        Kind::Media,
        &with("graph_media.json", "permalink", json!("https://www.instagram.com/bluebottle/")),
        &graph,
    );
    assert!(profile_link.contains("is not a post's URL with a shortcode"), "{profile_link}");
    let long = error(
        Kind::Media,
        &with("graph_media.json", "permalink", json!("https://www.instagram.com/p/CxYz123AbC_xyz/")),
        &graph,
    );
    assert!(long.contains("longer than 11 characters"), "{long}");
    let overflow = error(
        Kind::Media,
        &with("graph_media.json", "permalink", json!("https://www.instagram.com/p/_xYz123AbC_/")),
        &graph,
    );
    assert!(overflow.contains("beyond a 64-bit media id"), "{overflow}");
    let bad_char = error(
        Kind::Media,
        &with("graph_media.json", "permalink", json!("https://www.instagram.com/p/Cx%20z/")),
        &graph,
    );
    assert!(bad_char.contains("`%`, which is not in the alphabet"), "{bad_char}");
    assert!(
        error(Kind::Media, &with("web_node.json", "shortcode", json!("C9a bc")), &web).contains("not in the alphabet")
    );
    assert!(error(Kind::Media, &without("web_node.json", "shortcode"), &web).contains("missing field `shortcode`"));

    let no_text = {
        let mut node = fixture_json("web_node.json");
        node["edge_media_to_comment"]["edges"][1]["node"].as_object_mut().unwrap().remove("text");
        node
    };
    let comment = error(Kind::Media, &no_text, &web);
    assert!(comment.contains("edge_media_to_comment.edges[1].node: missing field `text`"), "{comment}");

    let owner = Context { owner_id: Some("bluebottle"), ..business_media() };
    let header = error(Kind::Media, &fixture_json("graph_media.json"), &owner);
    assert_eq!(header, "header instagram_owner_id `bluebottle` is not a positive 64-bit id");
    let tag = Context { hashtag: Some("two words"), ..hashtag_media() };
    assert!(error(Kind::Media, &fixture_json("graph_hashtag_media.json"), &tag).contains("is not one hashtag name"));
    let tag_id = Context { hashtag_id: Some("x"), ..hashtag_media() };
    assert!(error(Kind::Media, &fixture_json("graph_hashtag_media.json"), &tag_id).contains("instagram_hashtag_id"));

    let neither = json!({"id": "1", "username": "someone"});
    assert!(error(Kind::Profile, &neither, &context("replay")).starts_with("cannot tell the payload's format"));
    assert!(error(Kind::Media, &neither, &context("unknown")).contains("`shortcode` and `taken_at_timestamp`"));
    let nul = with("graph_media.json", "caption", json!("a\u{0}b"));
    assert!(error(Kind::Media, &nul, &graph).contains("NUL character"), "NUL is refused, as on the other topics");
}
