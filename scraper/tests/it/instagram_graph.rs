//! The Instagram Graph API source against a local server that answers as the Graph API does (business
//! discovery with cursor-paged media, hashtag search, hashtag media with `paging.next`, error bodies by code,
//! usage headers) and a real broker. Waits are asserted on the fake clock of a recording `Waiter`.

use crate::support;

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use scraper::instagram::InstagramTopics;
use scraper::instagram::graph::{GraphConfig, GraphSource};
use scraper::instagram::schedule::Schedule;
use scraper::secret::Secret;
use scraper::source::{Source, Wait, Waiter};
use testkit::http::{HttpServer, Reply, Request};
use testkit::{Broker, unique_name};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "EAAGtest-graph-token";
const APP_USER: &str = "17841400000000001";
const BLUEBOTTLE: &str = "17841405309211844";
const HASHTAG_ID: &str = "17843853986012965";

const PROFILE_FIELDS: &str = r##""id":"17841405309211844","username":"bluebottle","name":"Blue Bottle Coffee","biography":"Coffee \u2615 since 2002","website":"http://bluebottlecoffee.com/","profile_picture_url":"https://scontent.xx.fbcdn.net/v/t51.2885-15/1.jpg","followers_count":267793,"follows_count":1130,"media_count":1205"##;
const MEDIA_1: &str = r##"{"id":"17858843269216389","caption":"Sunday #Coffee at #BlueBottle \ud83d\ude00","media_type":"IMAGE","media_url":"https://scontent.xx.fbcdn.net/v/1.jpg","permalink":"https://www.instagram.com/p/CxYz123AbC_/","timestamp":"2025-06-03T14:03:11+0000","like_count":1234,"comments_count":56,"username":"bluebottle"}"##;
const MEDIA_2: &str = r##"{"id":"17858843269216390","caption":"New beans","media_type":"VIDEO","permalink":"https://www.instagram.com/reel/CxYz124AbC_/","timestamp":"2025-06-02T09:00:00+0000","comments_count":3,"username":"bluebottle"}"##;
const MEDIA_3: &str = r##"{"id":"17858843269216391","caption":"Carousel","media_type":"CAROUSEL_ALBUM","media_url":"https://scontent.xx.fbcdn.net/v/3.jpg","permalink":"https://www.instagram.com/p/CxYz125AbC_/","timestamp":"2025-06-01T08:00:00+0000","like_count":7,"comments_count":0,"username":"bluebottle"}"##;
const TAGGED_1: &str = r##"{"id":"17900000000000001","caption":"#coffee time","media_type":"IMAGE","media_url":"https://scontent.xx.fbcdn.net/v/h1.jpg","permalink":"https://www.instagram.com/p/DAbc001xyz_/","timestamp":"2025-06-03T10:00:00+0000","like_count":10,"comments_count":1}"##;
const TAGGED_2: &str = r##"{"id":"17900000000000002","caption":"more #Coffee","media_type":"IMAGE","permalink":"https://www.instagram.com/p/DAbc002xyz_/","timestamp":"2025-06-03T09:00:00+0000","comments_count":0}"##;
const TAGGED_3: &str = r##"{"id":"17900000000000003","caption":"last #coffee","media_type":"VIDEO","permalink":"https://www.instagram.com/reel/DAbc003xyz_/","timestamp":"2025-06-03T08:00:00+0000","like_count":0,"comments_count":0}"##;

