//! The `inserter` binary against a record dated far ahead: a newer scrape wins every upsert, so a `scraped_at`
//! a year ahead would keep every real scrape of its row from updating it. It is stored as scraped at the
//! broker's timestamp (the produce time) instead, says so in the log and in `inserter_scraped_at_clamped_total`,
//! and the next real scrape updates the row. Every time is set from the clock, so the test holds on any day.

use crate::support;

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use entity::twitter_data;
use sea_orm::EntityTrait;
use support::{Rig, free_addr, http_get, metric, tweet_line};
use testkit::{TestMessage, unique_name};

const ID: u64 = 4_242;

/// Tweet `ID` with `text`, scraped at `scraped_at`.
fn scrape(text: &str, scraped_at: DateTime<Utc>) -> TestMessage {
    let line = tweet_line(ID).replace(&format!("\"text\":\"post {ID} #rust\""), &format!("\"text\":\"{text}\""));
    assert!(line.contains(text), "{line}");
    TestMessage {
        key: Some(ID.to_string().into_bytes()),
        value: Some(line.into_bytes()),
        headers: vec![
            ("source".into(), b"x.sample".to_vec()),
            ("scraped_at".into(), scraped_at.to_rfc3339_opts(SecondsFormat::Millis, true).into_bytes()),
        ],
        partition: None,
    }
}

async fn stored(rig: &Rig) -> twitter_data::Model {
    twitter_data::Entity::find_by_id(ID as i64).one(rig.conn()).await.unwrap().expect("the post was stored")
}

#[tokio::test]
async fn a_scrape_dated_a_year_ahead_does_not_pin_its_row() {
    let rig = Rig::start(1).await;
    let group = unique_name("group");
    let offsets = format!(
        "SELECT coalesce(sum(next_offset), 0)::bigint FROM kafka_offsets WHERE consumer_group = '{group}' AND topic = '{}'",
        rig.topic
    );
    let addr = free_addr().to_string();
    let mut inserter = rig.inserter(&group, &["--metrics-addr", &addr]);

    let year_ahead = Utc::now() + TimeDelta::days(365);
    rig.broker.produce(&rig.topic, [scrape("from the future", year_ahead)]).await.unwrap();
    rig.wait_for_count(&offsets, 1, Duration::from_secs(60), &inserter).await;
    let first = stored(&rig).await;
    assert_eq!(first.text, "from the future", "stored, not dead-lettered");
    assert!(first.scraped_at <= Utc::now(), "stored as scraped no later than now: {}", first.scraped_at);
    assert_eq!(rig.count("SELECT count(*) FROM ingest_errors").await, 0);

    // The reason is in the log and the metric.
    inserter.wait_for_log("scraped_at too far ahead of this clock", Duration::from_secs(10)).await.unwrap();
    let log = inserter.log();
    assert!(log.contains(&format!("{}/0@0: the scraped_at header", rig.topic)), "{log}");
    let header = year_ahead.to_rfc3339_opts(SecondsFormat::Millis, true);
    let why = format!("the scraped_at header {header} is 365 d ahead of the inserter's clock (more than 5 min)");
    assert!(log.contains(&why), "{log}");
    let metrics = http_get(&addr, "/metrics");
    let clamped = format!("inserter_scraped_at_clamped_total{{topic=\"{}\"}}", rig.topic);
    assert_eq!(metric(&metrics, &clamped), Some(1.0), "{metrics}");

    // The next real scrape, dated by the clock as the scraper dates it, updates the row.
    let now = Utc::now().max(first.scraped_at + TimeDelta::milliseconds(1));
    rig.broker.produce(&rig.topic, [scrape("from today", now)]).await.unwrap();
    rig.wait_for_count(&offsets, 2, Duration::from_secs(30), &inserter).await;
    let second = stored(&rig).await;
    assert_eq!(second.text, "from today", "{}", inserter.log());
    assert!(second.scraped_at > first.scraped_at);
    let metrics = http_get(&addr, "/metrics");
    assert_eq!(metric(&metrics, &clamped), Some(1.0), "a time within the skew is not clamped: {metrics}");

    inserter.signal(libc::SIGTERM);
    assert!(inserter.wait(Duration::from_secs(20)).await.unwrap().success(), "{}", inserter.log());
}
