//! The Kafka contract, held by the two binaries' own code: every scraper source, built from flags as the
//! scraper binary builds it, reads payloads whose ids cover the id rule's edge cases (from a local server that
//! answers in that API's wire format, or from a replay file) and produces them into a real broker; every
//! record on the data topics is then decoded by the inserter's mappings, routed by the inserter's own topic
//! flags. It proves that the inserter can store every record the scraper accepted (no dead letter), that each
//! record is keyed by the contract's canonical id, that every payload with a valid id reaches its data topic,
//! and that every payload the id rule refuses is on the rejects topic with a reason naming the id's fault.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::contract::header;
use ::contract::source;
use ::contract::topic::{INSTAGRAM_MEDIA, INSTAGRAM_PROFILES, MASTODON_STATUSES, REJECTS, TWEETS};
use clap::Parser;
use inserter::batch::{Batch, Routes};
use inserter::mapping::instagram::encode_shortcode;
use inserter::record::ConsumedRecord;
use rdkafka::consumer::{Consumer, StreamConsumer};
use scraper::kafka_sink::KafkaSink;
use scraper::metrics::Metrics;
use scraper::run::{self, Options};
use serde_json::Value;
use testkit::http::{HttpServer, Part, Reply};
use testkit::{Broker, unique_name};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "contract-test-token";
/// The app's own Instagram account, which business discovery and hashtag search ask through.
const APP_USER: &str = "17841400000000001";
const HASHTAG: &str = "coffee";
const HASHTAG_ID: &str = "17843853986012965";
/// The Instagram account whose media carry the edge-case ids; its own id is an ordinary one.
const MEDIA_OWNER: &str = "media_owner";
const MEDIA_OWNER_ID: &str = "17841405309211844";
/// The markers of its profiles, which carry its media too.
const GRAPH_OWNER: &str = "[graph-owner]";
const WEB_OWNER: &str = "[web-owner]";
/// Long enough for every step on a slow machine; a hang fails the test instead of blocking it.
const PATIENCE: Duration = Duration::from_secs(20);

/// An id as a payload carries it, and the record key the contract gives it.
struct Case {
    /// The JSON text of the payload's `id`; `None`: the payload has no `id` at all.
    id: Option<String>,
    /// `None`: the id rule refuses it, so the scraper must reject the payload.
    key: Option<&'static str>,
}

