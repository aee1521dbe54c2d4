//! Apache Kafka for tests: one KRaft node (broker and controller in one JVM) on loopback, from the jars
//! `scripts/install-kafka.sh` installs at compose's version.
//!
//! A JVM broker takes seconds and hundreds of MiB to start, so tests share one ([`Broker::shared`]) and keep
//! apart by unique topics and group ids ([`crate::unique_name`]), as Kafka's and librdkafka's own suites do. A
//! test that stops, kills or restarts the broker starts one of its own ([`Broker::start`]).

use std::fs::{self, File};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

use crate::child;
use crate::jvm::{self, Install, Versions};
use crate::shared::{self, Lease};

/// Compose's cluster id (docker-compose.yml's CLUSTER_ID): any fixed id does, as the node is formatted once.
const CLUSTER_ID: &str = "PIWuo3rARLSGTwJ9-uUk5g";
/// The logger whose INFO line says the node serves ("Kafka Server started").
const STARTED_LOGGER: &str = "kafka.server.KafkaRaftServer";
const STARTED: &str = "Kafka Server started";
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A message for [`Broker::produce`]; `value: None` is a tombstone, `partition: None` lets the key decide.
#[derive(Clone, Debug, Default)]
pub struct TestMessage {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub partition: Option<i32>,
}

impl TestMessage {
    /// An Instagram record as the scraper produces it: keyed by the object's id, with `scraped_at`, the
    /// scraper's own headers and the Instagram headers given (`source` among them).
    pub fn instagram(value: &serde_json::Value, scraped_at: &str, headers: &[(&str, &str)]) -> Self {
        let mut all = vec![
            ("scraped_at".to_owned(), scraped_at.as_bytes().to_vec()),
            ("content_type".to_owned(), b"application/json".to_vec()),
            ("scraper_version".to_owned(), b"0.1.0".to_vec()),
        ];
        all.extend(headers.iter().map(|(name, value)| ((*name).to_owned(), value.as_bytes().to_vec())));
        Self {
            key: value["id"].as_str().map(|id| id.as_bytes().to_vec()),
            value: Some(value.to_string().into_bytes()),
            headers: all,
            partition: None,
        }
    }
}

/// A running broker: the shared one, or one of the test's own, which dropping it stops and removes.
pub struct Broker {
    port: u16,
    kind: Kind,
}

enum Kind {
    Shared { _lease: Lease },
    Own(Node),
}

impl Broker {
    /// The broker tests share, started if none runs. It cannot be stopped or restarted: a test that needs
    /// that takes its own ([`Broker::start`]).
    pub async fn shared() -> Result<Self> {
        let install = Install::pinned()?;
        let (port, lease) = shared::lease(&shared_name(&install)?, async |dir: &Path| {
            let mut node = Node::new(install.clone(), dir.to_owned(), Heap::Shared);
            node.start_on_free_ports(Spawn::Detached).await?;
            let pid = node.pid().context("the shared broker is not running")?;
            let port = node.port;
            // The keeper owns it from here; the node's drop must not stop it.
            std::mem::forget(node);
            Ok(shared::Started { pid, port })
        })
        .await?;
        Ok(Self { port, kind: Kind::Shared { _lease: lease } })
    }

    /// A broker of the test's own on a free port, which the test may stop, kill and restart.
    pub async fn start() -> Result<Self> {
        Self::start_on_port(0).await
    }

