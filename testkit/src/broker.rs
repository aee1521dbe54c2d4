//! A real Kafka-protocol broker for tests: tansu, run as a separate process on a free loopback port, so that
//! clients speak the real wire protocol and a test can take the broker away and bring it back.

use std::fs::File;
use std::path::PathBuf;
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

/// Where the broker keeps its log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BrokerStorage {
    /// In memory: fast; everything is gone when the broker stops. Beware: tansu 0.6's memory engine answers a
    /// fetch from an offset inside a multi-record batch with the wrong records (or none), which loses records
    /// for a consumer that seeks or resumes a paused partition. [`Broker::produce`] therefore writes one record
    /// per batch.
    #[default]
    Memory,
    /// A SQLite file in the broker's directory: survives [`Broker::stop`] and [`Broker::restart`], fetches
    /// from any offset correctly, but serves only a few hundred records a second.
    Sqlite,
}

/// A message for [`Broker::produce`]; `value: None` is a tombstone, `partition: None` lets the key decide.
#[derive(Clone, Debug, Default)]
pub struct TestMessage {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub partition: Option<i32>,
}

/// A running broker. Dropping it stops the process and removes its files.
pub struct Broker {
    dir: tempfile::TempDir,
    port: u16,
    storage: BrokerStorage,
    /// The broker process, when running; `None` between [`Broker::stop`] and [`Broker::restart`].
    process: Option<Child>,
}

impl Broker {
    /// Starts a broker with in-memory storage.
    pub async fn start() -> Result<Self> {
        Self::start_with(BrokerStorage::Memory).await
    }

    /// Starts a broker with `storage` on a free port.
    pub async fn start_with(storage: BrokerStorage) -> Result<Self> {
        Self::start_on_port(storage, 0).await
    }

    /// Starts a broker with `storage` on 127.0.0.1:`port`, or on a free port when `port` is 0.
    pub async fn start_on_port(storage: BrokerStorage, port: u16) -> Result<Self> {
        let dir = child::service_dir("broker")?;
        let mut broker = Self { dir, port, storage, process: None };
        if port == 0 {
            child::on_free_port("the broker", async |port| {
                broker.port = port;
                broker.restart().await
            })
            .await?;
        } else {
            broker.restart().await.with_context(|| format!("start the broker on port {port}"))?;
        }
        Ok(broker)
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }

    /// Kills the broker (as a crash would), keeping its files.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            child::stop(&mut process, libc::SIGKILL, Duration::from_secs(5));
        }
    }

    /// Stops the broker the way an operator would (SIGTERM, then SIGKILL after 10 s).
    pub fn shutdown(&mut self) {
        if let Some(mut process) = self.process.take() {
            child::stop(&mut process, libc::SIGTERM, Duration::from_secs(10));
        }
    }

    /// Starts the broker again on the same port, with the same storage.
    pub async fn restart(&mut self) -> Result<()> {
        if self.process.is_some() {
            return Ok(());
        }
        let listener = format!("tcp://{}", self.bootstrap_servers());
        let storage = match self.storage {
            BrokerStorage::Memory => "memory://tansu/".to_owned(),
            // tansu resolves a sqlite path against its working directory, which is the broker's directory.
            BrokerStorage::Sqlite => "sqlite://tansu.db".to_owned(),
        };
        let log = File::options().create(true).append(true).open(self.dir.path().join("broker.log"))?;
        let mut command = Command::new(tansu_bin()?);
        command
            .args(["broker", "--listener-url", &listener, "--advertised-listener-url", &listener])
            .args(["--storage-engine", &storage])
            .current_dir(self.dir.path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        child::bind_to_parent(&mut command, None, libc::SIGKILL);
        self.process = Some(command.spawn().context("start the tansu broker")?);
        let listening = self.wait_until_listening().await;
        if listening.is_err() {
            self.stop();
        }
        listening
    }

    /// Creates `topic` with `partitions` partitions (tansu does not create topics on first use).
    pub async fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap_servers())
            .create()
            .context("create an admin client")?;
        let results = admin
            .create_topics(
                &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await?;
        for result in results {
            result.map_err(|(topic, code)| anyhow::anyhow!("create topic {topic}: {code}"))?;
        }
        Ok(())
    }

    /// Produces `messages` to `topic` and returns once the broker acknowledged every one.
    pub async fn produce(&self, topic: &str, messages: impl IntoIterator<Item = TestMessage>) -> Result<()> {
        // One record per batch: tansu 0.6's memory engine answers a fetch from inside a batch wrongly.
        self.produce_with(topic, messages, &[("batch.num.messages", "1"), ("linger.ms", "0")]).await
    }

    /// [`Broker::produce`] in record batches, as the scraper produces: for SQLite storage only.
    pub async fn produce_batched(&self, topic: &str, messages: impl IntoIterator<Item = TestMessage>) -> Result<()> {
        self.produce_with(topic, messages, &[("linger.ms", "20")]).await
    }

    async fn produce_with(
        &self,
        topic: &str,
        messages: impl IntoIterator<Item = TestMessage>,
        settings: &[(&str, &str)],
    ) -> Result<()> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.bootstrap_servers()).set("enable.idempotence", "true");
        for (key, value) in settings {
            config.set(*key, *value);
        }
        let producer: FutureProducer = config.create().context("create a producer")?;
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

    async fn wait_until_listening(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(process) = self.process.as_mut()
                && let Some(status) = process.try_wait()?
            {
                let log = std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default();
                bail!("the broker exited with {status}: {log}");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the broker did not listen on {} within 30 s", self.bootstrap_servers());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `TANSU_BIN`, else `tansu` on the PATH, else cargo's install directory.
fn tansu_bin() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("TANSU_BIN") {
        return Ok(PathBuf::from(path));
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    let candidates = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(cargo_home.map(|home| home.join("bin")));
    for dir in candidates {
        let bin = dir.join("tansu");
        if bin.is_file() {
            return Ok(bin);
        }
    }
    bail!("the tansu broker is not installed: run scripts/install-test-deps.sh (or set TANSU_BIN)")
}
