//! The local Jetstream against a real WebSocket client (tokio-tungstenite's, as the scraper uses): cursor replay,
//! Jetstream's filters, framing and the faults it can be told to commit.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use testkit::jetstream::{Jetstream, Subscription};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Error, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A `time_us` in the past (2024-09-09), so that cursors at or after it replay.
const T: i64 = 1_725_911_162_329_308;
const ALICE: &str = "did:plc:alice";
const BOB: &str = "did:plc:bob";

fn commit(did: &str, time_us: i64, collection: &str) -> String {
    json!({
        "did": did,
        "time_us": time_us,
        "kind": "commit",
        "commit": {
            "rev": "3l3qo2vutsw2b",
            "operation": "create",
            "collection": collection,
            "rkey": "3l3qo2vuowo2b",
            "record": {"$type": collection, "createdAt": "2024-09-09T19:46:02.102Z"},
            "cid": "bafyreidwaivazkwu67xztlmuobx35hs2lnfh3kolmgfmucldvhd3sgzcqi"
        }
    })
    .to_string()
}

fn identity(did: &str, time_us: i64) -> String {
    json!({"did": did, "time_us": time_us, "kind": "identity", "identity": {
        "did": did, "handle": "someone.bsky.social", "seq": 1409752997, "time": "2024-09-05T06:11:04.870Z"}})
    .to_string()
}

fn account(did: &str, time_us: i64) -> String {
    json!({"did": did, "time_us": time_us, "kind": "account",
        "account": {"active": true, "did": did, "seq": 1409753013, "time": "2024-09-05T06:11:04.870Z"}})
    .to_string()
}

fn url(jetstream: &Jetstream, query: &str) -> String {
    if query.is_empty() { jetstream.url() } else { format!("{}?{query}", jetstream.url()) }
}

async fn connect(jetstream: &Jetstream, query: &str) -> Client {
    tokio_tungstenite::connect_async(url(jetstream, query)).await.unwrap().0
}

/// The next message that is not a ping or pong.
async fn next_message(client: &mut Client) -> Option<Result<Message, Error>> {
    loop {
        match timeout(Duration::from_secs(5), client.next()).await.expect("a message within 5 s") {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => return other,
        }
    }
}

