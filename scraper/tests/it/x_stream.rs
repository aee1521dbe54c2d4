//! The X stream source against a local server that speaks X's wire format (chunked NDJSON, `\r\n`
//! heartbeats, error lines, problem bodies) and a real broker: every valid line arrives exactly once, bad
//! lines land in rejects with their reason, and reconnects wait as X documents (asserted on the delays the
//! source chose, not on the clock).

use crate::support;

use std::num::NonZeroU32;
use std::time::Duration;

use scraper::source::{Source, Wait, Waiter};
use scraper::x::stream::{self, Endpoint, XStream, XStreamConfig};
use testkit::Broker;
use testkit::http::{HttpServer, Part, Reply};
use tokio_util::sync::CancellationToken;

pub(crate) const TOKEN: &str = "test-bearer-token";

pub(crate) fn post(id: u64) -> String {
    format!(
        r#"{{"data":{{"id":"{id}","text":"post {id} \u00e9","author_id":"2244994945","created_at":"2025-06-01T14:03:11.000Z","edit_history_tweet_ids":["{id}"]}},"includes":{{"users":[{{"id":"2244994945","username":"XDevelopers","name":"Developers"}}]}}}}"#
    )
}

pub(crate) fn chunk(text: &str) -> Part {
    Part::Chunk(text.as_bytes().to_vec())
}

pub(crate) fn config(server: &HttpServer, topic: &str) -> XStreamConfig {
    XStreamConfig {
        base_url: server.url(),
        token: scraper::secret::Secret::new(TOKEN),
        endpoint: Endpoint::Sample,
        tweet_fields: stream::DEFAULT_TWEET_FIELDS.into(),
        expansions: stream::DEFAULT_EXPANSIONS.into(),
        user_fields: stream::DEFAULT_USER_FIELDS.into(),
        topic: topic.into(),
        stall_timeout: Duration::from_millis(500),
        max_line_bytes: 4096,
        connections_per_15_min: NonZeroU32::new(1000).unwrap(),
        rules: None,
        rules_dry_run: false,
        backfill_minutes: 0,
        resume_from: None,
    }
}

fn between(wait: &Wait, reason: &str, low: f64, high: f64) -> bool {
    let secs = wait.delay.as_secs_f64();
    wait.reason == reason && secs >= low && secs <= high
}

