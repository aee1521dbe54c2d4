//! The README's path, as written: `.env.example` copied unchanged to `.env` and the inserter started in that
//! directory. The environment overrides only what must point at this machine: the database, the broker, the
//! topics (the broker is shared) and the ops address.

use crate::support::Rig;

use std::process::Command;
use std::time::Duration;

#[tokio::test]
async fn the_env_example_as_it_is_runs_the_inserter() {
    let rig = Rig::start(1).await;
    rig.produce_tweets(1..=3).await;
    let example = std::fs::read_to_string(format!("{}/../.env.example", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), example).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_inserter"));
    command
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", &rig.db.url)
        .env("KAFKA_BOOTSTRAP_SERVERS", rig.broker.bootstrap_servers())
        .env("INSERTER_GROUP", testkit::unique_name("group"))
        .env("TOPIC_TWEETS", &rig.topic)
        .env("TOPIC_MASTODON_STATUSES", &rig.statuses_topic)
        .env("TOPIC_INSTAGRAM_PROFILES", &rig.instagram_profiles_topic)
        .env("TOPIC_INSTAGRAM_MEDIA", &rig.instagram_media_topic)
        .env("INSERTER_METRICS_ADDR", "127.0.0.1:0")
        .args(["--exit-when-idle", "3s"]);
    let mut inserter = rig.spawn("inserter", command);
    let status = inserter.wait(Duration::from_secs(60)).await.unwrap();
    assert!(status.success(), "{}", inserter.log());
    assert_eq!(rig.count("SELECT count(*) FROM twitter_data").await, 3, "{}", inserter.log());
    // Nothing in the file deserves a warning (librdkafka's own, about a broker that has just started, are not
    // the file's).
    let warned = inserter.log().lines().any(|line| line.contains(" WARN ") && !line.contains(" librdkafka: "));
    assert!(!warned, "{}", inserter.log());
}

#[tokio::test]
async fn the_old_metrics_address_name_still_works_and_says_to_rename_it() {
    let rig = Rig::start(1).await;
    let addr = crate::support::free_addr().to_string();
    let mut command = Command::new(env!("CARGO_BIN_EXE_inserter"));
    command
        .env("DATABASE_URL", &rig.db.url)
        .env("KAFKA_BOOTSTRAP_SERVERS", rig.broker.bootstrap_servers())
        .env("TOPIC_TWEETS", &rig.topic)
        .env("TOPIC_MASTODON_STATUSES", &rig.statuses_topic)
        .env("TOPIC_INSTAGRAM_PROFILES", &rig.instagram_profiles_topic)
        .env("TOPIC_INSTAGRAM_MEDIA", &rig.instagram_media_topic)
        .env_remove("INSERTER_METRICS_ADDR")
        .env("METRICS_ADDR", &addr)
        .args(["--exit-when-idle", "1s"]);
    let mut inserter = rig.spawn("inserter", command);
    inserter.wait_for_log("serving /metrics", Duration::from_secs(30)).await.unwrap();
    let log = inserter.log();
    assert!(log.contains("METRICS_ADDR is deprecated: rename it INSERTER_METRICS_ADDR"), "{log}");
    assert!(log.contains(&format!("address={addr}")), "{log}");
    inserter.signal(libc::SIGTERM);
    inserter.wait(Duration::from_secs(30)).await.unwrap();
}