fn discovery(profile_fields: &str, media: &[&str], after: Option<&str>) -> String {
    let paging = match after {
        Some(after) => format!(r#","paging":{{"cursors":{{"before":"QVFIUbefore","after":"{after}"}}}}"#),
        None => r#","paging":{"cursors":{"before":"QVFIUbefore"}}"#.to_owned(),
    };
    format!(
        r#"{{"business_discovery":{{{profile_fields},"media":{{"data":[{}]{paging}}}}},"id":"{APP_USER}"}}"#,
        media.join(",")
    )
}

fn profile_slice(body: &str) -> &str {
    let start = body.find(r#"{"id":"1784140530"#).unwrap();
    let end = body.rfind(r#","id":""#).unwrap();
    &body[start..end]
}

fn graph_error(code: i64, message: &str) -> String {
    format!(r#"{{"error":{{"message":"{message}","type":"OAuthException","code":{code},"fbtrace_id":"AbCdEf123"}}}}"#)
}

fn config(server: &HttpServer, topics: &InstagramTopics, usernames: &[&str], hashtags: &[&str]) -> GraphConfig {
    GraphConfig {
        base_url: format!("{}/v25.0", server.url()),
        token: Secret::new(TOKEN),
        ig_user_id: APP_USER.into(),
        usernames: usernames.iter().map(|u| u.to_string()).collect(),
        hashtags: hashtags.iter().map(|h| h.to_string()).collect(),
        top_media: false,
        max_pages: 3,
        max_hashtag_pages: 5,
        schedule: Schedule { interval: Duration::from_secs(15 * 60), rounds: Some(1) },
        requests_per_hour: NonZeroU32::new(200).unwrap(),
        slowdown_percent: 80.0,
        topics: topics.clone(),
        max_record_bytes: 100_000,
    }
}

struct Setup {
    broker: Broker,
    sink: Arc<scraper::kafka_sink::KafkaSink>,
    topics: InstagramTopics,
    rejects: String,
}

async fn setup() -> Setup {
    let broker = Broker::shared().await.unwrap();
    let topics = InstagramTopics { profiles: unique_name("profiles"), media: unique_name("media") };
    let rejects = unique_name("rejects");
    let sink = support::sink(&broker, &[&topics.profiles, &topics.media, &rejects]).await;
    Setup { broker, sink, topics, rejects }
}

async fn run(setup: &Setup, config: GraphConfig, waiter: Waiter) -> scraper::run::Outcome {
    let source: Box<dyn Source> = Box::new(GraphSource::new(config, waiter));
    let (outcome, _) =
        support::run_sources(vec![source], setup.sink.clone(), &setup.rejects, CancellationToken::new()).await;
    outcome
}

fn waits(recorded: &Arc<Mutex<Vec<Wait>>>) -> Vec<(String, u64)> {
    recorded.lock().unwrap().iter().map(|w| (w.reason.clone(), w.delay.as_secs())).collect()
}

/// Which call a request was: `bd:<username>:<cursor or ->`, `search:<tag>`, `recent:<after or ->`.
fn call(request: &Request) -> String {
    let path = request.path();
    if path.ends_with("/ig_hashtag_search") {
        return format!("search:{}", request.query("q").unwrap_or_default());
    }
    if path.ends_with("/recent_media") {
        return format!("recent:{}", request.query("after").unwrap_or("-".into()));
    }
    let fields = request.query("fields").unwrap_or_default();
    let username = fields.split("username(").nth(1).and_then(|rest| rest.split(')').next()).unwrap_or("?").to_owned();
    let cursor = fields.split("media.after(").nth(1).and_then(|rest| rest.split(')').next()).unwrap_or("-").to_owned();
    format!("bd:{username}:{cursor}")
}

#[tokio::test]
async fn discovery_pages_and_hashtag_media_land_byte_for_byte_with_their_headers() {
    let setup = setup().await;
    let page_1 = discovery(PROFILE_FIELDS, &[MEDIA_1, MEDIA_2], Some("QVFIUcursor2"));
    let page_2 = discovery(PROFILE_FIELDS, &[MEDIA_3], None);
    let base = Arc::new(Mutex::new(String::new()));
    let server = HttpServer::with({
        let (page_1, page_2, base) = (page_1.clone(), page_2.clone(), base.clone());
        move |request| match call(request).as_str() {
            "bd:bluebottle:-" => Reply::json(200, &page_1),
            "bd:bluebottle:QVFIUcursor2" => Reply::json(200, &page_2),
            "search:coffee" => Reply::json(200, &format!(r#"{{"data":[{{"id":"{HASHTAG_ID}"}}]}}"#)),
            "recent:-" => {
                let next = format!(
                    "{}/v25.0/{HASHTAG_ID}/recent_media?access_token={TOKEN}&user_id={APP_USER}&fields=id&limit=50&after=QVFIUh2",
                    base.lock().unwrap()
                );
                Reply::json(200, &format!(r#"{{"data":[{TAGGED_1},{TAGGED_2}],"paging":{{"cursors":{{"after":"QVFIUh2"}},"next":"{next}"}}}}"#))
            }
            "recent:QVFIUh2" => Reply::json(200, &format!(r#"{{"data":[{TAGGED_3}],"paging":{{"cursors":{{"before":"x"}}}}}}"#)),
            other => Reply::json(400, &graph_error(100, &format!("unexpected call {other}"))),
        }
    })
    .await
    .unwrap();
    *base.lock().unwrap() = server.url();

    let (waiter, recorded) = Waiter::recording();
    let mut config = config(&server, &setup.topics, &["bluebottle"], &["coffee"]);
    config.schedule.rounds = Some(2);
    let outcome = run(&setup, config, waiter).await;
    assert!(outcome.failed_sources.is_empty(), "{:?}", outcome.failed_sources);

    // Round 2 stops business discovery after the first page (its posts were seen), and knows the hashtag id.
    let calls: Vec<String> = server.requests().iter().map(call).collect();
    assert_eq!(
        calls,
        [
            "bd:bluebottle:-",
            "bd:bluebottle:QVFIUcursor2",
            "search:coffee",
            "recent:-",
            "recent:QVFIUh2",
            "bd:bluebottle:-",
            "recent:-",
            "recent:QVFIUh2"
        ]
    );
    let first = &server.requests()[0];
    assert_eq!(first.path(), format!("/v25.0/{APP_USER}"));
    assert_eq!(first.query("access_token").as_deref(), Some(TOKEN));
    assert!(first.query("fields").unwrap().contains("media{id,caption,media_type,media_url,permalink,timestamp"));
    assert_eq!(server.requests()[2].query("user_id").as_deref(), Some(APP_USER));
    assert_eq!(waits(&recorded), [("poll_interval".to_owned(), 900)], "one round later, nothing else waited");

    let profiles = support::consume(&setup.broker, &setup.topics.profiles, 2, Duration::from_secs(20)).await;
    assert_eq!(profiles.len(), 2, "one profile record a round");
    for profile in &profiles {
        assert_eq!(profile.key.as_deref(), Some(BLUEBOTTLE));
        assert_eq!(profile.header("source"), Some("instagram.graph.business_discovery"));
        assert_eq!(profile.text(), profile_slice(&page_1), "the business_discovery object, byte for byte");
    }

    let media = support::consume(&setup.broker, &setup.topics.media, 11, Duration::from_secs(20)).await;
    let texts: Vec<String> = media.iter().map(|m| m.text()).collect();
    let expected =
        [MEDIA_1, MEDIA_2, MEDIA_3, TAGGED_1, TAGGED_2, TAGGED_3, MEDIA_1, MEDIA_2, TAGGED_1, TAGGED_2, TAGGED_3];
    let mut sorted_texts = texts.clone();
    sorted_texts.sort();
    let mut sorted_expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    sorted_expected.sort();
    assert_eq!(sorted_texts, sorted_expected, "every media object once a time it was read, byte for byte");
    for record in &media {
        let id =
            serde_json::from_slice::<serde_json::Value>(&record.payload).unwrap()["id"].as_str().unwrap().to_owned();
        assert_eq!(record.key.as_deref(), Some(id.as_str()));
        if id.starts_with("179000") {
            assert_eq!(record.header("source"), Some("instagram.graph.hashtag.recent_media"));
            assert_eq!(record.header("instagram_hashtag"), Some("coffee"));
            assert_eq!(record.header("instagram_hashtag_id"), Some(HASHTAG_ID));
            assert_eq!(record.header("instagram_owner_id"), None);
        } else {
            assert_eq!(record.header("source"), Some("instagram.graph.business_discovery"));
            assert_eq!(record.header("instagram_owner_id"), Some(BLUEBOTTLE));
        }
        assert!(record.header("scraped_at").is_some());
    }
}

#[tokio::test]
async fn throttling_waits_as_the_error_and_the_usage_headers_say_then_asks_again() {
    let setup = setup().await;
    let ok = discovery(PROFILE_FIELDS, &[MEDIA_1], None);
    let blocked = r#"{"17841400000000001":[{"type":"instagram","call_count":100,"total_cputime":20,"total_time":30,"estimated_time_to_regain_access":45}]}"#;
    let server = HttpServer::scripted(
        vec![
            Reply::json(400, &graph_error(4, "Application request limit reached")),
            Reply::json(429, "{}"),
            Reply::json(400, &graph_error(80002, "There have been too many calls to this Instagram account."))
                .header("x-business-use-case-usage", blocked),
            Reply::json(200, &ok).header("x-app-usage", r#"{"call_count":90,"total_time":12,"total_cputime":11}"#),
            Reply::json(200, &ok.replace("bluebottle", "other")),
        ],
        Reply::json(400, &graph_error(100, "unexpected")),
    )
    .await
    .unwrap();
    let (waiter, recorded) = Waiter::recording();
    let outcome = run(&setup, config(&server, &setup.topics, &["bluebottle", "other"], &[]), waiter).await;
    assert!(outcome.failed_sources.is_empty(), "{:?}", outcome.failed_sources);
    assert_eq!(
        waits(&recorded),
        [
            ("throttled".to_owned(), 300),
            ("throttled".to_owned(), 600),
            // The account's block says 45 minutes: longer than the backoff's 20, so 45.
            ("throttled".to_owned(), 45 * 60),
            // 90 % of the hour's calls used: a pause before the next call, half of the 10 minutes at 100 %.
            ("usage_slowdown".to_owned(), 300),
        ]
    );
    let calls: Vec<String> = server.requests().iter().map(call).collect();
    assert_eq!(calls, ["bd:bluebottle:-", "bd:bluebottle:-", "bd:bluebottle:-", "bd:bluebottle:-", "bd:other:-"]);
    let profiles = support::consume(&setup.broker, &setup.topics.profiles, 2, Duration::from_secs(20)).await;
    assert_eq!(profiles.len(), 2, "nothing was lost to throttling");
}

#[tokio::test]
async fn a_refused_token_stops_the_source_and_says_what_to_fix_without_showing_the_token() {
    let setup = setup().await;
    let server = HttpServer::scripted(
        vec![Reply::json(400, &graph_error(190, "Error validating access token: Session has expired on Tuesday."))],
        Reply::json(400, &graph_error(100, "unexpected")),
    )
    .await
    .unwrap();
    let (waiter, recorded) = Waiter::recording();
    let outcome = run(&setup, config(&server, &setup.topics, &["bluebottle", "other"], &["coffee"]), waiter).await;
    assert_eq!(outcome.failed_sources.len(), 1);
    let message = format!("{:#}", outcome.failed_sources[0].1);
    assert!(message.contains("INSTAGRAM_ACCESS_TOKEN") && message.contains("190"), "{message}");
    assert!(message.contains("Session has expired"), "Meta's own words are kept: {message}");
    assert!(!message.contains(TOKEN), "{message}");
    assert_eq!(server.requests().len(), 1, "nothing more is asked with a dead token");
    assert!(waits(&recorded).is_empty());
}

#[tokio::test]
async fn a_profile_naming_its_web_id_is_keyed_by_it_and_a_bad_web_id_is_rejected() {
    let setup = setup().await;
    // Business discovery sends `ig_id` as a JSON number.
    let with_web_id =
        PROFILE_FIELDS.replacen(r#""id":"17841405309211844","#, r#""id":"17841405309211844","ig_id":1620131,"#, 1);
    let bad_web_id = PROFILE_FIELDS
        .replacen(r#""id":"17841405309211844","#, r#""id":"17841405309211845","ig_id":0,"#, 1)
        .replace("bluebottle", "zeroed");
    let (ok, bad) = (discovery(&with_web_id, &[MEDIA_1], None), discovery(&bad_web_id, &[], None));
    let server = HttpServer::with({
        let (ok, bad) = (ok.clone(), bad.clone());
        move |request| match call(request).as_str() {
            "bd:bluebottle:-" => Reply::json(200, &ok),
            "bd:zeroed:-" => Reply::json(200, &bad),
            other => Reply::json(400, &graph_error(100, &format!("unexpected call {other}"))),
        }
    })
    .await
    .unwrap();
    let (waiter, _) = Waiter::recording();
    let outcome = run(&setup, config(&server, &setup.topics, &["bluebottle", "zeroed"], &[]), waiter).await;
    assert!(outcome.failed_sources.is_empty(), "{:?}", outcome.failed_sources);

    let fields = server.requests()[0].query("fields").unwrap();
    assert!(fields.starts_with("business_discovery.username(bluebottle){id,ig_id,username,"), "{fields}");
    let profiles = support::consume(&setup.broker, &setup.topics.profiles, 1, Duration::from_secs(20)).await;
    assert_eq!(profiles.len(), 1, "the profile with a bad ig_id is not a record");
    assert_eq!(profiles[0].key.as_deref(), Some("1620131"), "keyed like the web's record of the account");
    assert_eq!(profiles[0].text(), profile_slice(&ok), "the object, byte for byte");
    let media = support::consume(&setup.broker, &setup.topics.media, 1, Duration::from_secs(20)).await;
    assert_eq!(
        (media[0].key.as_deref(), media[0].header("instagram_owner_id")),
        (Some("17858843269216389"), Some(BLUEBOTTLE)),
        "media keep their own key, and the owner header stays the Graph id it has always been"
    );
    let rejects = support::consume(&setup.broker, &setup.rejects, 1, Duration::from_secs(20)).await;
    let reason = rejects[0].header("error").unwrap();
    assert!(reason.starts_with("Instagram Graph profile object:") && reason.contains("ig_id"), "{reason}");
}

#[tokio::test]
async fn an_unknown_account_is_skipped_a_transient_error_retried_and_the_others_go_on() {
    let setup = setup().await;
    let ok = discovery(PROFILE_FIELDS, &[MEDIA_1], None);
    let server = HttpServer::with({
        let mut transient_once = true;
        move |request| match call(request).as_str() {
            "bd:ghost:-" => Reply::json(
                400,
                r#"{"error":{"message":"Invalid user id","type":"OAuthException","code":110,"error_subcode":2207013,"fbtrace_id":"A1"}}"#,
            ),
            "bd:bluebottle:-" if std::mem::take(&mut transient_once) => {
                Reply::json(500, &graph_error(2, "An unexpected error has occurred. Please retry your request later."))
            }
            "bd:bluebottle:-" => Reply::json(200, &ok),
            other => Reply::json(400, &graph_error(100, &format!("unexpected call {other}"))),
        }
    })
    .await
    .unwrap();
    let (waiter, recorded) = Waiter::recording();
    let outcome = run(&setup, config(&server, &setup.topics, &["ghost", "bluebottle"], &[]), waiter).await;
    assert!(outcome.failed_sources.is_empty(), "{:?}", outcome.failed_sources);
    assert_eq!(waits(&recorded), [("transient".to_owned(), 5)]);
    let profiles = support::consume(&setup.broker, &setup.topics.profiles, 1, Duration::from_secs(20)).await;
    assert_eq!(profiles.len(), 1);
    assert_eq!(profiles[0].key.as_deref(), Some(BLUEBOTTLE));
}

#[tokio::test]
async fn the_hourly_quota_holds_over_hours_of_simulated_time() {
    let setup = setup().await;
    let (waiter, _) = Waiter::recording();
    let clock = waiter.clock();
    let times = Arc::new(Mutex::new(Vec::new()));
    let server = HttpServer::with({
        let times = times.clone();
        move |request| {
            times.lock().unwrap().push(clock.now());
            let username = call(request).split(':').nth(1).unwrap().to_owned();
            let fields = PROFILE_FIELDS
                .replace("bluebottle", &username)
                .replace("17841405309211844", &format!("1784100{}", &username[1..]));
            Reply::json(200, &format!(r#"{{"business_discovery":{{{fields}}},"id":"{APP_USER}"}}"#))
        }
    })
    .await
    .unwrap();
    let usernames: Vec<String> = (100..135).map(|n| format!("u{n}")).collect();
    let usernames: Vec<&str> = usernames.iter().map(String::as_str).collect();
    let mut config = config(&server, &setup.topics, &usernames, &[]);
    config.requests_per_hour = NonZeroU32::new(10).unwrap();
    let outcome = run(&setup, config, waiter).await;
    assert!(outcome.failed_sources.is_empty(), "{:?}", outcome.failed_sources);

    let times = times.lock().unwrap().clone();
    assert_eq!(times.len(), 35, "every account was asked for");
    let hour = Duration::from_secs(3600);
    let most = (0..times.len()).map(|i| times[i..].iter().take_while(|t| **t < times[i] + hour).count()).max().unwrap();
    assert!(most <= 10, "{most} calls in one hour: {times:?}");
    assert!(*times.last().unwrap() > hour * 3, "35 calls at 10 an hour take more than three hours");
    let profiles = support::consume(&setup.broker, &setup.topics.profiles, 35, Duration::from_secs(20)).await;
    assert_eq!(profiles.len(), 35);
}

#[tokio::test]
async fn paging_next_to_another_host_is_not_followed_so_the_token_stays_home() {
    let setup = setup().await;
    let elsewhere = HttpServer::with(|_| Reply::json(200, r#"{"data":[]}"#)).await.unwrap();
    let next = format!("{}/v25.0/{HASHTAG_ID}/recent_media?after=X", elsewhere.url());
    let server = HttpServer::with(move |request| match call(request).as_str() {
        "search:coffee" => Reply::json(200, &format!(r#"{{"data":[{{"id":"{HASHTAG_ID}"}}]}}"#)),
        "recent:-" => Reply::json(200, &format!(r#"{{"data":[{TAGGED_1}],"paging":{{"next":"{next}"}}}}"#)),
        other => Reply::json(400, &graph_error(100, &format!("unexpected call {other}"))),
    })
    .await
    .unwrap();
    let (waiter, _) = Waiter::recording();
    let outcome = run(&setup, config(&server, &setup.topics, &[], &["#Coffee"]), waiter).await;
    assert!(outcome.failed_sources.is_empty(), "{:?}", outcome.failed_sources);
    assert!(elsewhere.requests().is_empty(), "the other host got nothing, and so never saw the token");
    let media = support::consume(&setup.broker, &setup.topics.media, 1, Duration::from_secs(20)).await;
    assert_eq!(media.len(), 1);
}

#[tokio::test]
async fn a_redirect_is_not_followed_so_the_token_stays_home_and_the_source_stops() {
    let setup = setup().await;
    // Another port is another origin: reqwest would have sent it the token in a `Referer`.
    let elsewhere = HttpServer::with(|_| Reply::json(200, r#"{"data":[]}"#)).await.unwrap();
    let target = format!("{}/v25.0/{APP_USER}", elsewhere.url());
    let server = HttpServer::with(move |_| Reply::json(302, "{}").header("location", &target)).await.unwrap();
    let (waiter, recorded) = Waiter::recording();
    let outcome = run(&setup, config(&server, &setup.topics, &["bluebottle"], &["coffee"]), waiter).await;

    assert_eq!(outcome.failed_sources.len(), 1);
    let message = format!("{:#}", outcome.failed_sources[0].1);
    let pointed = format!("a 302 redirect to {}/v25.0/{APP_USER}", elsewhere.url());
    assert!(message.contains(&pointed) && message.contains("INSTAGRAM_GRAPH_BASE_URL"), "{message}");
    assert!(!message.contains(TOKEN), "{message}");
    assert!(elsewhere.requests().is_empty(), "{:?}", elsewhere.requests());
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "a redirect is not retried");
    assert_eq!(requests[0].header("referer"), None);
    assert!(waits(&recorded).is_empty());
}