#[tokio::test]
async fn every_valid_line_arrives_once_through_splits_heartbeats_errors_drops_and_silence() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;

    let (p1, p2, p3, p4, p5, p6, p7, p8) =
        (post(101), post(102), post(103), post(104), post(105), post(106), post(107), post(108));
    let (head, tail) = p2.split_at(40);
    let disconnect = r#"{"errors":[{"title":"operational-disconnect","disconnect_type":"UpstreamOperationalDisconnect","detail":"This stream has been disconnected upstream for operational reasons.","type":"https://api.twitter.com/2/problems/operational-disconnect"}]}"#;
    let other_error = r#"{"errors":[{"title":"ConnectionException","detail":"A transient notice."}]}"#;
    let replies = vec![
        // 1: a line split across chunks, many lines in one chunk, heartbeats, an error line, then X's
        //    operational disconnect: reconnect at once.
        Reply::stream(vec![
            chunk(&format!("{p1}\r\n")),
            chunk(head),
            chunk(&format!("{tail}\r\n\r\n{p3}\r\n{other_error}\r\n")),
            chunk("\r\n"),
            chunk(&format!("{disconnect}\r\n")),
            Part::Hang,
        ]),
        // 2: one line, then the connection drops mid-line.
        Reply::stream(vec![chunk(&format!("{p4}\r\n")), chunk(&p5[..30]), Part::Drop]),
        // 3: connected, then silence past the stall timeout.
        Reply::stream(vec![Part::Hang]),
        // 4: too many connections.
        Reply::json(
            429,
            r#"{"title":"ConnectionException","detail":"This stream is currently at the maximum allowed connection limit.","connection_issue":"TooManyConnections","type":"https://api.twitter.com/2/problems/streaming-connection"}"#,
        ),
        // 5: a server error.
        Reply::json(
            503,
            r#"{"title":"Service Unavailable","detail":"Service Unavailable","type":"about:blank","status":503}"#,
        ),
        // 6: data again (the line cut off before is not resent by X), then a clean end.
        Reply::stream(vec![chunk(&format!("{p5}\r\n{p6}\r\n")), chunk(&format!("{p7}\r\n\r\n{p8}\r\n"))]),
        // 7: the token was revoked.
        Reply::json(401, r#"{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}"#),
    ];
    let server = HttpServer::scripted(replies, Reply::stream(vec![Part::Hang])).await.unwrap();
    let (waiter, waits) = Waiter::recording();
    let source: Box<dyn Source> = Box::new(XStream::new(config(&server, &topic), waiter));

    let run = support::run_sources(vec![source], sink, &rejects, CancellationToken::new());
    let (outcome, metrics) =
        tokio::time::timeout(Duration::from_secs(60), run).await.expect("the source stops on the 401");

    let (failed, error) = outcome.failed_sources.first().expect("the 401 stops the source");
    assert_eq!(failed, "x.sample");
    let message = format!("{error:#}");
    assert!(message.contains("401") && message.contains("X_BEARER_TOKEN"), "{message}");

    let ids = ["101", "102", "103", "104", "105", "106", "107", "108"];
    let produced = support::consume(&broker, &topic, ids.len(), Duration::from_secs(30)).await;
    let mut keys: Vec<String> = produced.iter().map(|m| m.key.clone().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, ids, "every valid line exactly once");
    for message in &produced {
        let id: u64 = message.key.as_ref().unwrap().parse().unwrap();
        assert_eq!(message.text(), post(id), "the line goes to Kafka byte for byte");
        assert_eq!(message.header("source"), Some("x.sample"));
        assert_eq!(message.header("content_type"), Some("application/json"));
        assert!(message.header("scraped_at").is_some_and(|at| at.ends_with('Z')));
        assert!(message.header("scraper_version").is_some());
    }

    let rejected = support::consume(&broker, &rejects, 1, Duration::from_secs(10)).await;
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].payload, p5.as_bytes()[..30].to_vec());
    assert!(rejected[0].header("error").unwrap().contains("truncated"), "{:?}", rejected[0].headers);

    let waits = waits.lock().unwrap().clone();
    assert_eq!(waits.len(), 6, "{waits:#?}");
    assert!(between(&waits[0], "disconnected", 0.0, 0.0), "operational disconnect: at once; {waits:#?}");
    assert!(between(&waits[1], "disconnected", 0.0, 0.0), "dropped mid-line: at once; {waits:#?}");
    assert!(between(&waits[2], "stalled", 0.25, 0.275), "silence: linear from 250 ms; {waits:#?}");
    assert!(between(&waits[3], "rate_limited", 60.0, 66.0), "429: from 60 s; {waits:#?}");
    assert!(between(&waits[4], "http_error", 5.0, 5.5), "503: from 5 s; {waits:#?}");
    assert!(between(&waits[5], "disconnected", 0.0, 0.0), "a clean end after data: at once; {waits:#?}");

    let requests = server.requests();
    assert_eq!(requests.len(), 7);
    for request in &requests {
        assert_eq!(request.path(), "/2/tweets/sample/stream");
        assert_eq!(request.header("authorization"), Some(&*format!("Bearer {TOKEN}")));
        assert_eq!(request.query("tweet.fields").as_deref(), Some(stream::DEFAULT_TWEET_FIELDS));
        assert_eq!(request.query("expansions").as_deref(), Some("author_id"));
        assert_eq!(request.query("user.fields").as_deref(), Some(stream::DEFAULT_USER_FIELDS));
    }
    assert_eq!(metrics.heartbeats.get_or_create(&vec![("source", "x.sample".to_owned())]).get(), 3);
    assert_eq!(metrics.reconnects_of("x.sample"), 6);
}