    /// A broker of the caller's own on 127.0.0.1:`port`, or on a free port when `port` is 0.
    pub async fn start_on_port(port: u16) -> Result<Self> {
        let dir = child::service_dir("broker")?;
        let mut node = Node::new(Install::pinned()?, dir.path().to_owned(), Heap::Own);
        node.dir_guard = Some(dir);
        if port == 0 {
            node.start_on_free_ports(Spawn::BoundToTest).await?;
        } else {
            node.port = port;
            node.controller_port = child::free_port()?;
            node.format()?;
            node.spawn(Spawn::BoundToTest).await.with_context(|| format!("start the broker on port {port}"))?;
        }
        Ok(Self { port: node.port, kind: Kind::Own(node) })
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's process id, while a broker of the test's own runs.
    pub fn pid(&self) -> Option<u32> {
        match &self.kind {
            Kind::Own(node) => node.pid(),
            Kind::Shared { .. } => None,
        }
    }

    /// Kills the broker (SIGKILL, as a crash would), keeping its log.
    pub fn stop(&mut self) {
        self.own("stop").stop(libc::SIGKILL, Duration::from_secs(5));
    }

    /// Stops the broker the way an operator would (SIGTERM, then SIGKILL after 30 s).
    pub fn shutdown(&mut self) {
        self.own("shut down").stop(libc::SIGTERM, Duration::from_secs(30));
    }

    /// Starts the broker again on the same ports with the same log.
    pub async fn restart(&mut self) -> Result<()> {
        self.own("restart").spawn(Spawn::BoundToTest).await
    }

    fn own(&mut self, what: &str) -> &mut Node {
        match &mut self.kind {
            Kind::Own(node) => node,
            Kind::Shared { .. } => {
                panic!("a test may not {what} the shared broker: take one of its own (Broker::start)")
            }
        }
    }

    /// Creates `topic` with `partitions` partitions (the broker, as compose's, creates no topic on first use).
    pub async fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap_servers())
            .create()
            .context("create an admin client")?;
        let results = admin
            .create_topics(
                &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
            )
            .await?;
        for result in results {
            result.map_err(|(topic, code)| anyhow::anyhow!("create topic {topic}: {code}"))?;
        }
        // The controller answers once the topic is in its log; the broker learns of it a moment later, and until
        // then a client that asks for it hears UnknownTopicOrPartition. Returning only once the broker serves
        // every partition spares each caller that race.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let metadata = admin.inner().fetch_metadata(Some(topic), Duration::from_secs(5));
            let served = metadata.as_ref().is_ok_and(|metadata| {
                metadata.topics().iter().any(|t| {
                    t.name() == topic
                        && t.error().is_none()
                        && t.partitions().len() == partitions as usize
                        && t.partitions().iter().all(|p| p.error().is_none() && p.leader() >= 0)
                })
            });
            if served {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("topic {topic} was created but the broker did not serve it within 30 s: {metadata:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many records `topic` holds, over its partitions (0 when it does not exist yet).
    pub async fn records(&self, topic: &str) -> Result<i64> {
        let (servers, topic) = (self.bootstrap_servers(), topic.to_owned());
        tokio::task::spawn_blocking(move || {
            let admin: AdminClient<DefaultClientContext> =
                ClientConfig::new().set("bootstrap.servers", servers).create().context("create an admin client")?;
            let metadata = admin.inner().fetch_metadata(Some(&topic), Duration::from_secs(5))?;
            let mut records = 0;
            for described in metadata.topics().iter().filter(|t| t.name() == topic && t.error().is_none()) {
                for partition in described.partitions() {
                    let (low, high) = admin.inner().fetch_watermarks(&topic, partition.id(), Duration::from_secs(5))?;
                    records += high - low;
                }
            }
            Ok(records)
        })
        .await?
    }

    /// Produces `messages` to `topic`, idempotently and in record batches as the scraper produces, and returns
    /// once the broker acknowledged every one.
    pub async fn produce(&self, topic: &str, messages: impl IntoIterator<Item = TestMessage>) -> Result<()> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap_servers())
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .context("create a producer")?;
        let mut deliveries = Vec::new();
        for message in messages {
            let mut headers = OwnedHeaders::new();
            for (key, value) in &message.headers {
                headers = headers.insert(Header { key, value: Some(value) });
            }
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
            if let Some(key) = &message.key {
                record = record.key(key);
            }
            if let Some(value) = &message.value {
                record = record.payload(value);
            }
            if let Some(partition) = message.partition {
                record = record.partition(partition);
            }
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => break deliveries.push(delivery),
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err((e, _)) => bail!("produce to {topic}: {e}"),
                }
            }
        }
        for delivery in deliveries {
            delivery.await.context("delivery cancelled")?.map_err(|(e, _)| anyhow::anyhow!("delivery failed: {e}"))?;
        }
        Ok(())
    }
}

/// The shared broker's name: one per installed Kafka, per user, and per clock (a run under a moved clock gets
/// a broker configured for it).
fn shared_name(install: &Install) -> Result<String> {
    let versions = Versions::pinned()?;
    let mut hasher = DefaultHasher::new();
    install.kafka_libs.hash(&mut hasher);
    moved_clock().hash(&mut hasher);
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() }.hash(&mut hasher);
    Ok(format!("kafka-{}-{:016x}", versions.kafka, hasher.finish()))
}

/// `scripts/test-time-travel.sh`'s offset, when the tests run under a moved clock.
fn moved_clock() -> Option<String> {
    std::env::var("MOVED_CLOCK_OFFSET").ok().filter(|offset| !offset.is_empty())
}

