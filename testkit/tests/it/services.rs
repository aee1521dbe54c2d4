//! The harness's own promises: a killed broker keeps its log across a restart, and a test process
//! that is killed takes its services with it and leaves nothing behind for the next run.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use testkit::{Broker, Postgres, unique_name};

#[tokio::test]
async fn a_killed_broker_keeps_acknowledged_records_across_a_restart() {
    let mut broker = Broker::start().await.unwrap();
    let topic = unique_name("restart");
    broker.create_topic(&topic, 1).await.unwrap();
    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", broker.bootstrap_servers()).create().unwrap();
    producer
        .send(FutureRecord::to(&topic).key("k").payload("before the crash"), Duration::from_secs(10))
        .await
        .unwrap();
    drop(producer);

    broker.stop();
    broker.restart().await.unwrap();

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", unique_name("group"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await.unwrap().unwrap();
    assert_eq!(message.payload(), Some(&b"before the crash"[..]));
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

/// Not a test on its own: the victim process of `a_killed_test_leaves_no_server_behind`.
#[tokio::test]
#[ignore = "run by a_killed_test_leaves_no_server_behind"]
async fn victim_starts_services_and_waits_to_be_killed() {
    let report = PathBuf::from(std::env::var_os("TESTKIT_VICTIM_REPORT").expect("run by the killer test"));
    let pg = Postgres::start().await.unwrap();
    let broker = Broker::start().await.unwrap();
    let lines = format!("{}\n{}\n{}\n", pg.server_pid().unwrap(), broker.pid().unwrap(), pg.dir().display());
    std::fs::write(report.with_extension("tmp"), lines).unwrap();
    std::fs::rename(report.with_extension("tmp"), &report).unwrap();
    tokio::time::sleep(Duration::from_secs(300)).await;
}

#[tokio::test]
async fn a_killed_test_leaves_no_server_behind() {
    let report = std::env::temp_dir().join(unique_name("victim_report"));
    let mut victim = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "services::victim_starts_services_and_waits_to_be_killed", "--ignored", "--nocapture"])
        .env("TESTKIT_VICTIM_REPORT", &report)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !report.exists() {
        assert!(Instant::now() < deadline, "the victim did not start its services");
        assert!(victim.try_wait().unwrap().is_none(), "the victim exited early");
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&report).unwrap();
    std::fs::remove_file(&report).unwrap();
    let mut lines = text.lines();
    let postgres_pid: u32 = lines.next().unwrap().parse().unwrap();
    let broker_pid: u32 = lines.next().unwrap().parse().unwrap();
    let pg_dir = PathBuf::from(lines.next().unwrap());
    assert!(alive(postgres_pid) && alive(broker_pid));

    victim.kill().unwrap(); // SIGKILL: no destructor runs
    victim.wait().unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    while alive(postgres_pid) || alive(broker_pid) {
        assert!(Instant::now() < deadline, "a service outlived its killed test process");
        std::thread::sleep(Duration::from_millis(50));
    }
    // No destructor ran, so only a start removes the directory: this test's next one, or one that another
    // test binary running beside this one made first (under `cargo nextest` they run in parallel).
    let _next = Postgres::start().await.unwrap();
    assert!(!pg_dir.exists(), "the next start sweeps what the killed run left");
}