async fn next_text(client: &mut Client) -> String {
    match next_message(client).await {
        Some(Ok(Message::Text(text))) => text.to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

fn time_us(text: &str) -> i64 {
    serde_json::from_str::<Value>(text).unwrap()["time_us"].as_i64().unwrap()
}

/// The `time_us` of each event received, up to and including the one at `last`.
async fn times_until(client: &mut Client, last: i64) -> Vec<i64> {
    let mut times = Vec::new();
    while times.last() != Some(&last) {
        times.push(time_us(&next_text(client).await));
    }
    times
}

/// Asserts that nothing at all (not even a ping) arrives for a while.
async fn assert_silent(client: &mut Client, wait: Duration) {
    if let Ok(message) = timeout(wait, client.next()).await {
        panic!("expected nothing, got {message:?}");
    }
}

async fn wait_for_connections(jetstream: &Jetstream, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while jetstream.connections() != n {
        assert!(Instant::now() < deadline, "{} connections, expected {n}", jetstream.connections());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn http_error(result: Result<impl std::fmt::Debug, Error>) -> (u16, Option<String>, String) {
    match result {
        Err(Error::Http(response)) => (
            response.status().as_u16(),
            response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned()),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        other => panic!("expected an HTTP error, got {other:?}"),
    }
}

#[tokio::test]
async fn jetstream_replays_from_the_cursor_inclusive_then_goes_live() {
    let jetstream = Jetstream::start().await.unwrap();
    for t in 1..=3 {
        jetstream.publish(&commit(ALICE, T + t, "app.bsky.feed.post"));
    }

    let mut replaying = connect(&jetstream, &format!("cursor={}", T + 2)).await;
    let mut live = connect(&jetstream, "").await;
    assert_eq!(times_until(&mut replaying, T + 3).await, [T + 2, T + 3], "the event at the cursor is included");

    let event = commit(ALICE, T + 4, "app.bsky.feed.post");
    jetstream.publish(&event);
    assert_eq!(next_text(&mut replaying).await, event, "the event is sent as published");
    assert_eq!(next_text(&mut live).await, event, "no cursor: live events only");
    assert_eq!(jetstream.connections(), 2);
    assert_eq!(jetstream.requests()[0].cursor, Some(T + 2));
    assert_eq!(jetstream.requests()[1].cursor, None);
}

#[tokio::test]
async fn jetstream_live_tails_a_future_cursor_and_replays_what_is_left_for_an_old_one() {
    let jetstream = Jetstream::start().await.unwrap();
    for t in 1..=3 {
        jetstream.publish(&identity(ALICE, T + t));
    }
    jetstream.trim_before(T + 2);

    let mut old = connect(&jetstream, "cursor=0").await;
    let future = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as i64 + 3_600_000_000;
    let mut future = connect(&jetstream, &format!("cursor={future}")).await;
    assert_eq!(times_until(&mut old, T + 3).await, [T + 2, T + 3], "from the oldest event left");

    jetstream.publish(&identity(ALICE, T + 4));
    assert_eq!(time_us(&next_text(&mut old).await), T + 4);
    assert_eq!(time_us(&next_text(&mut future).await), T + 4, "a future cursor replays nothing");
}

#[tokio::test]
async fn jetstream_filters_each_subscriber_as_jetstream_does() {
    let jetstream = Jetstream::start().await.unwrap();
    let mut prefix_and_did =
        connect(&jetstream, &format!("wantedCollections=app.bsky.feed.*&wantedDids={ALICE}")).await;
    let mut posts = connect(&jetstream, "wantedCollections=app.bsky.feed.post").await;
    let mut everything = connect(&jetstream, "").await;

    jetstream.publish(&commit(ALICE, T + 1, "app.bsky.feed.post"));
    jetstream.publish(&commit(ALICE, T + 2, "app.bsky.feed.like"));
    jetstream.publish(&commit(ALICE, T + 3, "app.bsky.graph.follow"));
    jetstream.publish(&commit(BOB, T + 4, "app.bsky.feed.post"));
    jetstream.publish(&identity(ALICE, T + 5));
    jetstream.publish(&account(BOB, T + 6));
    jetstream.publish(&commit(ALICE, T + 7, "app.bsky.feedgen"));
    jetstream.publish(&commit(ALICE, T + 8, "app.bsky.feed.post"));

    // Identity and account events pass any collection filter; the DID filter applies to every kind; a prefix
    // ends at its dot.
    assert_eq!(times_until(&mut prefix_and_did, T + 8).await, [T + 1, T + 2, T + 5, T + 8]);
    assert_eq!(times_until(&mut posts, T + 8).await, [T + 1, T + 4, T + 5, T + 6, T + 8]);
    assert_eq!(times_until(&mut everything, T + 8).await, (1..=8).map(|t| T + t).collect::<Vec<_>>());
}

#[tokio::test]
async fn jetstream_skips_events_larger_than_max_message_size_bytes() {
    let jetstream = Jetstream::start().await.unwrap();
    let small = identity(ALICE, T + 1);
    let large = json!({"did": ALICE, "time_us": T + 2, "kind": "commit", "commit": {
        "operation": "create", "collection": "app.bsky.feed.post", "rkey": "3l3qo2vuowo2b",
        "record": {"$type": "app.bsky.feed.post", "text": "x".repeat(1000)}}})
    .to_string();
    let limit = small.len() + 10;
    let mut limited = connect(&jetstream, &format!("maxMessageSizeBytes={limit}")).await;
    let mut negative = connect(&jetstream, "maxMessageSizeBytes=-5").await;

    jetstream.publish(&small);
    jetstream.publish(&large);
    jetstream.publish(&identity(ALICE, T + 3));

    assert_eq!(times_until(&mut limited, T + 3).await, [T + 1, T + 3]);
    assert_eq!(times_until(&mut negative, T + 3).await, [T + 1, T + 2, T + 3], "negative means no limit");
    let requests = jetstream.requests();
    assert_eq!(requests[0].max_message_size_bytes, Some(limit));
    assert_eq!(requests[1].max_message_size_bytes, Some(0));
}

#[tokio::test]
async fn jetstream_answers_invalid_subscriptions_with_its_400s() {
    let jetstream = Jetstream::start().await.unwrap();
    let cases = [
        ("cursor=abc", "invalid cursor: abc"),
        ("wantedCollections=app.bsky.feed.po*", "invalid subscriber options: invalid collection: app.bsky.feed.po*"),
        ("wantedCollections=post", "invalid subscriber options: invalid collection: post"),
        ("wantedDids=alice", "invalid subscriber options"),
    ];
    for (query, body) in cases {
        let (status, _, text) = http_error(tokio_tungstenite::connect_async(url(&jetstream, query)).await);
        assert_eq!((status, text.as_str()), (400, body), "{query}");
    }
    let other = jetstream.url().replace("/subscribe", "/firehose");
    assert_eq!(http_error(tokio_tungstenite::connect_async(other).await).0, 404);
    assert_eq!(jetstream.requests().len(), 5);
    assert_eq!(jetstream.connections(), 0);
}

#[tokio::test]
async fn jetstream_fragments_messages_that_the_client_reassembles() {
    let jetstream = Jetstream::start().await.unwrap();
    jetstream.fragment(Some(7));
    // A client that rejects any frame over 16 bytes: it reads these messages only if they come in pieces.
    let config = WebSocketConfig::default().max_frame_size(Some(16));
    let (mut client, _) =
        tokio_tungstenite::connect_async_with_config(jetstream.url(), Some(config), false).await.unwrap();

    // Multi-byte characters get split across frames.
    let event = json!({"did": ALICE, "time_us": T + 1, "kind": "commit", "commit": {"operation": "create",
        "collection": "app.bsky.feed.post", "rkey": "3l3qo2vuowo2b", "record": {"text": "héllo wörld ✓ 🦋"}}})
    .to_string();
    jetstream.publish(&event);
    assert_eq!(next_text(&mut client).await, event);
    let bytes: Vec<u8> = (0..=255).collect();
    jetstream.send_binary(&bytes);
    assert_eq!(next_message(&mut client).await.unwrap().unwrap(), Message::Binary(Bytes::from(bytes)));

    jetstream.fragment(None);
    jetstream.send_raw(&event);
    assert!(matches!(next_message(&mut client).await, Some(Err(Error::Capacity(_)))), "whole, the frame is too big");
}

#[tokio::test]
async fn jetstream_pings_when_told_and_answers_pings() {
    let jetstream = Jetstream::start().await.unwrap();
    let mut client = connect(&jetstream, "").await;
    jetstream.ping_every(Some(Duration::from_millis(50)));
    let ping = timeout(Duration::from_secs(5), client.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(ping, Message::Ping(Bytes::new()));

    jetstream.ping_every(None);
    client.send(Message::Ping(Bytes::from_static(b"are you there"))).await.unwrap();
    loop {
        match timeout(Duration::from_secs(5), client.next()).await.unwrap().unwrap().unwrap() {
            Message::Pong(payload) => break assert_eq!(&payload[..], b"are you there"),
            Message::Ping(_) => continue,
            other => panic!("expected a pong, got {other:?}"),
        }
    }
    assert_silent(&mut client, Duration::from_millis(300)).await;
}

#[tokio::test]
async fn jetstream_drop_connections_ends_the_stream_without_a_close_frame() {
    let jetstream = Jetstream::start().await.unwrap();
    let mut client = connect(&jetstream, "").await;
    jetstream.publish(&identity(ALICE, T + 1));
    assert_eq!(time_us(&next_text(&mut client).await), T + 1);

    jetstream.drop_connections();
    assert_eq!(jetstream.connections(), 0);
    match next_message(&mut client).await {
        None | Some(Err(_)) => {}
        Some(Ok(message)) => panic!("expected the stream to end abruptly, got {message:?}"),
    }
    // The server still takes new subscribers.
    let mut again = connect(&jetstream, &format!("cursor={}", T + 1)).await;
    assert_eq!(time_us(&next_text(&mut again).await), T + 1);
}

#[tokio::test]
async fn jetstream_close_connections_sends_the_close_frame_after_what_was_queued() {
    let jetstream = Jetstream::start().await.unwrap();
    let mut client = connect(&jetstream, "").await;
    wait_for_connections(&jetstream, 1).await;
    jetstream.publish(&identity(ALICE, T + 1));
    jetstream.close_connections(1012, "service restart");

    assert_eq!(time_us(&next_text(&mut client).await), T + 1);
    match next_message(&mut client).await {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!((frame.code, frame.reason.as_str()), (CloseCode::Restart, "service restart"));
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    assert!(next_message(&mut client).await.is_none(), "the stream ends after the close handshake");
    wait_for_connections(&jetstream, 0).await;
}

#[tokio::test]
async fn jetstream_refuses_handshakes_with_the_status_and_retry_after() {
    let jetstream = Jetstream::start().await.unwrap();
    jetstream.refuse_next(2, 429, Some(7));
    for _ in 0..2 {
        let (status, retry_after, _) = http_error(tokio_tungstenite::connect_async(url(&jetstream, "cursor=42")).await);
        assert_eq!((status, retry_after.as_deref()), (429, Some("7")));
    }
    let mut client = connect(&jetstream, "cursor=42").await;
    jetstream.publish(&identity(ALICE, T + 1));
    assert_eq!(time_us(&next_text(&mut client).await), T + 1);
    let requests = jetstream.requests();
    assert_eq!(requests.len(), 3, "refused handshakes are recorded too");
    assert!(requests.iter().all(|r| r.cursor == Some(42) && r.raw_query == "cursor=42"));
}

#[tokio::test]
async fn jetstream_records_each_subscription_query() {
    let jetstream = Jetstream::start().await.unwrap();
    let query = "wantedCollections=app.bsky.feed.post&wantedCollections=app.bsky.graph.*\
                 &wantedDids=did%3Aplc%3Aalice&wantedDids=did:plc:bob&cursor=1725911162329308\
                 &maxMessageSizeBytes=1000000&compress=true";
    let _client = connect(&jetstream, query).await;
    let _plain = connect(&jetstream, "").await;
    assert_eq!(
        jetstream.requests(),
        [
            Subscription {
                cursor: Some(T),
                wanted_collections: vec!["app.bsky.feed.post".into(), "app.bsky.graph.*".into()],
                wanted_dids: vec![ALICE.into(), BOB.into()],
                max_message_size_bytes: Some(1_000_000),
                compress: true,
                require_hello: false,
                path: "/subscribe".into(),
                raw_query: query.into(),
            },
            Subscription {
                cursor: None,
                wanted_collections: vec![],
                wanted_dids: vec![],
                max_message_size_bytes: None,
                compress: false,
                require_hello: false,
                path: "/subscribe".into(),
                raw_query: String::new(),
            },
        ]
    );
}

#[tokio::test]
async fn jetstream_stall_holds_everything_back_until_resumed() {
    let jetstream = Jetstream::start().await.unwrap();
    let mut client = connect(&jetstream, "").await;
    wait_for_connections(&jetstream, 1).await;
    jetstream.stall(true);
    jetstream.ping_every(Some(Duration::from_millis(50)));
    jetstream.publish(&identity(ALICE, T + 1));
    jetstream.send_raw("raw");
    assert_silent(&mut client, Duration::from_millis(400)).await;

    jetstream.stall(false);
    assert_eq!(time_us(&next_text(&mut client).await), T + 1);
    assert_eq!(next_text(&mut client).await, "raw");
}

#[tokio::test]
async fn jetstream_sends_raw_text_to_everyone_unfiltered() {
    let jetstream = Jetstream::start().await.unwrap();
    let mut filtered = connect(&jetstream, &format!("wantedDids={BOB}&maxMessageSizeBytes=5")).await;
    jetstream.send_raw("{\"did\": \"did:plc:alice\", \"time_us\": not json");
    assert_eq!(next_text(&mut filtered).await, "{\"did\": \"did:plc:alice\", \"time_us\": not json");
    let mut late = connect(&jetstream, "cursor=0").await;
    jetstream.publish(&identity(BOB, T + 1));
    assert_eq!(time_us(&next_text(&mut late).await), T + 1, "raw messages are not stored");
}

#[tokio::test]
async fn jetstream_forgets_clients_that_leave() {
    let jetstream = Jetstream::start().await.unwrap();
    let mut polite = connect(&jetstream, "").await;
    let abrupt = connect(&jetstream, "").await;
    wait_for_connections(&jetstream, 2).await;
    polite.close(None).await.unwrap();
    drop(abrupt);
    wait_for_connections(&jetstream, 0).await;
    jetstream.publish(&identity(ALICE, T + 1));
}

#[tokio::test]
async fn jetstream_require_hello_waits_for_an_options_update() {
    let jetstream = Jetstream::start().await.unwrap();
    jetstream.publish(&commit(ALICE, T + 1, "app.bsky.feed.post"));
    jetstream.publish(&commit(ALICE, T + 2, "app.bsky.feed.like"));
    let mut client = connect(&jetstream, &format!("requireHello=true&cursor={}", T + 1)).await;
    assert_silent(&mut client, Duration::from_millis(300)).await;

    let hello = json!({"type": "options_update", "payload": {"wantedCollections": ["app.bsky.feed.like"]}});
    client.send(Message::text(hello.to_string())).await.unwrap();
    assert_eq!(time_us(&next_text(&mut client).await), T + 2, "replay starts after the hello, with its filter");
    jetstream.publish(&commit(ALICE, T + 3, "app.bsky.feed.post"));
    jetstream.publish(&commit(ALICE, T + 4, "app.bsky.feed.like"));
    assert_eq!(time_us(&next_text(&mut client).await), T + 4);
    assert_eq!(jetstream.client_messages(), [hello.to_string()]);

    client.send(Message::text("not json")).await.unwrap();
    match next_message(&mut client).await {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(frame.code, CloseCode::Normal);
            assert!(frame.reason.starts_with("failed to unmarshal subscriber sourced message"), "{frame:?}");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}