#[derive(Clone, Copy)]
enum Heap {
    /// Every test's topics at once.
    Shared,
    Own,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Spawn {
    /// Dies with the test process.
    BoundToTest,
    /// Outlives the test process: the shared broker, stopped by its keeper.
    Detached,
}

/// One KRaft node: its directory (configuration, log and data), its two ports and its process.
struct Node {
    install: Install,
    dir: PathBuf,
    /// Removes `dir` when the node is dropped (a broker of the test's own).
    dir_guard: Option<tempfile::TempDir>,
    heap: Heap,
    port: u16,
    controller_port: u16,
    process: Option<Child>,
}

impl Node {
    fn new(install: Install, dir: PathBuf, heap: Heap) -> Self {
        Self { install, dir, dir_guard: None, heap, port: 0, controller_port: 0, process: None }
    }

    fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }

    /// Formats and starts the node on free ports, on others if a parallel test took one first.
    async fn start_on_free_ports(&mut self, spawn: Spawn) -> Result<()> {
        child::on_free_port("the Kafka broker", async |port| {
            self.port = port;
            self.controller_port = child::free_port()?;
            self.format()?;
            self.spawn(spawn).await
        })
        .await
    }

    /// Writes the configuration and formats the log directory for a cluster of this one node
    /// (`kafka-storage.sh format --standalone`).
    fn format(&self) -> Result<()> {
        let data = self.dir.join("data");
        let _ = fs::remove_dir_all(&data);
        fs::write(self.dir.join("server.properties"), self.properties())?;
        fs::write(self.dir.join("log4j2.properties"), jvm::log4j2_properties(STARTED_LOGGER))?;
        let output = self
            .java("kafka.tools.StorageTool", "256m")
            .args(["format", "--standalone", "--cluster-id", CLUSTER_ID, "--config"])
            .arg(self.dir.join("server.properties"))
            .output()
            .context("run Kafka's StorageTool (is Java 17 installed?)")?;
        if !output.status.success() {
            bail!(
                "formatting the broker's log directory failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// One node on loopback as compose configures its broker: KRaft, replication factor 1, no topic created
    /// on first use, no initial rebalance delay.
    fn properties(&self) -> String {
        let mut properties = format!(
            "process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.bootstrap.servers=127.0.0.1:{controller}\n\
             listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             log.dirs={data}\n\
             offsets.topic.replication.factor=1\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             share.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\n\
             default.replication.factor=1\n\
             min.insync.replicas=1\n\
             group.initial.rebalance.delay.ms=0\n\
             auto.create.topics.enable=false\n",
            port = self.port,
            controller = self.controller_port,
            data = self.dir.join("data").display(),
        );
        if moved_clock().is_some() {
            // The clients' clock runs ahead of the broker's (`Install::java`); Kafka refuses records stamped
            // more than an hour ahead of its own clock by default.
            properties.push_str("log.message.timestamp.after.max.ms=9223372036854775807\n");
        }
        properties
    }

    fn java(&self, main_class: &str, heap: &str) -> Command {
        self.install.java(main_class, heap, &self.dir.join("log4j2.properties"))
    }

    /// Starts the formatted node and waits until it serves.
    async fn spawn(&mut self, spawn: Spawn) -> Result<()> {
        if self.process.is_some() {
            return Ok(());
        }
        let log_path = self.dir.join("broker.log");
        let log = File::options().create(true).append(true).open(&log_path)?;
        let logged_before = log.metadata()?.len();
        let heap = match self.heap {
            Heap::Shared => "1g",
            Heap::Own => "512m",
        };
        let mut command = self.java("kafka.Kafka", heap);
        command.arg(self.dir.join("server.properties")).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        match spawn {
            Spawn::BoundToTest => child::bind_to_parent(&mut command, None, libc::SIGKILL),
            Spawn::Detached => shared::detach(&mut command),
        }
        self.process = Some(command.spawn().context("start the Kafka broker (is Java 17 installed?)")?);
        let started = self.wait_until_started(&log_path, logged_before).await;
        if started.is_err() {
            self.stop(libc::SIGKILL, Duration::from_secs(5));
        }
        started
    }

    async fn wait_until_started(&mut self, log_path: &Path, logged_before: u64) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = fs::read(log_path).unwrap_or_default();
            let since_spawn = String::from_utf8_lossy(log.get(logged_before as usize..).unwrap_or_default());
            if let Some(process) = self.process.as_mut()
                && let Some(status) = process.try_wait()?
            {
                bail!("the Kafka broker exited with {status}:\n{since_spawn}");
            }
            if since_spawn.contains(STARTED) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the Kafka broker did not start within {START_TIMEOUT:?}:\n{since_spawn}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stop(&mut self, signal: libc::c_int, grace: Duration) {
        if let Some(mut process) = self.process.take() {
            child::stop(&mut process, signal, grace);
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop(libc::SIGKILL, Duration::from_secs(5));
    }
}