#[tokio::test]
async fn each_bad_line_lands_in_rejects_with_its_reason_and_the_lines_around_it_arrive() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;

    let overlong = format!(r#"{{"data":{{"id":"9","text":"{}"}}}}"#, "x".repeat(5000));
    let mut body = Vec::new();
    for line in [
        post(1).into_bytes(),
        b"Hello, Kafka".to_vec(),
        post(2).into_bytes(),
        b"{\"data\":{\"id\":\"3\",\"text\":\"\xff\xfe\"}}".to_vec(),
        post(4).into_bytes(),
        overlong.clone().into_bytes(),
        post(5).into_bytes(),
        br#"{"data":{"text":"no id"}}"#.to_vec(),
        br#"{"data":{"id":"6","text":"trunc"#.to_vec(),
        post(7).into_bytes(),
    ] {
        body.extend_from_slice(&line);
        body.extend_from_slice(b"\r\n");
    }
    let parts = body.chunks(777).map(|c| Part::Chunk(c.to_vec())).collect();
    let replies = vec![
        Reply::stream(parts),
        Reply::json(401, r#"{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}"#),
    ];
    let server = HttpServer::scripted(replies, Reply::stream(vec![Part::Hang])).await.unwrap();
    let (waiter, _) = Waiter::recording();
    let source: Box<dyn Source> = Box::new(XStream::new(config(&server, &topic), waiter));
    let run = support::run_sources(vec![source], sink, &rejects, CancellationToken::new());
    let (outcome, _) = tokio::time::timeout(Duration::from_secs(60), run).await.unwrap();
    assert_eq!((outcome.forwarded.accepted, outcome.forwarded.rejected), (5, 5));

    let produced = support::consume(&broker, &topic, 5, Duration::from_secs(30)).await;
    let mut keys: Vec<String> = produced.iter().map(|m| m.key.clone().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, ["1", "2", "4", "5", "7"]);

    let rejected = support::consume(&broker, &rejects, 5, Duration::from_secs(30)).await;
    let reasons: Vec<&str> = rejected.iter().map(|m| m.header("error").unwrap()).collect();
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    assert!(reasons[0].starts_with("payload is not JSON"), "{reasons:?}");
    assert!(reasons[1].starts_with("payload is not UTF-8"), "{reasons:?}");
    assert!(reasons[2].contains("over the 4096-byte limit"), "{reasons:?}");
    assert_eq!(reasons[3], "payload has no `data.id`");
    assert!(reasons[4].starts_with("payload is not JSON"), "a truncated line: {reasons:?}");
    assert_eq!(rejected[0].payload, b"Hello, Kafka");
    assert_eq!(rejected[1].payload, b"{\"data\":{\"id\":\"3\",\"text\":\"\xff\xfe\"}}", "bytes kept exactly");
    assert_eq!(rejected[2].payload, overlong.as_bytes()[..1024].to_vec(), "the overlong line's first KiB");
    for message in &rejected {
        assert_eq!(message.key, None);
        assert_eq!(message.header("source"), Some("x.sample"));
    }
}

#[tokio::test]
async fn connection_attempts_stay_inside_the_quota() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;
    let unavailable = Reply::json(503, r#"{"title":"Service Unavailable"}"#);
    let replies = vec![
        unavailable.clone(),
        unavailable.clone(),
        unavailable,
        Reply::json(401, r#"{"title":"Unauthorized","detail":"Unauthorized"}"#),
    ];
    let server = HttpServer::scripted(replies, Reply::stream(vec![Part::Hang])).await.unwrap();
    let mut config = config(&server, &topic);
    config.connections_per_15_min = NonZeroU32::new(2).unwrap();
    let (waiter, waits) = Waiter::recording();
    let source: Box<dyn Source> = Box::new(XStream::new(config, waiter));
    let run = support::run_sources(vec![source], sink, &rejects, CancellationToken::new());
    tokio::time::timeout(Duration::from_secs(60), run).await.unwrap();

    let waits = waits.lock().unwrap().clone();
    let reasons: Vec<&str> = waits.iter().map(|w| w.reason.as_str()).collect();
    // Two attempts fit the burst; the third waits for the quota (one attempt per 450 s), then its 503 backs
    // off again.
    assert_eq!(
        reasons,
        ["http_error", "http_error", "connection_quota", "http_error", "connection_quota"],
        "{waits:#?}"
    );
    assert!(between(&waits[2], "connection_quota", 400.0, 450.0), "{waits:#?}");
}

#[tokio::test]
async fn the_filtered_stream_syncs_its_rules_before_connecting() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;
    let line =
        format!(r#"{{"data":{{"id":"77","text":"cat"}},"matching_rules":[{{"id":"1","tag":"cats"}}]}}{}"#, "\r\n");
    let mut streamed = false;
    let server = HttpServer::with(move |request| match (request.method.as_str(), request.path()) {
        ("GET", "/2/tweets/search/stream/rules") => Reply::json(200, r#"{"meta":{"sent":"2025-06-01T00:00:00.000Z","result_count":0}}"#),
        ("POST", "/2/tweets/search/stream/rules") => Reply::json(
            201,
            r#"{"data":[{"value":"cat has:images","tag":"cats","id":"1"}],"meta":{"sent":"2025-06-01T00:00:00.000Z","summary":{"created":1,"not_created":0,"valid":1,"invalid":0}}}"#,
        ),
        ("GET", "/2/tweets/search/stream") if !streamed => {
            streamed = true;
            Reply::stream(vec![Part::Chunk(line.clone().into_bytes())])
        }
        _ => Reply::json(401, r#"{"title":"Unauthorized","detail":"Unauthorized","status":401}"#),
    })
    .await
    .unwrap();
    let mut config = config(&server, &topic);
    config.endpoint = Endpoint::Search;
    config.rules = Some(vec![scraper::x::rules::Rule { value: "cat has:images".into(), tag: Some("cats".into()) }]);
    let (waiter, _) = Waiter::recording();
    let source: Box<dyn Source> = Box::new(XStream::new(config, waiter));
    let run = support::run_sources(vec![source], sink, &rejects, CancellationToken::new());
    let (outcome, _) = tokio::time::timeout(Duration::from_secs(60), run).await.unwrap();
    assert_eq!(outcome.forwarded.accepted, 1);

    let requests = server.requests();
    let calls: Vec<(String, String)> = requests.iter().map(|r| (r.method.clone(), r.path().to_owned())).collect();
    assert_eq!(
        calls[..3],
        [
            ("GET".to_owned(), "/2/tweets/search/stream/rules".to_owned()),
            ("POST".to_owned(), "/2/tweets/search/stream/rules".to_owned()),
            ("GET".to_owned(), "/2/tweets/search/stream".to_owned()),
        ]
    );
    let added: serde_json::Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(added, serde_json::json!({"add": [{"value": "cat has:images", "tag": "cats"}]}));
    let produced = support::consume(&broker, &topic, 1, Duration::from_secs(30)).await;
    assert_eq!(produced[0].header("source"), Some("x.search"));
}

#[tokio::test]
async fn sample10_asks_for_its_partition() {
    let server = HttpServer::scripted(
        vec![Reply::json(401, r#"{"title":"Unauthorized","detail":"Unauthorized","status":401}"#)],
        Reply::stream(vec![Part::Hang]),
    )
    .await
    .unwrap();
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;
    let mut config = config(&server, &topic);
    config.endpoint = Endpoint::Sample10 { partition: 7 };
    let (waiter, _) = Waiter::recording();
    let source: Box<dyn Source> = Box::new(XStream::new(config, waiter));
    support::run_sources(vec![source], sink, &rejects, CancellationToken::new()).await;
    let request = &server.requests()[0];
    assert_eq!(request.path(), "/2/tweets/sample10/stream");
    assert_eq!(request.query("partition").as_deref(), Some("7"));
}

#[tokio::test]
async fn a_rules_request_that_fails_for_now_is_retried_with_backoff() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let sink = support::sink(&broker, &[&topic, &rejects]).await;
    let mut failures = 1;
    let server = HttpServer::with(move |request| match (request.method.as_str(), request.path()) {
        ("GET", "/2/tweets/search/stream/rules") if failures > 0 => {
            failures -= 1;
            Reply::json(503, r#"{"title":"Service Unavailable","status":503}"#)
        }
        ("GET", "/2/tweets/search/stream/rules") => {
            Reply::json(200, r#"{"data":[{"id":"1","value":"cat"}],"meta":{"result_count":1}}"#)
        }
        _ => Reply::json(401, r#"{"title":"Unauthorized","detail":"Unauthorized","status":401}"#),
    })
    .await
    .unwrap();
    let mut config = config(&server, &topic);
    config.endpoint = Endpoint::Search;
    config.rules = Some(vec![scraper::x::rules::Rule { value: "cat".into(), tag: None }]);
    let (waiter, waits) = Waiter::recording();
    let source: Box<dyn Source> = Box::new(XStream::new(config, waiter));
    let (outcome, _) = support::run_sources(vec![source], sink, &rejects, CancellationToken::new()).await;

    let waits = waits.lock().unwrap().clone();
    assert_eq!(waits.len(), 1, "{waits:#?}");
    assert!(between(&waits[0], "rules_http_error", 5.0, 5.5), "{waits:#?}");
    let paths: Vec<String> = server.requests().iter().map(|r| r.path().to_owned()).collect();
    assert_eq!(paths, ["/2/tweets/search/stream/rules", "/2/tweets/search/stream/rules", "/2/tweets/search/stream"]);
    assert!(format!("{:#}", outcome.failed_sources[0].1).contains("X_BEARER_TOKEN"), "the stream's 401 stops it");
}

#[tokio::test]
async fn a_redirect_is_not_followed_so_the_bearer_token_stays_home_and_the_source_stops() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    // Another port is another origin. Were it asked, it would refuse, ending the run either way.
    let elsewhere = HttpServer::with(|_| Reply::json(401, r#"{"title":"Unauthorized"}"#)).await.unwrap();
    for (endpoint, status, refused) in [
        (Endpoint::Sample, 307, "the X stream /2/tweets/sample/stream answered with a 307 redirect"),
        (Endpoint::Search, 302, "X's rules endpoint answered with a 302 redirect"),
    ] {
        let sink = support::sink(&broker, &[&topic, &rejects]).await;
        let target = format!("{}/2/tweets/elsewhere", elsewhere.url());
        let server = HttpServer::with(move |_| Reply::json(status, "{}").header("location", &target)).await.unwrap();
        let mut config = config(&server, &topic);
        config.endpoint = endpoint;
        if endpoint == Endpoint::Search {
            config.rules = Some(vec![scraper::x::rules::Rule { value: "cat".into(), tag: None }]);
        }
        let (waiter, waits) = Waiter::recording();
        let source: Box<dyn Source> = Box::new(XStream::new(config, waiter));
        let run = support::run_sources(vec![source], sink, &rejects, CancellationToken::new());
        let (outcome, _) = tokio::time::timeout(Duration::from_secs(60), run).await.unwrap();

        let [(_, error)] = &outcome.failed_sources[..] else { panic!("{status}: {:?}", outcome.failed_sources) };
        let message = format!("{error:#}");
        let pointed = format!("{refused} to {}/2/tweets/elsewhere", elsewhere.url());
        assert!(message.contains(&pointed) && message.contains("X_API_BASE_URL"), "{message}");
        assert!(!message.contains(TOKEN), "{message}");
        assert!(waits.lock().unwrap().is_empty(), "a redirect is not retried");
        let requests = server.requests();
        assert_eq!(requests.len(), 1, "a redirect is not retried");
        assert_eq!(requests[0].header("referer"), None);
        assert!(elsewhere.requests().is_empty(), "{status}: {:?}", elsewhere.requests());
    }
}