fn cases() -> Vec<Case> {
    let case = |id: &str, key| Case { id: Some(id.to_owned()), key };
    vec![
        // Ids as the APIs send them.
        case(r#""1460323737035677698""#, Some("1460323737035677698")),
        case(r#""17858843269216389""#, Some("17858843269216389")),
        // The edges of the rule: 1 to 2^63 - 1, in digits, leading zeros read.
        case(r#""1""#, Some("1")),
        case(r#""9223372036854775807""#, Some("9223372036854775807")),
        case(r#""007""#, Some("7")),
        case("5", Some("5")),
        case("9223372036854775807", Some("9223372036854775807")),
        // Beyond them.
        case(r#""9223372036854775808""#, None),
        case(r#""18446744073709551615""#, None),
        case(r#""0""#, None),
        case(r#""+5""#, None),
        case(r#"" 5""#, None),
        case(r#""-1""#, None),
        case(r#""1e3""#, None),
        case(r#""5.0""#, None),
        case(r#""""#, None),
        case(&format!(r#""{}""#, "9".repeat(5000)), None),
        case("0", None),
        case("-1", None),
        case("9223372036854775808", None),
        // Beyond u64: serde_json reads it as a float.
        case("18446744073709551616", None),
        case("5.0", None),
        case("null", None),
        Case { id: None, key: None },
    ]
}

impl Case {
    /// The payload's `id` member with the comma that follows it, to open an object with; empty for no id.
    fn member(&self) -> String {
        self.id.as_ref().map(|id| format!(r#""id":{id},"#)).unwrap_or_default()
    }

    fn value(&self) -> Option<Value> {
        self.id.as_ref().map(|id| serde_json::from_str(id).expect("each case's id is JSON"))
    }
}

/// One payload the test sends, and where the contract says it must end up.
struct Expected {
    /// Unique text inside the payload, by which its record is found.
    marker: String,
    /// The `source` header of its record.
    source: &'static str,
    /// The data topic it goes to when its id is valid.
    topic: String,
    id: Option<Value>,
    key: Option<&'static str>,
    /// The marker of the profile whose record carries this media object too (its page of media).
    carried_by: Option<&'static str>,
}

/// The topic names of this test's run, one flag each for both binaries.
struct Topics {
    tweets: String,
    statuses: String,
    profiles: String,
    media: String,
    rejects: String,
}

impl Topics {
    fn unique() -> Self {
        Self {
            tweets: unique_name("tweets"),
            statuses: unique_name("statuses"),
            profiles: unique_name("profiles"),
            media: unique_name("media"),
            rejects: unique_name("rejects"),
        }
    }

    /// The `--topic-*` flags of the data topics (the inserter reads no others).
    fn data_flags(&self) -> Vec<String> {
        [
            (&TWEETS, &self.tweets),
            (&MASTODON_STATUSES, &self.statuses),
            (&INSTAGRAM_PROFILES, &self.profiles),
            (&INSTAGRAM_MEDIA, &self.media),
        ]
        .into_iter()
        .flat_map(|(topic, name)| [format!("--{}", topic.flag), name.clone()])
        .collect()
    }
}

// The payloads, each in its API's wire format, holding the case's `id` member (or none) and a marker.

fn x_post(marker: &str, id: &str) -> String {
    format!(
        r#"{{"data":{{{id}"text":"post {marker} \u00e9","author_id":"2244994945","created_at":"2025-06-01T14:03:11.000Z","edit_history_tweet_ids":["1460323737035677698"]}},"includes":{{"users":[{{"id":"2244994945","username":"XDevelopers","name":"Developers"}}]}}}}"#
    )
}

fn mastodon_status(marker: &str, id: &str) -> String {
    format!(
        r#"{{{id}"created_at":"2025-01-01T00:00:00.000Z","in_reply_to_id":null,"in_reply_to_account_id":null,"sensitive":false,"spoiler_text":"","visibility":"public","language":"en","uri":"https://mastodon.example/users/alice/statuses/113512950000000001","url":"https://mastodon.example/@alice/113512950000000001","replies_count":0,"reblogs_count":0,"favourites_count":1,"content":"<p>status {marker}</p>","reblog":null,"account":{{"id":"109999999999999999","username":"alice","acct":"alice"}},"media_attachments":[],"mentions":[],"tags":[],"emojis":[],"card":null,"poll":null}}"#
    )
}

/// A `business_discovery` object with its first (and only) media page.
fn graph_profile(marker: &str, id: &str, username: &str, media: &[String]) -> String {
    format!(
        r#"{{{id}"username":"{username}","name":"Account {marker}","biography":"profile {marker}","followers_count":1000,"follows_count":10,"media_count":{},"media":{{"data":[{}],"paging":{{"cursors":{{"before":"QVFIUb"}}}}}}}}"#,
        media.len(),
        media.join(",")
    )
}

/// A Graph media object; hashtag search gives no `username`. `n` makes its permalink's shortcode its own.
fn graph_media(marker: &str, id: &str, n: i64, username: Option<&str>) -> String {
    let username = username.map(|name| format!(r#","username":"{name}""#)).unwrap_or_default();
    format!(
        r#"{{{id}"caption":"post {marker} #Coffee","media_type":"IMAGE","media_url":"https://cdn.example/{n}.jpg","permalink":"https://www.instagram.com/p/{}/","timestamp":"2025-06-03T14:03:11+0000","like_count":3,"comments_count":1{username}}}"#,
        encode_shortcode(n)
    )
}

/// The web endpoint's `data.user`, with its timeline's first page.
fn web_user(marker: &str, id: &str, username: &str, nodes: &[String]) -> String {
    let edges: Vec<String> = nodes.iter().map(|node| format!(r#"{{"node":{node}}}"#)).collect();
    format!(
        r#"{{{id}"username":"{username}","full_name":"Account {marker}","biography":"profile {marker}","is_private":false,"is_verified":false,"is_business_account":true,"edge_followed_by":{{"count":100}},"edge_follow":{{"count":10}},"edge_owner_to_timeline_media":{{"count":{},"page_info":{{"has_next_page":false,"end_cursor":null}},"edges":[{}]}}}}"#,
        nodes.len(),
        edges.join(",")
    )
}

fn web_node(marker: &str, id: &str, n: i64) -> String {
    format!(
        r#"{{"__typename":"GraphImage",{id}"shortcode":"{}","display_url":"https://cdn.example/{n}.jpg","is_video":false,"taken_at_timestamp":1717250591,"owner":{{"id":"{MEDIA_OWNER_ID}","username":"{MEDIA_OWNER}"}},"edge_media_to_caption":{{"edges":[{{"node":{{"text":"post {marker} #space"}}}}]}},"edge_liked_by":{{"count":5}},"edge_media_preview_like":{{"count":5}},"edge_media_to_comment":{{"count":0,"edges":[]}}}}"#,
        encode_shortcode(n)
    )
}

/// What the local server answers: each API's replies, built once.
#[derive(Default)]
struct Script {
    x_stream: String,
    sse_stream: String,
    /// By username: the business discovery answer.
    discovery: HashMap<String, String>,
    hashtag_media: String,
    /// By username: the web profile answer.
    web_profile: HashMap<String, String>,
}

/// Builds every payload and what must become of it, and the replay file's contents.
fn payloads(topics: &Topics) -> (Script, String, Vec<Expected>) {
    let cases = cases();
    let mut script = Script::default();
    let mut expected = Vec::new();
    let mut expect = |marker: String, source: &'static str, topic: &str, case: &Case, carried_by| {
        let (topic, id, key) = (topic.to_owned(), case.value(), case.key);
        expected.push(Expected { marker, source, topic, id, key, carried_by });
    };
    let marker = |what: &str, i: usize| format!("[{what}-{i:02}]");

    let mut lines = Vec::new();
    let mut replayed = Vec::new();
    let mut events = String::new();
    let (mut discovered, mut tagged, mut nodes) = (Vec::new(), Vec::new(), Vec::new());
    for (i, case) in cases.iter().enumerate() {
        let (id, n) = (case.member(), 3_100_000_000_000_000_000 + i as i64);
        lines.push(x_post(&marker("x", i), &id));
        expect(marker("x", i), source::X_SAMPLE, &topics.tweets, case, None);
        replayed.push(x_post(&marker("replay", i), &id));
        expect(marker("replay", i), source::REPLAY, &topics.tweets, case, None);
        events.push_str(&format!("event: update\ndata: {}\n\n", mastodon_status(&marker("sse", i), &id)));
        expect(marker("sse", i), source::SSE_DEFAULT, &topics.statuses, case, None);
        discovered.push(graph_media(&marker("discovered", i), &id, n, Some(MEDIA_OWNER)));
        expect(marker("discovered", i), source::INSTAGRAM_BUSINESS_DISCOVERY, &topics.media, case, Some(GRAPH_OWNER));
        tagged.push(graph_media(&marker("tagged", i), &id, n + 100, None));
        expect(marker("tagged", i), source::INSTAGRAM_HASHTAG_RECENT, &topics.media, case, None);
        nodes.push(web_node(&marker("node", i), &id, n + 200));
        expect(marker("node", i), source::INSTAGRAM_WEB_PROFILE, &topics.media, case, Some(WEB_OWNER));

        // A profile of each case's id: an account of its own, without media, since the Graph source emits no
        // media of a profile it cannot key (they stay inside the profile's reject).
        let username = format!("id_case_{i:02}");
        let profile = graph_profile(&marker("graph-profile", i), &id, &username, &[]);
        script.discovery.insert(username.clone(), format!(r#"{{"business_discovery":{profile},"id":"{APP_USER}"}}"#));
        expect(marker("graph-profile", i), source::INSTAGRAM_BUSINESS_DISCOVERY, &topics.profiles, case, None);
        let user = web_user(&marker("web-profile", i), &id, &username, &[]);
        script.web_profile.insert(username, format!(r#"{{"data":{{"user":{user}}},"status":"ok"}}"#));
        expect(marker("web-profile", i), source::INSTAGRAM_WEB_PROFILE, &topics.profiles, case, None);
    }
    let owner = Case { id: Some(format!(r#""{MEDIA_OWNER_ID}""#)), key: Some(MEDIA_OWNER_ID) };
    let profile = graph_profile(GRAPH_OWNER, &owner.member(), MEDIA_OWNER, &discovered);
    script.discovery.insert(MEDIA_OWNER.into(), format!(r#"{{"business_discovery":{profile},"id":"{APP_USER}"}}"#));
    expect(GRAPH_OWNER.into(), source::INSTAGRAM_BUSINESS_DISCOVERY, &topics.profiles, &owner, None);
    let user = web_user(WEB_OWNER, &owner.member(), MEDIA_OWNER, &nodes);
    script.web_profile.insert(MEDIA_OWNER.into(), format!(r#"{{"data":{{"user":{user}}},"status":"ok"}}"#));
    expect(WEB_OWNER.into(), source::INSTAGRAM_WEB_PROFILE, &topics.profiles, &owner, None);

    script.x_stream = lines.iter().map(|line| format!("{line}\r\n")).collect();
    script.sse_stream = events;
    script.hashtag_media = format!(r#"{{"data":[{}],"paging":{{"cursors":{{"after":"QVFIUa"}}}}}}"#, tagged.join(","));
    (script, replayed.join("\n"), expected)
}

/// Answers as X's sample stream, Mastodon's streaming API, the Graph API and Instagram's web endpoint do. The
/// streams send their data once, then keep the connection open, as a quiet stream does.
async fn serve(script: Script) -> HttpServer {
    let (mut x_sent, mut sse_sent) = (false, false);
    HttpServer::with(move |request| {
        let path = request.path();
        match path {
            "/2/tweets/sample/stream" if !std::mem::replace(&mut x_sent, true) => {
                Reply::stream(vec![Part::Chunk(script.x_stream.clone().into_bytes()), Part::Hang])
            }
            "/api/v1/streaming/public" if !std::mem::replace(&mut sse_sent, true) => {
                let mut reply = Reply::stream(vec![Part::Chunk(script.sse_stream.clone().into_bytes()), Part::Hang]);
                reply.headers.retain(|(name, _)| name != "content-type");
                reply.header("content-type", "text/event-stream")
            }
            "/2/tweets/sample/stream" | "/api/v1/streaming/public" => Reply::stream(vec![Part::Hang]),
            "/api/v1/users/web_profile_info/" => {
                match request.query("username").and_then(|name| script.web_profile.get(&name)) {
                    Some(body) => Reply::json(200, body),
                    None => Reply::json(404, r#"{"message":"User not found","status":"fail"}"#),
                }
            }
            "/v25.0/ig_hashtag_search" if request.query("q").as_deref() == Some(HASHTAG) => {
                Reply::json(200, &format!(r#"{{"data":[{{"id":"{HASHTAG_ID}"}}]}}"#))
            }
            _ if path == format!("/v25.0/{HASHTAG_ID}/recent_media") => Reply::json(200, &script.hashtag_media),
            _ if path == format!("/v25.0/{APP_USER}") => {
                // `business_discovery.username(NAME){fields}`
                let fields = request.query("fields").unwrap_or_default();
                let name = fields.split_once("username(").and_then(|(_, rest)| rest.split_once(')')).map(|n| n.0);
                match name.and_then(|name| script.discovery.get(name)) {
                    Some(body) => Reply::json(200, body),
                    None => Reply::json(
                        400,
                        r#"{"error":{"message":"Invalid user id","type":"OAuthException","code":110,"error_subcode":2207013,"fbtrace_id":"A"}}"#,
                    ),
                }
            }
            _ => Reply::json(404, r#"{"message":"unexpected request","status":"fail"}"#),
        }
    })
    .await
    .unwrap()
}

/// Reads every topic from the start until `expected` records arrived (then a moment more, to catch extras).
async fn consume(broker: &Broker, topics: &[&str], expected: usize) -> Vec<ConsumedRecord> {
    let consumer: StreamConsumer = common::kafka::client_config(&broker.bootstrap_servers(), [])
        .set("group.id", unique_name("contract"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(topics).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut records = Vec::new();
    loop {
        let wait = if records.len() >= expected {
            Duration::from_millis(300)
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        match tokio::time::timeout(wait, consumer.recv()).await {
            Ok(Ok(message)) => records.push(inserter::consumer::detach(&message)),
            Ok(Err(e)) => panic!("consume: {e}"),
            Err(_) => return records,
        }
    }
}

/// The id a record's payload carries, where its format keeps it.
fn payload_id(record: &ConsumedRecord, tweets: &str) -> Value {
    let payload: Value = serde_json::from_slice(record.payload.as_deref().unwrap_or_default()).unwrap();
    let id = if record.topic == tweets { &payload["data"]["id"] } else { &payload["id"] };
    id.clone()
}

/// Whether a reject's `error` says what is wrong with the id, in the contract's words for it.
fn names_id_fault(reason: &str, id: Option<&Value>) -> bool {
    let missing = reason.contains("has no `") || reason.contains("missing field `id`");
    match id {
        // Some sources read a `null` id as no id.
        None | Some(Value::Null) => missing || reason.contains("is null, not"),
        Some(id) => ::contract::id::from_json(id).is_err_and(|fault| reason.contains(&fault.to_string())),
    }
}

/// The start of `text`, for a failure message (an id may be 5000 digits long).
fn short(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(300).collect();
    if chars.next().is_some() { format!("{head}…") } else { head }
}

fn text(record: &ConsumedRecord) -> String {
    short(&String::from_utf8_lossy(record.payload.as_deref().unwrap_or_default()))
}

#[tokio::test]
async fn the_inserter_stores_every_record_the_scraper_accepts_from_every_source() {
    let broker = Broker::shared().await.unwrap();
    let topics = Topics::unique();
    let (script, replay, expected) = payloads(&topics);
    let server = serve(script).await;
    let dir = tempfile::tempdir().unwrap();
    let replay_file = dir.path().join("x-stream.ndjson");
    std::fs::write(&replay_file, replay).unwrap();

    // The scraper, configured as an operator would: every source at once, by its flags.
    let url = server.url();
    let usernames: Vec<String> =
        (0..cases().len()).map(|i| format!("id_case_{i:02}")).chain([MEDIA_OWNER.into()]).collect();
    let mut flags: Vec<String> = [
        "scraper",
        "--bootstrap-servers",
        &broker.bootstrap_servers(),
        "--partitions",
        "2",
        "--source",
        "x,sse,replay,instagram-graph,instagram-web",
        "--x-bearer-token",
        TOKEN,
        "--x-api-base-url",
        &url,
        "--sse-url",
        &format!("{url}/api/v1/streaming/public"),
        "--replay-file",
        replay_file.to_str().unwrap(),
        "--replay-rate",
        "0",
        "--instagram-access-token",
        TOKEN,
        "--instagram-user-id",
        APP_USER,
        "--instagram-usernames",
        &usernames.join(","),
        "--instagram-hashtags",
        HASHTAG,
        "--instagram-graph-base-url",
        &format!("{url}/v25.0"),
        "--instagram-web-base-url",
        &url,
        "--instagram-rounds",
        "1",
        // Generous quotas: the sources' sleeping waiters never wait for one.
        "--instagram-graph-requests-per-hour",
        "100000",
        "--instagram-web-requests-per-window",
        "100000",
        "--topic-rejects",
        &topics.rejects,
    ]
    .map(String::from)
    .to_vec();
    flags.extend(topics.data_flags());
    let settings = scraper::settings::Settings::try_parse_from(&flags).unwrap();
    let sources = settings.sources().unwrap();
    let names: Vec<String> = sources.iter().map(|s| s.name()).collect();
    assert_eq!(names, ["x.sample", "sse.mastodon", "replay", "instagram.graph", "instagram.web.profile"]);

    let sink = KafkaSink::new(common::kafka::client_config(&settings.bootstrap_servers, [])).unwrap();
    let all_topics: Vec<&str> = settings.topics.iter().map(|(_, name)| name).collect();
    sink.ensure_topics(&all_topics, settings.partitions).await.unwrap();
    let options = Options {
        queue_bytes: settings.queue_bytes,
        rejects_topic: settings.topics.name(&REJECTS).to_owned(),
        flush_timeout: settings.flush_timeout,
        progress_interval: settings.progress_interval,
    };
    let (metrics, shutdown) = (Metrics::default(), CancellationToken::new());
    let run = tokio::spawn({
        let (metrics, shutdown) = (metrics.clone(), shutdown.clone());
        async move { run::run(sources, Arc::new(sink), metrics, &options, common::ops::Health::default(), shutdown).await }
    });

    // Each payload becomes one record, accepted or rejected: once the broker acknowledged as many, the
    // streams have nothing more to send.
    let deadline = Instant::now() + PATIENCE;
    let acknowledged = || metrics.produced_count("accepted") + metrics.produced_count("rejected");
    while acknowledged() < expected.len() as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    let outcome = tokio::time::timeout(PATIENCE, run).await.expect("shutdown ends the run").unwrap();
    assert!(outcome.failed_sources.is_empty(), "{:?}", outcome.failed_sources);
    let forwarded = &outcome.forwarded;
    assert_eq!(
        (forwarded.accepted + forwarded.rejected, forwarded.failed, forwarded.unacknowledged),
        (expected.len() as u64, 0, 0),
        "one record per payload, every one acknowledged; requests: {:?}",
        server.requests().iter().map(|r| r.target.clone()).collect::<Vec<_>>()
    );

    let consumed = consume(&broker, &all_topics, expected.len()).await;
    assert_eq!(consumed.len(), expected.len(), "each record once");
    let (rejected, data): (Vec<ConsumedRecord>, Vec<ConsumedRecord>) =
        consumed.into_iter().partition(|record| record.topic == topics.rejects);

    // The inserter, configured with the same topic flags, decodes every record the scraper accepted.
    let inserter_flags = ["inserter", "--database-url", "postgres://unused/db"].map(String::from);
    let inserter =
        inserter::settings::Settings::try_parse_from(inserter_flags.into_iter().chain(topics.data_flags())).unwrap();
    let batch = Batch::decode(data.clone(), &Routes::of(&inserter.topics));
    let dead: Vec<String> = batch
        .dead_letters()
        .iter()
        .map(|(index, why)| {
            format!("{} on {}: {why}\n  {}", data[*index].source(), data[*index].topic, text(&data[*index]))
        })
        .collect();
    assert!(dead.is_empty(), "the inserter dead-letters records the scraper accepted:\n{}", dead.join("\n"));
    for record in &data {
        let id = payload_id(record, &topics.tweets);
        let id = id.as_str().map(str::to_owned).unwrap_or_else(|| id.to_string());
        let key = record.key.as_deref().map(|key| std::str::from_utf8(key).unwrap());
        assert_eq!(key, ::contract::id::key(&id).ok().as_deref(), "{}", text(record));
    }

    // Each payload where the id rule says, and nowhere else.
    for payload in &expected {
        let holds = |record: &ConsumedRecord, marker: &str| {
            let bytes = record.payload.as_deref().unwrap_or_default();
            bytes.windows(marker.len()).any(|w| w == marker.as_bytes())
        };
        let mut found = data.iter().chain(&rejected).filter(|record| {
            holds(record, &payload.marker) && !payload.carried_by.is_some_and(|profile| holds(record, profile))
        });
        let (Some(record), None) = (found.next(), found.next()) else {
            panic!("{} is not on exactly one topic", payload.marker)
        };
        let what = format!("{} (id {})", payload.marker, short(&format!("{:?}", payload.id)));
        assert_eq!(record.source(), payload.source, "{what}");
        match payload.key {
            Some(key) => {
                assert_eq!(record.topic, payload.topic, "{what}: a valid id goes to its data topic");
                assert_eq!(record.key.as_deref(), Some(key.as_bytes()), "{what}");
            }
            None => {
                assert_eq!(record.topic, topics.rejects, "{what}: a bad id goes to the rejects topic");
                let reason = record.header(header::ERROR).unwrap_or_default();
                assert!(names_id_fault(reason, payload.id.as_ref()), "{what}: the reason is {}", short(reason));
            }
        }
    }
    let sources = data.iter().map(ConsumedRecord::source).collect::<std::collections::BTreeSet<_>>();
    assert_eq!(sources.len(), 6, "every source's records reached the inserter: {sources:?}");
}
