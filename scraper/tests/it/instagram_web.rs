//! The Instagram web profile source against a local server answering as `i.instagram.com` does (real-format
//! `web_profile_info` bodies, 404s, `data.user: null`, 429s, `require_login`, the login-wall redirect, server
//! errors) and a real broker: each profile and each of its media lands byte for byte, keyed by its id;
//! throttling waits the chosen delays on the fake clock and then asks for the same user again; the request
//! quota holds in every window.

use crate::support;

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::Clock;
use scraper::instagram::InstagramTopics;
use scraper::instagram::schedule::Schedule;
use scraper::instagram::web::{self, WebConfig, WebProfileSource};
use scraper::metrics::Metrics;
use scraper::run::Outcome;
use scraper::source::{Source, Wait, Waiter};
use serde_json::Value;
use support::Consumed;
use testkit::http::{HttpServer, Part, Reply, Request};
use testkit::{Broker, unique_name};
use tokio_util::sync::CancellationToken;

const SOURCE: &str = "instagram.web.profile";
const PATH: &str = "/api/v1/users/web_profile_info/";
/// Long enough for any test step: a hang fails the test instead of blocking it.
const PATIENCE: Duration = Duration::from_secs(120);

/// A `web_profile_info` answer, as Instagram sends it (compact, non-ASCII and `/` escaped).
fn fixture(username: &str) -> String {
    let path = format!("{}/tests/fixtures/instagram/web/{username}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn ok(body: &str) -> Reply {
    Reply::json(200, body).header("x-ig-set-www-claim", "0")
}

fn html(status: u16, body: &str) -> Reply {
    Reply {
        status,
        headers: vec![("content-type".into(), "text/html; charset=utf-8".into())],
        body: vec![Part::Chunk(body.as_bytes().to_vec())],
    }
}

const LOGIN_PAGE: &str = "<!DOCTYPE html><html class=\"no-js not-logged-in client-root\" lang=\"en\"><head>\
    <meta charset=\"utf-8\"><title>Login \u{2022} Instagram</title></head><body><div id=\"react-root\"></div></body></html>";

/// The topics of one test.
struct Topics {
    profiles: String,
    media: String,
    rejects: String,
}

impl Topics {
    fn new() -> Self {
        Self { profiles: unique_name("profiles"), media: unique_name("media"), rejects: unique_name("rejects") }
    }

    fn all(&self) -> [&str; 3] {
        [&self.profiles, &self.media, &self.rejects]
    }
}

fn config(base_url: String, usernames: &[&str], topics: &Topics) -> WebConfig {
    WebConfig {
        base_url,
        app_id: web::DEFAULT_APP_ID.into(),
        usernames: usernames.iter().map(|name| (*name).to_owned()).collect(),
        schedule: Schedule { interval: Duration::from_secs(3600), rounds: Some(1) },
        requests_per_window: NonZeroU32::new(web::DEFAULT_REQUESTS_PER_WINDOW).unwrap(),
        window: web::DEFAULT_WINDOW,
        topics: InstagramTopics { profiles: topics.profiles.clone(), media: topics.media.clone() },
        max_record_bytes: 900_000,
    }
}

/// Runs the source into `broker` until it ends by itself.
async fn run(broker: &Broker, topics: &Topics, config: WebConfig, waiter: Waiter) -> (Outcome, Metrics) {
    let sink = support::sink(broker, &topics.all()).await;
    let source: Box<dyn Source> = Box::new(WebProfileSource::new(config, waiter));
    let run = support::run_sources(vec![source], sink, &topics.rejects, CancellationToken::new());
    let (outcome, metrics) = tokio::time::timeout(PATIENCE, run).await.expect("the rounds end");
    assert!(outcome.failed_sources.is_empty(), "{:?}", outcome.failed_sources);
    (outcome, metrics)
}

/// The username each profile request asked for, in order.
fn asked(requests: &[Request]) -> Vec<String> {
    requests.iter().filter(|r| r.path() == PATH).map(|r| r.query("username").unwrap_or_default()).collect()
}

fn waits_for(waits: &Arc<Mutex<Vec<Wait>>>, reason: &str) -> Vec<u64> {
    waits.lock().unwrap().iter().filter(|w| w.reason == reason).map(|w| w.delay.as_secs()).collect()
}

fn keys(messages: &[Consumed]) -> Vec<String> {
    let mut keys: Vec<String> = messages.iter().map(|m| m.key.clone().unwrap_or_default()).collect();
    keys.sort();
    keys
}

/// What the records of `body` must be: the profile's id and value, and each media node's.
fn expected(body: &str) -> (String, Value, Vec<(String, Value)>) {
    let response: Value = serde_json::from_str(body).unwrap();
    let user = response["data"]["user"].clone();
    let media = user["edge_owner_to_timeline_media"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| (edge["node"]["id"].as_str().unwrap().to_owned(), edge["node"].clone()))
        .collect();
    (user["id"].as_str().unwrap().to_owned(), user, media)
}

/// A record is the object's bytes exactly as the server sent them: a slice of the body, the same JSON.
fn assert_slice(message: &Consumed, bodies: &[String], value: &Value) {
    let text = message.text();
    assert!(bodies.iter().any(|body| body.contains(&text)), "not a slice of the response: {}", &text[..200]);
    assert_eq!(&serde_json::from_str::<Value>(&text).unwrap(), value, "{:?}", message.key);
    assert_eq!(message.header("source"), Some(SOURCE));
    assert_eq!(message.header("content_type"), Some("application/json"));
    assert!(message.header("scraped_at").is_some());
}

#[tokio::test]
async fn every_profile_and_media_object_lands_byte_for_byte_keyed_by_its_id() {
    let broker = Broker::shared().await.unwrap();
    let topics = Topics::new();
    let bodies = [fixture("travel.by.mia"), fixture("kitchen_notes")];
    let served = bodies.clone();
    let server = HttpServer::with(move |request| match request.query("username").as_deref() {
        Some("travel.by.mia") => ok(&served[0]),
        Some("kitchen_notes") => ok(&served[1]),
        _ => Reply::json(500, "{}"),
    })
    .await
    .unwrap();
    let (waiter, waits) = Waiter::recording();
    let mut config = config(
        format!("{}/", server.url()),
        &[" @Travel.By.Mia ", "kitchen_notes", "", "@", "no spaces allowed", "kitchen_notes"],
        &topics,
    );
    config.schedule.rounds = Some(2);
    let (_, metrics) = run(&broker, &topics, config, waiter).await;

    // Two rounds: each user once a round, invalid and duplicate names never asked for.
    let requests = server.requests();
    assert_eq!(asked(&requests), ["travel.by.mia", "kitchen_notes", "travel.by.mia", "kitchen_notes"]);
    for request in &requests {
        assert_eq!(request.method, "GET");
        assert_eq!(request.header("x-ig-app-id"), Some("936619743392459"));
        assert_eq!(request.header("accept"), Some("*/*"));
        assert!(request.header("user-agent").is_some_and(|ua| ua.starts_with("Mozilla/5.0")), "{request:?}");
        assert_eq!(request.header("cookie"), None);
    }
    assert_eq!(
        waits.lock().unwrap().clone(),
        [Wait { reason: "poll_interval".into(), delay: Duration::from_secs(3600) }]
    );

    let mut profiles_expected = Vec::new();
    let mut media_expected = Vec::new();
    for body in &bodies {
        let (id, user, media) = expected(body);
        profiles_expected.push((id, user));
        media_expected.extend(media);
    }
    assert_eq!(media_expected.len(), 6);

    let profiles = support::consume(&broker, &topics.profiles, 4, PATIENCE).await;
    assert_eq!(keys(&profiles), ["25025320", "25025320", "5821462185", "5821462185"]);
    for message in &profiles {
        let (_, value) = profiles_expected.iter().find(|(id, _)| Some(id) == message.key.as_ref()).unwrap();
        assert_slice(message, &bodies, value);
        assert!(message.text().contains("\"edge_owner_to_timeline_media\""), "the profile keeps its latest posts");
    }
    let media = support::consume(&broker, &topics.media, 12, PATIENCE).await;
    let mut media_keys: Vec<String> = media_expected.iter().flat_map(|(id, _)| [id.clone(), id.clone()]).collect();
    media_keys.sort();
    assert_eq!(keys(&media), media_keys);
    for message in &media {
        let (_, value) = media_expected.iter().find(|(id, _)| Some(id) == message.key.as_ref()).unwrap();
        assert_slice(message, &bodies, value);
    }
    let kinds: Vec<&str> = media_expected.iter().map(|(_, node)| node["__typename"].as_str().unwrap()).collect();
    for kind in ["GraphImage", "GraphVideo", "GraphSidecar"] {
        assert!(kinds.contains(&kind), "{kinds:?}");
    }

    assert!(support::consume(&broker, &topics.rejects, 0, Duration::from_secs(2)).await.is_empty());
    assert_eq!(metrics.lines_of(SOURCE), 16, "each profile and media object read");
    assert_eq!(metrics.produced_count("accepted"), 16);
}

#[tokio::test]
async fn a_missing_user_is_skipped_and_the_others_go_on() {
    let broker = Broker::shared().await.unwrap();
    let topics = Topics::new();
    let body = fixture("kitchen_notes");
    let served = body.clone();
    let server = HttpServer::with(move |request| match request.query("username").as_deref() {
        Some("ghost.account") => Reply { status: 404, headers: vec![], body: vec![] },
        Some("deleted.account") => ok(r#"{"data":{"user":null},"status":"ok"}"#),
        Some("bad.request") => Reply::json(400, r#"{"message":"Invalid username","status":"fail"}"#),
        Some("kitchen_notes") => ok(&served),
        _ => Reply::json(500, "{}"),
    })
    .await
    .unwrap();
    let (waiter, waits) = Waiter::recording();
    let users = ["ghost.account", "deleted.account", "bad.request", "kitchen_notes"];
    run(&broker, &topics, config(server.url(), &users, &topics), waiter).await;

    assert_eq!(asked(&server.requests()), users, "each user asked for once, none again");
    assert!(waits.lock().unwrap().is_empty(), "nothing to wait for");
    let (id, user, media) = expected(&body);
    let profiles = support::consume(&broker, &topics.profiles, 1, PATIENCE).await;
    assert_eq!(keys(&profiles), [id]);
    assert_slice(&profiles[0], std::slice::from_ref(&body), &user);
    let landed = support::consume(&broker, &topics.media, 3, PATIENCE).await;
    assert_eq!(keys(&landed), keys_of(&media));
    assert!(support::consume(&broker, &topics.rejects, 0, Duration::from_secs(2)).await.is_empty());
}

fn keys_of(objects: &[(String, Value)]) -> Vec<String> {
    let mut keys: Vec<String> = objects.iter().map(|(id, _)| id.clone()).collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn throttling_waits_minutes_doubling_and_then_asks_for_the_same_user_again() {
    let broker = Broker::shared().await.unwrap();
    let topics = Topics::new();
    let bodies = [fixture("travel.by.mia"), fixture("kitchen_notes")];
    let served = bodies.clone();
    let mut answered = std::collections::HashMap::<String, usize>::new();
    let server = HttpServer::with(move |request| {
        if request.path() == "/accounts/login/" {
            return html(200, LOGIN_PAGE);
        }
        let user = request.query("username").unwrap_or_default();
        let count = answered.entry(user.clone()).or_default();
        *count += 1;
        match (user.as_str(), *count) {
            ("travel.by.mia", 1) => {
                Reply::json(429, r#"{"message":"Please wait a few minutes before you try again.","status":"fail"}"#)
            }
            ("travel.by.mia", 2) => Reply::json(
                401,
                r#"{"message":"Please wait a few minutes before you try again.","require_login":true,"status":"fail"}"#,
            ),
            // Instagram's login wall: a redirect to the login page, which is HTML (and is not followed).
            ("travel.by.mia", 3) => Reply { status: 302, headers: vec![], body: vec![] }
                .header("location", "/accounts/login/?next=%2Fapi%2Fv1%2Fusers%2Fweb_profile_info%2F"),
            ("travel.by.mia", _) => ok(&served[0]),
            // After a success the throttle starts over (300 s), a longer Retry-After is honoured, and a
            // 200 saying "fail" with a throttling message is throttling too.
            ("kitchen_notes", 1) => Reply::json(429, r#"{"status":"fail"}"#).header("retry-after", "60"),
            ("kitchen_notes", 2) => Reply::json(429, r#"{"status":"fail"}"#).header("retry-after", "3600"),
            ("kitchen_notes", 3) => Reply::json(200, r#"{"message":"rate limited","status":"fail"}"#),
            ("kitchen_notes", _) => ok(&served[1]),
            _ => Reply::json(500, "{}"),
        }
    })
    .await
    .unwrap();
    let (waiter, waits) = Waiter::recording();
    let clock = waiter.clock();
    let (_, metrics) =
        run(&broker, &topics, config(server.url(), &["travel.by.mia", "kitchen_notes"], &topics), waiter).await;

    assert_eq!(waits_for(&waits, "throttled"), [300, 600, 1200, 300, 3600, 1200]);
    assert_eq!(waits_for(&waits, "transient"), Vec::<u64>::new());
    assert_eq!(
        clock.now(),
        Duration::from_secs(300 + 600 + 1200 + 300 + 3600 + 1200),
        "the fake clock moved by the waits"
    );
    let requests = server.requests();
    assert_eq!(
        asked(&requests),
        ["travel.by.mia"; 4].into_iter().chain(["kitchen_notes"; 4]).collect::<Vec<_>>(),
        "the same user again after each throttled answer, nobody skipped"
    );
    assert_eq!(requests.iter().filter(|r| r.path() == "/accounts/login/").count(), 0, "no redirect is followed");
    assert_eq!(metrics.reconnects_of(SOURCE), 6);

    let profiles = support::consume(&broker, &topics.profiles, 2, PATIENCE).await;
    assert_eq!(keys(&profiles), ["25025320", "5821462185"]);
    let media = support::consume(&broker, &topics.media, 6, PATIENCE).await;
    assert_eq!(media.len(), 6);
    for message in profiles.iter().chain(&media) {
        assert!(bodies.iter().any(|body| body.contains(&message.text())));
    }
}

#[tokio::test]
async fn server_and_network_errors_are_retried_five_times_then_the_user_waits_for_the_next_round() {
    let broker = Broker::shared().await.unwrap();
    let topics = Topics::new();
    let bodies = [fixture("travel.by.mia"), fixture("kitchen_notes")];
    let served = bodies.clone();
    let mut answered = std::collections::HashMap::<String, usize>::new();
    let server = HttpServer::with(move |request| {
        let user = request.query("username").unwrap_or_default();
        let count = answered.entry(user.clone()).or_default();
        *count += 1;
        match (user.as_str(), *count) {
            ("travel.by.mia", 1) => html(503, "<html><body>Service Unavailable</body></html>"),
            // The connection drops in the middle of the body.
            ("travel.by.mia", 2) => Reply::stream(vec![Part::Chunk(served[0].as_bytes()[..500].to_vec()), Part::Drop]),
            ("travel.by.mia", _) => ok(&served[0]),
            ("flaky.one", _) => Reply::json(500, r#"{"message":"","status":"fail"}"#),
            ("kitchen_notes", _) => ok(&served[1]),
            _ => Reply::json(400, "{}"),
        }
    })
    .await
    .unwrap();
    let (waiter, waits) = Waiter::recording();
    let users = ["travel.by.mia", "flaky.one", "kitchen_notes"];
    run(&broker, &topics, config(server.url(), &users, &topics), waiter).await;

    assert_eq!(waits_for(&waits, "transient"), [30, 60, 30, 60, 120, 240]);
    assert_eq!(waits_for(&waits, "throttled"), Vec::<u64>::new());
    let asked = asked(&server.requests());
    let expected: Vec<&str> =
        ["travel.by.mia"; 3].into_iter().chain(["flaky.one"; 5]).chain(["kitchen_notes"]).collect();
    assert_eq!(asked, expected);

    let profiles = support::consume(&broker, &topics.profiles, 2, PATIENCE).await;
    assert_eq!(keys(&profiles), ["25025320", "5821462185"]);
    assert_eq!(support::consume(&broker, &topics.media, 6, PATIENCE).await.len(), 6);
    assert!(support::consume(&broker, &topics.rejects, 0, Duration::from_secs(2)).await.is_empty());
}

/// Asks for 450 users under a quota of 20 requests in 11 minutes, on the fake clock.
#[tokio::test]
async fn no_eleven_minute_window_holds_more_requests_than_the_quota() {
    let broker = Broker::shared().await.unwrap();
    let topics = Topics::new();
    let (waiter, waits) = Waiter::recording();
    let clock = waiter.clock();
    let times = Arc::new(Mutex::new(Vec::new()));
    let seen = times.clone();
    let server = HttpServer::with(move |request| {
        seen.lock().unwrap().push(clock.now());
        let user = request.query("username").unwrap_or_default();
        let id = user.trim_start_matches("user_").parse::<u64>().unwrap() + 1;
        ok(&format!(
            r#"{{"data":{{"user":{{"id":"{id}","username":"{user}","edge_owner_to_timeline_media":{{"count":0,"edges":[]}}}}}},"status":"ok"}}"#
        ))
    })
    .await
    .unwrap();
    let users: Vec<String> = (0..450).map(|i| format!("user_{i}")).collect();
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    let mut config = config(server.url(), &names, &topics);
    config.requests_per_window = NonZeroU32::new(20).unwrap();
    let window = Duration::from_secs(11 * 60);
    config.window = window;
    run(&broker, &topics, config, waiter).await;

    assert_eq!(asked(&server.requests()), users, "every user, once, in order");
    let times = times.lock().unwrap().clone();
    assert_eq!(times.len(), 450);
    let most = times
        .iter()
        .enumerate()
        .map(|(i, start)| times[i..].iter().take_while(|t| **t < *start + window).count())
        .max()
        .unwrap();
    assert!(most <= 20, "{most} requests in one window");
    assert!(!waits_for(&waits, "quota").is_empty());
    // And the quota is used, not starved: 18 requests a window once the burst of 2 is spent.
    assert!(*times.last().unwrap() <= window * (450_u32.div_ceil(18)), "{:?}", times.last());

    let profiles = support::consume(&broker, &topics.profiles, 450, PATIENCE).await;
    assert_eq!(profiles.len(), 450);
}

#[tokio::test]
async fn an_invalid_or_oversize_object_is_rejected_with_its_reason_and_the_rest_lands() {
    let broker = Broker::shared().await.unwrap();
    let topics = Topics::new();
    let long_caption = "#longread ".repeat(300);
    let no_id_node = r#"{"__typename":"GraphImage","shortcode":"DKNOID0tHxD","taken_at_timestamp":1748786591}"#;
    let big_node = format!(
        r#"{{"__typename":"GraphImage","id":"2004","edge_media_to_caption":{{"edges":[{{"node":{{"text":"{long_caption}"}}}}]}}}}"#
    );
    let bad_profile = r#"{"id":"abc","username":"bad.id","edge_owner_to_timeline_media":{"count":1,"edges":[{"node":{"__typename":"GraphVideo","id":"2006"}}]}}"#;
    let answers: Vec<(&str, String)> = vec![
        (
            "odd.nodes",
            format!(
                r#"{{"data":{{"user":{{"id":"1001","username":"odd.nodes","edge_owner_to_timeline_media":{{"count":4,"edges":[{{"node":{{"__typename":"GraphImage","id":"2001"}}}},{{"node":{no_id_node}}},{{"node":{{"__typename":"GraphSidecar","id":2003}}}},{{"cursor":"x"}}]}}}}}},"status":"ok"}}"#
            ),
        ),
        (
            "huge",
            format!(
                r#"{{"data":{{"user":{{"id":"1002","username":"huge","edge_owner_to_timeline_media":{{"count":2,"edges":[{{"node":{big_node}}},{{"node":{{"__typename":"GraphImage","id":"2005"}}}}]}}}}}},"status":"ok"}}"#
            ),
        ),
        ("bad.id", format!(r#"{{"data":{{"user":{bad_profile}}},"status":"ok"}}"#)),
        ("garbage", "{\"data\":{\"user\":{\"id\":\"1\"".to_owned()),
    ];
    let served = answers.clone();
    let server = HttpServer::with(move |request| {
        let user = request.query("username").unwrap_or_default();
        served.iter().find(|(name, _)| *name == user).map_or_else(|| Reply::json(400, "{}"), |(_, body)| ok(body))
    })
    .await
    .unwrap();
    let (waiter, _) = Waiter::recording();
    let mut config = config(server.url(), &["odd.nodes", "huge", "bad.id", "garbage"], &topics);
    config.max_record_bytes = 2000;
    let (_, metrics) = run(&broker, &topics, config, waiter).await;

    let profiles = support::consume(&broker, &topics.profiles, 1, PATIENCE).await;
    assert_eq!(keys(&profiles), ["1001"]);
    let media = support::consume(&broker, &topics.media, 4, PATIENCE).await;
    assert_eq!(keys(&media), ["2001", "2003", "2005", "2006"], "a number id is a valid id too");
    let id_2003 = media.iter().find(|m| m.key.as_deref() == Some("2003")).unwrap();
    assert_eq!(id_2003.text(), r#"{"__typename":"GraphSidecar","id":2003}"#);

    let rejects = support::consume(&broker, &topics.rejects, 6, PATIENCE).await;
    assert_eq!(rejects.len(), 6, "{rejects:#?}");
    let reject = |needle: &str| {
        rejects
            .iter()
            .find(|r| r.header("error").is_some_and(|e| e.contains(needle)))
            .unwrap_or_else(|| panic!("no reject saying {needle:?}: {rejects:#?}"))
    };
    assert_eq!(reject("media object: payload has no `id`").text(), no_id_node);
    assert_eq!(reject("profile object: payload's `id`").text(), bad_profile);
    assert!(reject("without a `node`").text().contains("cursor"));
    let big_profile = reject("profile object: payload is");
    assert_eq!(big_profile.payload.len(), 1024);
    assert!(big_profile.text().starts_with(r#"{"id":"1002""#));
    assert!(big_profile.header("error").unwrap().contains("over the 2000-byte limit"));
    let big = reject("media object: payload is");
    assert_eq!(big.payload, big_node.as_bytes()[..1024]);
    assert!(reject("garbage").text().starts_with("{\"data\""));
    for reject in &rejects {
        assert_eq!(reject.header("source"), Some(SOURCE));
    }
    assert_eq!(metrics.lines_of(SOURCE), 11, "each object offered, and the unreadable answer");
}

/// Runs the source on a real clock against `server` until it made `requests` requests (and a moment more),
/// then shuts it down: it must end at once, successfully.
async fn stops_promptly(broker: &Broker, server: HttpServer, requests: usize, schedule: Schedule) {
    let topics = Topics::new();
    let sink = support::sink(broker, &topics.all()).await;
    let mut config = config(server.url(), &["travel.by.mia"], &topics);
    config.schedule = schedule;
    let source: Box<dyn Source> = Box::new(WebProfileSource::new(config, Waiter::sleeping()));
    let shutdown = CancellationToken::new();
    let running = tokio::spawn({
        let (rejects, shutdown) = (topics.rejects.clone(), shutdown.clone());
        async move { support::run_sources(vec![source], sink, &rejects, shutdown).await }
    });
    let deadline = Instant::now() + PATIENCE;
    while server.requests().len() < requests {
        assert!(Instant::now() < deadline, "the source never asked");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!running.is_finished(), "the source waits");
    let asked_to_stop = Instant::now();
    shutdown.cancel();
    let (outcome, _) = tokio::time::timeout(Duration::from_secs(10), running).await.expect("ends promptly").unwrap();
    assert!(asked_to_stop.elapsed() < Duration::from_secs(5), "{:?}", asked_to_stop.elapsed());
    assert!(outcome.failed_sources.is_empty(), "{:?}", outcome.failed_sources);
}

#[tokio::test]
async fn shutdown_ends_the_source_promptly_while_it_waits_for_instagram_or_for_the_next_round() {
    let broker = Broker::shared().await.unwrap();
    let once = Schedule { interval: Duration::from_secs(3600), rounds: Some(1) };

    // In a 5-minute throttle wait.
    let throttled = HttpServer::with(|_| Reply::json(429, r#"{"status":"fail"}"#)).await.unwrap();
    stops_promptly(&broker, throttled, 1, once).await;

    // In the middle of a response that does not come.
    let hanging = HttpServer::with(|_| Reply::stream(vec![Part::Hang])).await.unwrap();
    stops_promptly(&broker, hanging, 1, once).await;

    // Between rounds.
    let body = fixture("travel.by.mia");
    let answering = HttpServer::with(move |_| ok(&body)).await.unwrap();
    stops_promptly(&broker, answering, 1, Schedule { interval: Duration::from_secs(3600), rounds: None }).await;
}
