//! The `inserter` binary with poison records on a real broker: each record the database refuses is isolated
//! and dead-lettered with its SQLSTATE while every valid record around it lands and the member keeps going;
//! values no index can hold are left out and counted; a missing grant stops the inserter naming it; batches
//! close on bytes; and after a cooperative revoke while paused, the partitions kept resume.

use crate::support;

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::message::{BorrowedHeaders, Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use serde_json::{Value, json};
use support::{
    Rig, fixture_json, free_addr, http_get, instagram_message, metric, status_message, tweet_line, tweet_message,
};
use testkit::{Broker, Process, TestMessage, unique_name};

const TWEETS: &str = "SELECT count(*) FROM twitter_data";
const DEAD_LETTERS: &str = "SELECT count(*) FROM ingest_errors";

fn stored_offsets_sql(group: &str) -> String {
    format!("SELECT coalesce(sum(next_offset), 0)::bigint FROM kafka_offsets WHERE consumer_group = '{group}'")
}

/// An X stream line for post `id` by `author` (named `name` in `includes.users`).
fn x_post(id: u64, author: u64, name: &str) -> Value {
    let mut post: Value = serde_json::from_str(&tweet_line(id)).unwrap();
    post["data"]["author_id"] = json!(author.to_string());
    let user = &mut post["includes"]["users"][0];
    user["id"] = json!(author.to_string());
    user["username"] = json!(format!("author{author}"));
    user["name"] = json!(name);
    post
}

/// An X record with `value` as its payload and `source` as its `source` header.
fn x_record(id: u64, value: &[u8], source: &[u8]) -> TestMessage {
    TestMessage {
        key: Some(id.to_string().into_bytes()),
        value: Some(value.to_vec()),
        headers: vec![("source".into(), source.to_vec()), ("scraped_at".into(), b"2025-06-01T12:00:05Z".to_vec())],
        partition: None,
    }
}

fn x_json(id: u64, post: &Value) -> TestMessage {
    x_record(id, post.to_string().as_bytes(), b"x.sample")
}

/// A record whose headers are given as raw bytes, names included.
struct RawRecord {
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Adds a header whose name is any bytes (rdkafka's own `insert` takes a `&str` name): through librdkafka's
/// `rd_kafka_header_add`, on the headers' pointer that `as_borrowed` exposes.
fn with_raw_header(headers: OwnedHeaders, name: &[u8], value: &[u8]) -> OwnedHeaders {
    use rdkafka::bindings as rd;
    let ptr = std::ptr::from_ref::<BorrowedHeaders>(headers.as_borrowed()).cast_mut().cast::<rd::rd_kafka_headers_t>();
    // SAFETY: `ptr` is the live, writable header list `headers` owns (`as_borrowed` is a cast of it); librdkafka
    // copies the name and value, whose lengths are given.
    let err = unsafe {
        rd::rd_kafka_header_add(
            ptr,
            name.as_ptr().cast(),
            name.len() as isize,
            value.as_ptr().cast(),
            value.len() as isize,
        )
    };
    assert_eq!(err, rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR);
    headers
}

/// Produces `records` in order to partition 0 of `topic`, in record batches as the scraper produces.
async fn produce_raw(broker: &Broker, topic: &str, records: Vec<RawRecord>) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let mut deliveries = Vec::new();
    for record in &records {
        let mut headers = OwnedHeaders::new();
        for (name, value) in &record.headers {
            headers = match std::str::from_utf8(name) {
                Ok(name) => headers.insert(Header { key: name, value: Some(value) }),
                Err(_) => with_raw_header(headers, name, value),
            };
        }
        let mut message: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(topic).key(record.key.as_slice()).headers(headers).partition(0);
        if let Some(value) = &record.value {
            message = message.payload(value.as_slice());
        }
        deliveries.push(producer.send(message, Duration::from_secs(10)));
    }
    for delivery in deliveries {
        delivery.await.map_err(|(e, _)| e).unwrap();
    }
}

async fn wait_for(db: &DatabaseConnection, sql: &str, expected: i64, timeout: Duration, processes: &[&Process]) {
    let deadline = Instant::now() + timeout;
    loop {
        let now = support::count(db, sql).await;
        if now >= expected {
            return;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = processes.iter().map(|p| p.log()).collect();
            panic!("{sql}: {now} of {expected} after {timeout:?}; logs:\n{}", logs.join("\n-----\n"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `pending=` of a progress line.
fn pending_of(line: &str) -> Option<usize> {
    if !line.contains(" progress ") {
        return None;
    }
    line.split_whitespace().find_map(|field| field.strip_prefix("pending="))?.parse().ok()
}

async fn text(db: &DatabaseConnection, sql: &str) -> Option<String> {
    let row = db.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), sql)).await.unwrap()?;
    row.try_get_by_index::<Option<String>>(0).unwrap()
}

// Ids of the poison test's records on the X topic.
const VALID_BY_7001: u64 = 201;
const VALID_BY_7002: u64 = 202;
/// A valid post, then a re-scrape of it (same `scraped_at`) that the database refuses.
const VALID_THEN_REFUSED: u64 = 203;
const NUL_IN_SOURCE: u64 = 301;
const NUL_BEFORE_SOURCE: u64 = 302;
const LONG_HASHTAG: u64 = 303;
const NEGATIVE_LIKES: u64 = 304;
const NUL_IN_JSON: u64 = 305;
const BINARY_HEADER_NAME: u64 = 306;
const TOMBSTONE_BINARY_HEADER_NAME: u64 = 307;

#[tokio::test]
async fn one_of_each_poison_record_is_isolated_and_every_valid_record_lands_while_the_member_keeps_going() {
    let rig = Rig::start(1).await;
    rig.broker.create_topic(&rig.statuses_topic, 1).await.unwrap();
    rig.broker.create_topic(&rig.instagram_media_topic, 1).await.unwrap();

    // 90 valid posts, three more (by authors 7001 and 7002, and post 203, all of whom poison records below
    // name too), the poison records, then 90 more valid posts.
    rig.produce_tweets(1..=90).await;
    let valid_ones = vec![
        x_json(VALID_BY_7001, &x_post(VALID_BY_7001, 7001, "Valid 7001")),
        x_json(VALID_BY_7002, &x_post(VALID_BY_7002, 7002, "Valid 7002")),
        tweet_message(VALID_THEN_REFUSED),
    ];
    rig.broker.produce(&rig.topic, valid_ones).await.unwrap();
    let long_tag = "a".repeat(3_000);
    let mut long_hashtag = x_post(LONG_HASHTAG, 1_003, "Author 1003");
    long_hashtag["data"]["entities"]["hashtags"] = json!([{"start": 0, "end": 3001, "tag": long_tag}, {"tag": "rust"}]);
    let mut negative = x_post(NEGATIVE_LIKES, 7001, "Poison 7001");
    negative["data"]["public_metrics"]["like_count"] = json!(-1);
    let mut refused_rescrape: Value = serde_json::from_str(&tweet_line(VALID_THEN_REFUSED)).unwrap();
    refused_rescrape["data"]["public_metrics"]["like_count"] = json!(-5);
    let nul_in_json = tweet_line(NUL_IN_JSON).replace("post 305", r"post \u0000 305");
    let poisons = vec![
        x_record(NUL_IN_SOURCE, x_post(NUL_IN_SOURCE, 7002, "Poison 7002").to_string().as_bytes(), b"x.sample\0"),
        x_record(NUL_BEFORE_SOURCE, tweet_line(NUL_BEFORE_SOURCE).as_bytes(), b"\0x.sample"),
        x_json(LONG_HASHTAG, &long_hashtag),
        x_json(NEGATIVE_LIKES, &negative),
        x_json(VALID_THEN_REFUSED, &refused_rescrape),
        x_record(NUL_IN_JSON, nul_in_json.as_bytes(), b"x.sample"),
    ];
    rig.broker.produce(&rig.topic, poisons).await.unwrap();
    let binary_name = |id: u64, value: Option<Vec<u8>>| RawRecord {
        key: id.to_string().into_bytes(),
        value,
        headers: vec![(b"source".to_vec(), b"x.sample".to_vec()), (b"trace\xff\xfe".to_vec(), b"1".to_vec())],
    };
    let binary_names = vec![
        binary_name(BINARY_HEADER_NAME, Some(tweet_line(BINARY_HEADER_NAME).into_bytes())),
        binary_name(TOMBSTONE_BINARY_HEADER_NAME, None),
    ];
    produce_raw(&rig.broker, &rig.topic, binary_names).await;
    rig.produce_tweets(91..=180).await;

    let mut status = fixture_json("mastodon/status.json");
    status["tags"] = json!([
        {"name": "t".repeat(3_000), "url": "https://x/tags/t"},
        {"name": "RustLang", "url": "https://x/tags/rustlang"}
    ]);
    let statuses = vec![
        status_message(&status, "2024-11-21T14:15:00Z"),
        status_message(&fixture_json("mastodon/minimal.json"), "2024-11-21T14:15:00Z"),
    ];
    rig.broker.produce(&rig.statuses_topic, statuses).await.unwrap();
    let mut media = fixture_json("instagram/graph_media.json");
    media["caption"] = json!(format!("Sunday #Coffee #{}", "東".repeat(3_000)));
    let owned = [("source", "instagram.graph.business_discovery"), ("instagram_owner_id", "17841405309211844")];
    let media = vec![instagram_message(&media, "2025-06-03T09:00:00Z", &owned)];
    rig.broker.produce(&rig.instagram_media_topic, media).await.unwrap();

    let group = unique_name("group");
    let addr = free_addr().to_string();
    // One batch for all: the poison records share it with the valid records around them.
    let mut inserter = rig.inserter(&group, &["--metrics-addr", &addr, "--batch-timeout", "2s"]);
    let x_records = 180 + 3 + 6 + 2;
    let all_records = x_records + 2 + 1;
    rig.wait_for_count(&stored_offsets_sql(&group), all_records, Duration::from_secs(60), &inserter).await;

    // The member keeps going: posts produced after the poison records land too.
    rig.produce_tweets(181..=200).await;
    rig.wait_for_count(&stored_offsets_sql(&group), all_records + 20, Duration::from_secs(30), &inserter).await;
    let health = http_get(&addr, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"), "{health}\n{}", inserter.log());
    let metrics = http_get(&addr, "/metrics");
    inserter.signal(libc::SIGTERM);
    assert!(inserter.wait(Duration::from_secs(20)).await.unwrap().success(), "{}", inserter.log());
    let log = inserter.log();
    assert!(!log.contains("panicked"), "{log}");

    // The valid posts, and those whose only fault was an overlong hashtag or an odd header name.
    let landed = "SELECT count(*) FROM twitter_data WHERE tweet_id <= 202 OR tweet_id IN (303, 306)";
    assert_eq!(rig.count(landed).await, 200 + 2 + 2, "{log}");
    let refused = "SELECT count(*) FROM twitter_data WHERE tweet_id IN (301, 302, 304, 305, 307)";
    assert_eq!(rig.count(refused).await, 0, "no poison record became a row: {log}");
    let hashtags =
        text(rig.conn(), "SELECT array_to_string(hashtags, ',') FROM twitter_data WHERE tweet_id = 303").await;
    assert_eq!(hashtags.as_deref(), Some("rust"), "the overlong hashtag is left out, the rest kept");
    let raw_tag = "SELECT length(raw->'data'->'entities'->'hashtags'->0->>'tag')::bigint FROM twitter_data \
                   WHERE tweet_id = 303";
    assert_eq!(rig.count(raw_tag).await, 3_000, "raw keeps it whole");

    // Each poison record dead-lettered once, with its reason.
    let dead_letter = |id: u64| format!("SELECT string_agg(error, ' | ') FROM ingest_errors WHERE key = '{id}'");
    let reasons = [
        (NUL_IN_SOURCE, "database refused: SQLSTATE 22021"),
        (NUL_BEFORE_SOURCE, r"no mapping for source `\0x.sample`"),
        (NEGATIVE_LIKES, "database refused: SQLSTATE 23514"),
        (NEGATIVE_LIKES, "twitter_data_like_count_check"),
        (VALID_THEN_REFUSED, "database refused: SQLSTATE 23514"),
        (NUL_IN_JSON, "NUL character"),
        (TOMBSTONE_BINARY_HEADER_NAME, "tombstone"),
    ];
    for (id, reason) in reasons {
        let error = text(rig.conn(), &dead_letter(id)).await;
        assert!(error.as_deref().is_some_and(|e| e.contains(reason)), "record {id}: `{reason}` in {error:?}\n{log}");
    }
    assert_eq!(rig.count(DEAD_LETTERS).await, 6, "{log}");
    let binary_name_kept =
        r"SELECT count(*) FROM ingest_errors WHERE key = '307' AND jsonb_exists(headers, 'trace\xff\xfe')";
    assert_eq!(rig.count(binary_name_kept).await, 1, "a header name that is not UTF-8 is kept escaped");
    assert_eq!(rig.count("SELECT count(*) FROM twitter_users WHERE name LIKE 'Poison%'").await, 0, "{log}");

    // Mastodon and Instagram: the rows land without the overlong tags.
    let status_tags = "SELECT array_to_string(tags, ',') FROM mastodon_statuses WHERE id = 113512893421773000";
    assert_eq!(text(rig.conn(), status_tags).await.as_deref(), Some("rustlang"), "{log}");
    assert_eq!(rig.count("SELECT count(*) FROM mastodon_statuses").await, 2);
    assert_eq!(rig.count("SELECT count(*) FROM instagram_posts").await, 1, "{log}");
    let names = text(rig.conn(), "SELECT string_agg(name, ',') FROM instagram_hashtags").await;
    assert_eq!(names.as_deref(), Some("coffee"));
    let links = text(rig.conn(), "SELECT string_agg(hashtag, ',') FROM instagram_post_hashtags").await;
    assert_eq!(links.as_deref(), Some("coffee"));

    for (table, column) in [
        ("twitter_data", "hashtags"),
        ("mastodon_statuses", "tags"),
        ("instagram_hashtags", "name"),
        ("instagram_post_hashtags", "hashtag"),
    ] {
        let line = format!("inserter_values_cut_total{{table=\"{table}\",column=\"{column}\"}} 1");
        assert!(metrics.contains(&line), "`{line}` in\n{metrics}");
    }
    let dead_letters = |topic: &str| metric(&metrics, &format!("inserter_dead_letters_total{{topic=\"{topic}\"}}"));
    assert_eq!(dead_letters(&rig.topic), Some(6.0), "{metrics}");
    assert_eq!(dead_letters(&rig.statuses_topic), Some(0.0), "{metrics}");
    assert_eq!(dead_letters(&rig.instagram_media_topic), Some(0.0), "{metrics}");

    // A valid record is rows, even when a later record of the batch with the same row key (the post itself,
    // or its author) is refused: the refused record's rows are left out, and the valid record's must then be
    // written in their place.
    let like_count = "SELECT coalesce(max(like_count), -1) FROM twitter_data WHERE tweet_id = 203";
    assert_eq!(rig.count(like_count).await, 203 % 13, "post 203 from its valid record\n{log}");
    for author in [7001, 7002] {
        let name = text(rig.conn(), &format!("SELECT name FROM twitter_users WHERE user_id = {author}")).await;
        assert_eq!(name, Some(format!("Valid {author}")), "author {author} from the valid post\n{log}");
    }
    assert_eq!(rig.count("SELECT count(*) FROM twitter_users").await, 52, "{log}");
    assert_eq!(rig.count(TWEETS).await, 205, "{log}");
}

#[tokio::test]
async fn a_privilege_error_stops_the_inserter_with_what_to_fix() {
    let rig = Rig::start(1).await;
    let role = unique_name("ins");
    // What docker/postgres/roles.sql grants the inserter's role, but INSERT on twitter_data.
    let grants = format!(
        "CREATE ROLE {role} LOGIN;
         GRANT CONNECT ON DATABASE {db} TO {role};
         GRANT USAGE ON SCHEMA public TO {role};
         GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role};
         GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};
         REVOKE INSERT ON twitter_data FROM {role};",
        db = rig.db.name
    );
    rig.conn().execute_unprepared(&grants).await.unwrap();
    rig.produce_tweets(1..=100).await;

    let url = rig.pg.url_as(&role, "unchecked", &rig.db.name);
    let mut inserter = rig.inserter(&unique_name("group"), &["--database-url", &url]);
    let status = inserter.wait(Duration::from_secs(60)).await.unwrap();
    let log = inserter.log();
    assert!(!status.success(), "{log}");
    let stopped = log.lines().find(|line| line.contains("inserter stopped")).unwrap_or_default();
    for what in ["SQLSTATE 42501", "permission denied for table twitter_data", "grant"] {
        assert!(stopped.contains(what), "`{what}` in the line saying why it stopped:\n{log}");
    }
    assert_eq!(rig.count("SELECT count(*) FROM kafka_offsets").await, 0, "no offset stored");
    assert_eq!(rig.count("SELECT count(*) FROM twitter_users").await, 0, "nothing of the batch committed");
    assert_eq!(rig.count(DEAD_LETTERS).await, 0, "a missing grant is no record's fault");
}

#[tokio::test]
async fn batches_close_on_bytes() {
    const RECORDS: u64 = 30;
    const TEXT_BYTES: usize = 200_000;
    let stack = Rig::start(1).await;
    let big = |id: u64| {
        let mut post = x_post(id, 1_000 + id % 5, "Author");
        post["data"]["text"] = json!(format!("{id} {}", "p".repeat(TEXT_BYTES)));
        x_json(id, &post)
    };
    stack.broker.produce(&stack.topic, (1..=RECORDS).map(big)).await.unwrap();

    let group = unique_name("group");
    // A batch timeout far longer than the drain: only bytes can close the batches before the last.
    let args = ["--batch-bytes", "1MiB", "--batch-size", "10000", "--batch-timeout", "3s", "--exit-when-idle", "2s"];
    let mut inserter = stack.inserter_with(&group, &[], &args);
    let status = inserter.wait(Duration::from_secs(90)).await.unwrap();
    let log = inserter.log();
    assert!(status.success(), "{log}");
    assert_eq!(support::count(stack.conn(), TWEETS).await, RECORDS as i64, "{log}");
    assert_eq!(support::count(stack.conn(), &stored_offsets_sql(&group)).await, RECORDS as i64);
    let stopped = log.lines().find(|line| line.contains("inserter stopped")).expect("a last line");
    let batches: u64 = stopped
        .split_whitespace()
        .find_map(|field| field.strip_prefix("batches="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no batches= in {stopped}"));
    let at_least = (RECORDS as usize * TEXT_BYTES).div_ceil(1 << 20) as u64;
    assert!(batches >= at_least, "{batches} batches for {RECORDS} records of {TEXT_BYTES} bytes: {log}");
}

#[tokio::test]
async fn kept_partitions_resume_after_a_cooperative_revoke_while_paused() {
    const RECORDS: i64 = 2_000;
    const BATCH: usize = 20;
    let stack = Rig::start(4).await;
    stack.broker.produce(&stack.topic, (1..=RECORDS as u64).map(tweet_message)).await.unwrap();
    let group = unique_name("group");
    let batch = BATCH.to_string();
    let env = [
        ("KAFKA_PARTITION_ASSIGNMENT_STRATEGY", "cooperative-sticky"),
        ("BATCH_SIZE", batch.as_str()),
        ("PROGRESS_INTERVAL", "250ms"),
    ];
    let addr_a = free_addr().to_string();
    let a = stack.inserter_with(&group, &env, &["--metrics-addr", &addr_a]);
    wait_for(stack.conn(), TWEETS, 100, Duration::from_secs(60), &[&a]).await;

    // Hold A's next write (a lock every insert waits for): its next batch fills while that write waits, and A
    // pauses (its progress lines, every 250 ms, show a full batch pending).
    let lock = stack.conn().begin().await.unwrap();
    lock.execute_unprepared("LOCK TABLE twitter_data IN EXCLUSIVE MODE").await.unwrap();
    let locked_at = a.log().len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !a.log()[locked_at..].lines().any(|line| pending_of(line).is_some_and(|pending| pending >= BATCH)) {
        assert!(Instant::now() < deadline, "A never held a full batch behind the held write:\n{}", a.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let series = format!("inserter_records_consumed_total{{topic=\"{}\"}}", stack.topic);
    let consumed = |addr: &str| metric(&http_get(addr, "/metrics"), &series);
    let paused_at = consumed(&addr_a);
    assert!(paused_at < Some(RECORDS as f64), "A must be paused mid-drain, not done: {paused_at:?}");

    // B joins: the cooperative rebalance takes some of A's partitions while A is paused.
    let b = stack.inserter_with(&group, &env, &[]);
    if let Err(e) = a.wait_for_log("partitions revoked", Duration::from_secs(60)).await {
        panic!("{e:#}\nthe other member's log:\n{}", b.log());
    }
    lock.commit().await.unwrap();

    // A's write completes, A resumes the partitions it kept, B consumes those it was given.
    wait_for(stack.conn(), TWEETS, RECORDS, Duration::from_secs(60), &[&a, &b]).await;
    wait_for(stack.conn(), &stored_offsets_sql(&group), RECORDS, Duration::from_secs(30), &[&a, &b]).await;
    assert_eq!(support::count(stack.conn(), TWEETS).await, RECORDS);
    assert_eq!(support::count(stack.conn(), &stored_offsets_sql(&group)).await, RECORDS, "no offset beyond the end");
    assert_eq!(support::count(stack.conn(), DEAD_LETTERS).await, 0);
    assert!(consumed(&addr_a) > paused_at, "A consumed the partitions it kept after the revoke:\n{}", a.log());
    assert!(b.log().contains("consuming from the offsets stored with the rows"), "{}", b.log());
}
