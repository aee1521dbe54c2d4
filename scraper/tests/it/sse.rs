//! The SSE source against a scripted server speaking Mastodon's wire format and a real broker: kept events
//! arrive once, keyed by id, whatever the chunking; bad data lands in the rejects topic with its reason; the
//! source reconnects (with a visible wait, as long as the server asks when it does) after a drop, a stall or
//! a server error, and stops on a refused token, a wrong URL or a redirect, which it does not follow.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use scraper::metrics::Metrics;
use scraper::run::Outcome;
use scraper::secret::{Secret, SecretUrl};
use scraper::source::{Source, Wait, Waiter};
use scraper::sse::{SseConfig, SseSource};
use support::Consumed;
use testkit::Broker;
use testkit::http::{HttpServer, Part, Reply};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const SOURCE: &str = "sse.mastodon";
const TOKEN: &str = "mastodon-test-token";
/// Long enough for any test step: a hang fails the test instead of blocking it.
const PATIENCE: Duration = Duration::from_secs(60);

/// A Mastodon status as the streaming API sends it in an `update` event.
fn status(id: &str) -> String {
    format!(
        r#"{{"id":"{id}","created_at":"2025-01-01T00:00:00.000Z","content":"<p>hi {id}</p>","account":{{"id":"1","acct":"alice"}},"media_attachments":[]}}"#
    )
}

fn event(kind: &str, data: &str) -> String {
    format!("event: {kind}\ndata: {data}\n\n")
}

fn chunk(text: impl AsRef<[u8]>) -> Part {
    Part::Chunk(text.as_ref().to_vec())
}

/// A 200 `text/event-stream` reply made of `body`.
fn sse(body: Vec<Part>) -> Reply {
    let mut reply = Reply::stream(body);
    reply.headers.retain(|(name, _)| name != "content-type");
    reply.header("content-type", "text/event-stream")
}

/// What the server answers once the script is used up: a stream that never sends anything.
fn silence() -> Reply {
    sse(vec![Part::Hang])
}

fn config(server: &HttpServer, topic: &str) -> SseConfig {
    let url = format!("{}/api/v1/streaming/public", server.url());
    SseConfig {
        name: SOURCE.into(),
        source: SOURCE.into(),
        instance: scraper::sse::flags::instance_of(&url).unwrap(),
        url: SecretUrl::new(url),
        token: Some(Secret::new(TOKEN)),
        event_types: vec!["update".into()],
        topic: topic.into(),
        max_event_bytes: 4096,
        stall_timeout: Duration::from_secs(30),
    }
}

/// The source running into the broker, until it stops by itself or `shutdown` is cancelled.
struct Running {
    shutdown: CancellationToken,
    waits: Arc<Mutex<Vec<Wait>>>,
    task: JoinHandle<(Outcome, Metrics)>,
}

impl Running {
    async fn start(broker: &Broker, config: SseConfig, rejects: &str) -> Self {
        let sink = support::sink(broker, &[&config.topic, rejects]).await;
        let (waiter, waits) = Waiter::recording();
        let source: Box<dyn Source> = Box::new(SseSource::new(config, waiter));
        let shutdown = CancellationToken::new();
        let rejects = rejects.to_owned();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { support::run_sources(vec![source], sink, &rejects, shutdown).await }
        });
        Self { shutdown, waits, task }
    }

    fn waits(&self) -> Vec<Wait> {
        self.waits.lock().unwrap().clone()
    }

    /// Waits for the source to stop by itself.
    async fn ended(self) -> (Outcome, Metrics) {
        tokio::time::timeout(PATIENCE, self.task).await.expect("the source stops by itself").unwrap()
    }

    /// Asks the source to stop, and waits for the run to end.
    async fn stop(self) -> (Outcome, Metrics, Vec<Wait>) {
        self.shutdown.cancel();
        let waits = self.waits();
        let (outcome, metrics) =
            tokio::time::timeout(PATIENCE, self.task).await.expect("shutdown ends the run").unwrap();
        (outcome, metrics, waits)
    }
}

fn keys(records: &[Consumed]) -> Vec<String> {
    let mut keys: Vec<String> = records.iter().map(|r| r.key.clone().unwrap_or_default()).collect();
    keys.sort();
    keys
}

fn wait(reason: &str, secs: u64) -> Wait {
    Wait { reason: reason.into(), delay: Duration::from_secs(secs) }
}

