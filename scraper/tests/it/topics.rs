//! The scraper binary provisions the contract's topics on a broker that does not auto-create them, and
//! a second run leaves them as they are.

use std::process::Command;

use rdkafka::consumer::{BaseConsumer, Consumer};
use std::time::Duration;
use testkit::Broker;

#[tokio::test]
async fn the_scraper_creates_the_contract_topics_once() {
    // A broker of its own: the test names every topic on it.
    let broker = Broker::start().await.unwrap();
    for _ in 0..2 {
        let output = Command::new(env!("CARGO_BIN_EXE_scraper"))
            .env("KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap_servers())
            .env("TOPIC_PARTITIONS", "3")
            // Replay nothing: the run only provisions the topics.
            .env("REPLAY_COUNT", "0")
            .env("SCRAPER_METRICS_ADDR", "127.0.0.1:0")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }

    let consumer: BaseConsumer = common::kafka::client_config(&broker.bootstrap_servers(), []).create().unwrap();
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(10)).unwrap();
    let mut topics: Vec<(String, usize)> = metadata
        .topics()
        .iter()
        .filter(|t| !t.name().starts_with("__"))
        .map(|t| (t.name().to_owned(), t.partitions().len()))
        .collect();
    topics.sort();
    let expected = [
        "bluesky.events",
        "instagram.media",
        "instagram.profiles",
        "mastodon.statuses",
        "scraper.rejects",
        "twitter.tweets",
    ];
    assert_eq!(topics, expected.map(|t| (t.to_owned(), 3)).to_vec());
}
