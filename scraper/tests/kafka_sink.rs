//! The Kafka sink against a real broker: a keyed record with the contract's headers comes back byte for
//! byte, topics are created once, and nothing counts as sent that the broker did not acknowledge.

use std::time::Duration;

use chrono::Utc;
use scraper::kafka_sink::{KafkaSink, SendError};
use scraper::record::{Record, header};
use testkit::{Broker, unique_name};

mod support;

#[tokio::test]
async fn a_keyed_record_with_headers_round_trips_through_the_broker() {
    let broker = Broker::start().await.unwrap();
    let topic = unique_name("tweets");
    let sink = KafkaSink::new(common::kafka::client_config(&broker.bootstrap_servers(), [])).unwrap();
    sink.ensure_topics(&[&topic], 3).await.unwrap();
    sink.ensure_topics(&[&topic], 3).await.expect("an existing topic is not an error");

    let payload = br#"{"data":{"id":"1460323737035677698","text":"Introducing \ud83d\udce3"}}"#.to_vec();
    let record = Record::accepted(&topic, "1460323737035677698".into(), payload.clone(), "x.sample".into(), Utc::now());
    let first = sink.send(&record).await.unwrap();
    let second = sink.send(&record).await.unwrap();
    assert_eq!(first.partition, second.partition, "one key, one partition");
    assert_eq!(second.offset, first.offset + 1);

    let messages = support::consume(&broker, &topic, 2, Duration::from_secs(30)).await;
    let message = &messages[0];
    assert_eq!(message.key.as_deref(), Some("1460323737035677698"));
    assert_eq!(message.payload, payload);
    assert_eq!((message.partition, message.offset), (first.partition, first.offset));
    let headers = message.headers.clone();
    let expected: Vec<(String, String)> = record.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    assert_eq!(headers, expected);
    let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, [header::SOURCE, header::SCRAPED_AT, header::CONTENT_TYPE, header::SCRAPER_VERSION]);
}

#[tokio::test]
async fn a_record_the_broker_never_acknowledged_is_an_error_not_a_success() {
    let mut broker = Broker::start().await.unwrap();
    let topic = unique_name("tweets");
    let mut config = common::kafka::client_config(&broker.bootstrap_servers(), []);
    config.set("message.timeout.ms", "3000");
    let sink = KafkaSink::new(config).unwrap();
    sink.ensure_topics(&[&topic], 1).await.unwrap();
    broker.stop();

    let record = Record::accepted(&topic, "1".into(), b"{}".to_vec(), "replay".into(), Utc::now());
    let result = sink.send(&record).await;
    assert!(matches!(result, Err(SendError::Kafka(_))), "got {result:?}");
}