#[tokio::test]
async fn every_kept_event_arrives_once_keyed_by_its_id_across_chunks_comments_and_a_dropped_connection() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let first = status("101");
    let (first_head, first_tail) = first.split_at(25);
    let server = HttpServer::scripted(
        vec![
            sse(vec![
                chunk(":thump\n"),
                // One event split across three chunks, mid-field and mid-line.
                chunk("id: 1\nevent: upd"),
                chunk(format!("ate\ndata: {first_head}")),
                chunk(format!("{first_tail}\n\n")),
                // Several events in one chunk, one with `\r\n` line endings, one of a type not kept.
                chunk(format!(
                    "id: 2\n{}id: 3\n{}id: 4\r\nevent: update\r\ndata: {}\r\n\r\n",
                    event("update", &status("102")),
                    event("delete", "103"),
                    status("104"),
                )),
                chunk(":thump\n"),
                chunk(format!("id: 5\n{}", event("status.update", &status("105")))),
                // Cut off by the drop: the SSE spec discards an unfinished event.
                chunk(format!("id: 6\nevent: update\ndata: {}", status("106"))),
                Part::Drop,
            ]),
            sse(vec![
                chunk(format!("id: 7\n{}", event("update", &status("107")))),
                chunk(format!("id: 8\n{}", event("update", &status("108")))),
                Part::Hang,
            ]),
        ],
        silence(),
    )
    .await
    .unwrap();

    let running = Running::start(&broker, config(&server, &topic), &rejects).await;
    let records = support::consume(&broker, &topic, 5, PATIENCE).await;
    let (outcome, metrics, waits) = running.stop().await;

    assert!(outcome.failed_sources.is_empty(), "{:?}", outcome.failed_sources);
    assert_eq!(keys(&records), ["101", "102", "104", "107", "108"]);
    for record in &records {
        let id = record.key.as_deref().unwrap();
        assert_eq!(record.text(), status(id), "the value is the event's data, unmodified");
        assert_eq!(record.header("source"), Some(SOURCE));
        assert_eq!(record.header("content_type"), Some("application/json"));
        assert!(record.header("scraper_version").is_some_and(|v| !v.is_empty()));
        let scraped_at = record.header("scraped_at").unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(scraped_at).is_ok(), "{scraped_at}");
    }
    assert!(support::consume(&broker, &rejects, 0, Duration::from_secs(1)).await.is_empty());
    assert_eq!(waits, [wait("disconnected", 1)], "one reconnect, after the drop");
    assert_eq!(metrics.reconnects_of(SOURCE), 1);
    assert_eq!(metrics.lines_of(SOURCE), 7, "every complete event counts, kept or skipped");
    assert_eq!(metrics.heartbeats.get_or_create(&vec![("source", SOURCE.to_owned())]).get(), 2);

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].path(), "/api/v1/streaming/public");
    assert_eq!(requests[0].header("last-event-id"), None);
    assert_eq!(requests[1].header("last-event-id"), Some("5"), "the id of the last complete event");
    for request in &requests {
        assert_eq!(request.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
        assert_eq!(request.header("accept"), Some("text/event-stream"));
    }
}

#[tokio::test]
async fn bad_data_lands_in_the_rejects_topic_with_the_reason_and_the_events_around_it_arrive() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let oversize = format!(r#"{{"id":"299","content":"{}"}}"#, "x".repeat(3000));
    let server = HttpServer::scripted(
        vec![sse(vec![
            chunk(event("update", &status("201"))),
            chunk(event("update", "<p>not json</p>")),
            chunk(event("update", &status("202"))),
            chunk(event("update", r#"{"content":"no id here"}"#)),
            chunk(event("update", r#""113""#)),
            chunk(event("update", &oversize)),
            chunk(event("update", r#"{"id":"abc"}"#)),
            chunk(event("update", &status("203"))),
            Part::Hang,
        ])],
        silence(),
    )
    .await
    .unwrap();

    let running =
        Running::start(&broker, SseConfig { max_event_bytes: 2048, ..config(&server, &topic) }, &rejects).await;
    let records = support::consume(&broker, &topic, 3, PATIENCE).await;
    let rejected = support::consume(&broker, &rejects, 5, PATIENCE).await;
    let (outcome, _, waits) = running.stop().await;

    assert!(outcome.failed_sources.is_empty(), "{:?}", outcome.failed_sources);
    assert_eq!(keys(&records), ["201", "202", "203"]);
    assert!(waits.is_empty(), "bad data is no reason to reconnect: {waits:?}");
    let reason = |payload: &[u8]| {
        let found = rejected.iter().find(|r| r.payload == payload).unwrap_or_else(|| panic!("{payload:?} rejected"));
        assert_eq!(found.header("source"), Some(SOURCE));
        assert_eq!(found.key, None);
        found.header("error").unwrap().to_owned()
    };
    assert_eq!(rejected.len(), 5);
    assert!(reason(b"<p>not json</p>").contains("not JSON"));
    assert!(reason(br#"{"content":"no id here"}"#).contains("no `id`"));
    assert!(reason(br#""113""#).contains("not an object"));
    assert!(reason(br#"{"id":"abc"}"#).contains("`abc` is not a positive 64-bit integer"));
    let too_large = reason(&oversize.as_bytes()[..1024]);
    assert!(too_large.contains(&format!("{} bytes, over the 2048-byte limit", oversize.len())), "{too_large}");
}

#[tokio::test]
async fn an_event_that_never_ends_is_rejected_by_its_start_and_the_stream_resumes_on_a_new_connection() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let endless = format!("event: update\ndata: {{\"id\":\"399\",\"content\":\"{}", "x".repeat(100 * 1024));
    let server = HttpServer::scripted(
        vec![
            sse(vec![chunk(event("update", &status("301"))), chunk(&endless), Part::Hang]),
            sse(vec![chunk(event("update", &status("302"))), Part::Hang]),
        ],
        silence(),
    )
    .await
    .unwrap();

    let running =
        Running::start(&broker, SseConfig { max_event_bytes: 2048, ..config(&server, &topic) }, &rejects).await;
    let records = support::consume(&broker, &topic, 2, PATIENCE).await;
    let rejected = support::consume(&broker, &rejects, 1, PATIENCE).await;
    let (outcome, _, waits) = running.stop().await;

    assert!(outcome.failed_sources.is_empty(), "{:?}", outcome.failed_sources);
    assert_eq!(keys(&records), ["301", "302"]);
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].payload, endless.as_bytes()[..1024]);
    assert!(rejected[0].header("error").unwrap().contains("dropped to bound memory"));
    assert_eq!(waits, [wait("disconnected", 1)]);
}

#[tokio::test]
async fn a_refused_token_stops_the_source_with_an_error_naming_the_token_variable() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let refused = Reply::json(401, r#"{"error":"The access token is invalid"}"#);
    let server = HttpServer::scripted(vec![], refused).await.unwrap();

    let running = Running::start(&broker, config(&server, &topic), &rejects).await;
    let waits = running.waits.clone();
    let (outcome, _) = running.ended().await;

    let [(name, error)] = &outcome.failed_sources[..] else { panic!("{:?}", outcome.failed_sources) };
    let message = format!("{error:#}");
    assert_eq!(name, SOURCE);
    assert!(message.contains("SSE_BEARER_TOKEN") && message.contains("401"), "{message}");
    assert!(message.contains("The access token is invalid"), "the server's reason is passed on: {message}");
    assert!(!message.contains(TOKEN), "the token never shows: {message}");
    assert!(waits.lock().unwrap().is_empty(), "no retry with a refused token");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_wrong_url_stops_the_source() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let server = HttpServer::scripted(vec![], Reply::json(404, r#"{"error":"Record not found"}"#)).await.unwrap();

    let running = Running::start(&broker, config(&server, &topic), &rejects).await;
    let (outcome, _) = running.ended().await;

    let [(_, error)] = &outcome.failed_sources[..] else { panic!("{:?}", outcome.failed_sources) };
    assert!(format!("{error:#}").contains("check the URL"), "{error:#}");
}

#[tokio::test]
async fn a_redirect_is_not_followed_so_neither_token_reaches_the_other_host_and_the_source_stops() {
    const QUERY_TOKEN: &str = "mastodon-query-token";
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    // Another port is another origin. Were it asked, it would refuse, ending the run either way.
    let elsewhere = HttpServer::with(|_| Reply::json(401, "{}")).await.unwrap();
    // 301 and 307 are what eventsource-client would follow by itself, the others what reqwest would.
    for status in [301, 302, 303, 307, 308] {
        // As Mastodon redirects to a separate streaming host: same path, the query passed on.
        let target = format!("{}/api/v1/streaming/public?access_token={QUERY_TOKEN}", elsewhere.url());
        let server = HttpServer::scripted(vec![], Reply::json(status, "{}").header("location", &target)).await.unwrap();
        let mut config = config(&server, &topic);
        config.url = SecretUrl::new(format!("{}?access_token={QUERY_TOKEN}", config.url.expose()));

        let (outcome, _) = Running::start(&broker, config, &rejects).await.ended().await;

        let [(_, error)] = &outcome.failed_sources[..] else { panic!("{status}: {:?}", outcome.failed_sources) };
        let message = format!("{error:#}");
        let pointed = format!("a {status} redirect to {}/api/v1/streaming/public", elsewhere.url());
        assert!(message.contains(&pointed) && message.contains("set SSE_URL to that URL"), "{message}");
        assert!(!message.contains(QUERY_TOKEN) && !message.contains(TOKEN), "{message}");
        let requests = server.requests();
        assert_eq!(requests.len(), 1, "{status}: a redirect is not retried");
        assert_eq!(requests[0].header("referer"), None);
        assert!(elsewhere.requests().is_empty(), "{status}: {:?}", elsewhere.requests());
    }
}

#[tokio::test]
async fn a_server_error_backs_off_then_the_stream_delivers() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let server = HttpServer::scripted(
        vec![
            Reply::json(503, r#"{"error":"unavailable"}"#),
            sse(vec![chunk(event("update", &status("401"))), Part::Hang]),
        ],
        silence(),
    )
    .await
    .unwrap();

    let running = Running::start(&broker, config(&server, &topic), &rejects).await;
    let records = support::consume(&broker, &topic, 1, PATIENCE).await;
    let (outcome, metrics, waits) = running.stop().await;

    assert!(outcome.failed_sources.is_empty(), "{:?}", outcome.failed_sources);
    assert_eq!(keys(&records), ["401"]);
    assert_eq!(waits, [wait("http_error", 1)]);
    assert_eq!(metrics.reconnects_of(SOURCE), 1);
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_stream_silent_past_the_stall_timeout_is_reconnected() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let server = HttpServer::scripted(
        vec![
            sse(vec![chunk(event("update", &status("501"))), Part::Hang]),
            sse(vec![chunk(":thump\n"), chunk(event("update", &status("502"))), Part::Hang]),
        ],
        silence(),
    )
    .await
    .unwrap();

    let config = SseConfig { stall_timeout: Duration::from_millis(300), ..config(&server, &topic) };
    let running = Running::start(&broker, config, &rejects).await;
    let records = support::consume(&broker, &topic, 2, PATIENCE).await;
    let (outcome, _, waits) = running.stop().await;

    assert!(outcome.failed_sources.is_empty(), "{:?}", outcome.failed_sources);
    assert_eq!(keys(&records), ["501", "502"]);
    assert_eq!(waits.first(), Some(&wait("stalled", 1)), "{waits:?}");
}

#[tokio::test]
async fn a_retry_after_on_429_and_the_streams_retry_field_set_the_waits() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let server = HttpServer::scripted(
        vec![
            Reply::json(429, r#"{"error":"Too many requests"}"#).header("retry-after", "120"),
            sse(vec![chunk(format!("retry: 5000\n{}", event("update", &status("601")))), Part::Drop]),
            sse(vec![chunk(event("update", &status("602"))), Part::Hang]),
        ],
        silence(),
    )
    .await
    .unwrap();

    let running = Running::start(&broker, config(&server, &topic), &rejects).await;
    let records = support::consume(&broker, &topic, 2, PATIENCE).await;
    let (outcome, _, waits) = running.stop().await;

    assert!(outcome.failed_sources.is_empty(), "{:?}", outcome.failed_sources);
    assert_eq!(keys(&records), ["601", "602"]);
    assert_eq!(waits, [wait("rate_limited", 120), wait("disconnected", 5)]);
}

#[tokio::test]
async fn edits_and_deletions_arrive_with_their_event_type_and_a_deletion_is_keyed_by_the_deleted_id() {
    let broker = Broker::shared().await.unwrap();
    let (topic, rejects) = support::topics();
    let edited = status("301").replace("hi 301", "hi 301, edited");
    let server = HttpServer::scripted(
        vec![sse(vec![
            chunk(event("update", &status("301"))),
            chunk(event("status.update", &edited)),
            chunk(event("delete", "301")),
            chunk(event("delete", "\"302\"")),
            chunk(event("delete", "0")),
            chunk(event("notification", r#"{"id":"9"}"#)),
            Part::Hang,
        ])],
        silence(),
    )
    .await
    .unwrap();
    let kept = contract::event::MASTODON_KEPT.iter().map(|kind| kind.to_string()).collect();
    let running = Running::start(&broker, SseConfig { event_types: kept, ..config(&server, &topic) }, &rejects).await;
    let records = support::consume(&broker, &topic, 4, PATIENCE).await;
    let rejected = support::consume(&broker, &rejects, 1, PATIENCE).await;
    running.stop().await;

    let seen: Vec<(Option<&str>, &str, String)> =
        records.iter().map(|r| (r.header("sse_event"), r.key.as_deref().unwrap(), r.text())).collect();
    assert_eq!(
        seen,
        [
            (Some("update"), "301", status("301")),
            (Some("status.update"), "301", edited.clone()),
            (Some("delete"), "301", "301".to_owned()),
            (Some("delete"), "302", "\"302\"".to_owned()),
        ],
        "in stream order, one partition per id"
    );
    let instance = scraper::sse::flags::instance_of(&server.url()).unwrap();
    assert!(records.iter().all(|r| r.header("instance") == Some(instance.as_str())), "{records:?}");
    assert_eq!(rejected.len(), 1, "a deletion of id 0 is rejected: {rejected:?}");
    assert!(rejected[0].header("error").unwrap().contains("is 0"), "{:?}", rejected[0].header("error"));
}
