//! Kafka Connect with the Debezium Postgres connector, wired as compose wires its `connect` service: a
//! distributed worker whose properties are those the `quay.io/debezium/connect` image derives from the
//! service's `environment:` in `docker-compose.yml` (its env config provider and allowlist included), the
//! connector on its plugin path, and the connector registered by the repository's own
//! `docker/debezium/register.sh` with `docker/debezium/ingest-postgres.json`.
//!
//! Only what cannot hold outside a container differs: addresses (loopback ports instead of compose's host
//! names) and where the files are.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::child;
use crate::jvm::{self, Install};
use crate::stack::repository_root;

/// The logger whose INFO line says the worker serves its REST API.
const STARTED_LOGGER: &str = "org.apache.kafka.connect.runtime.Connect";
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// The connector's name as `register.sh` registers it by default.
pub const CONNECTOR: &str = "ingest-postgres";

/// A running Connect worker. Dropping it stops the process and removes its files.
pub struct Connect {
    dir: tempfile::TempDir,
    install: Install,
    more_plugins: Vec<PathBuf>,
    port: u16,
    /// The worker's environment: the variables compose gives the container that the worker reads itself
    /// (`DEBEZIUM_DB_PASSWORD`, through the env config provider).
    env: BTreeMap<String, String>,
    process: Option<Child>,
}

impl Connect {
    /// Starts a worker against the broker at `bootstrap_servers`, with `db_password` as the
    /// `DEBEZIUM_DB_PASSWORD` compose passes it, its REST API on 127.0.0.1:`port` (0: a free port), and
    /// waits until the API answers.
    pub async fn start(bootstrap_servers: &str, db_password: &str, port: u16) -> Result<Self> {
        Self::start_with_plugins(bootstrap_servers, db_password, port, &[]).await
    }

    /// [`Connect::start`] with more plugin directories on its `plugin.path` (e.g.
    /// [`Install::jdbc_sink_plugins`]).
    pub async fn start_with_plugins(
        bootstrap_servers: &str,
        db_password: &str,
        port: u16,
        more_plugins: &[PathBuf],
    ) -> Result<Self> {
        let install = Install::pinned()?;
        let dir = child::service_dir("connect")?;
        let mut connect =
            Self { dir, install, more_plugins: more_plugins.to_vec(), port: 0, env: BTreeMap::new(), process: None };
        let compose = compose_environment()?;
        let mut start = async |port| {
            connect.port = port;
            let (properties, env) = worker_properties(&compose, bootstrap_servers, port, &connect.plugin_path())?;
            connect.env = env;
            connect.env.insert("DEBEZIUM_DB_PASSWORD".into(), db_password.into());
            fs::write(connect.dir.path().join("worker.properties"), render(&properties))?;
            fs::write(connect.dir.path().join("log4j2.properties"), jvm::log4j2_properties(STARTED_LOGGER))?;
            connect.spawn().await
        };
        if port == 0 {
            child::on_free_port("Kafka Connect", start).await?;
        } else {
            start(port).await.with_context(|| format!("start Kafka Connect on port {port}"))?;
        }
        Ok(connect)
    }

    /// `http://127.0.0.1:PORT`: Connect's REST API.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `plugin.path`: Debezium's Postgres connector, then the others asked for.
    fn plugin_path(&self) -> String {
        let dirs = std::iter::once(&self.install.debezium_plugins).chain(&self.more_plugins);
        dirs.map(|dir| dir.display().to_string()).collect::<Vec<_>>().join(",")
    }

    /// Registers the connector as compose's `register-connector` service does: `register.sh` PUTs
    /// `ingest-postgres.json`, with Postgres at 127.0.0.1:`pg_port` instead of compose's `postgres:5432`, and
    /// waits until the connector and its task run. Returns the script's output.
    pub fn register(&self, pg_port: u16) -> Result<String> {
        let config = connector_config(pg_port)?;
        let path = self.dir.path().join("ingest-postgres.json");
        fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
        let output = Command::new("sh")
            .arg(repository_root().join("docker/debezium/register.sh"))
            .env("CONNECT_URL", self.url())
            .env("CONNECTOR_CONFIG", &path)
            .env("RUNNING_TIMEOUT", "120")
            .output()
            .context("run docker/debezium/register.sh (needs curl)")?;
        let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        if !output.status.success() {
            bail!("register.sh failed ({}):\n{log}\nworker log:\n{}", output.status, self.log());
        }
        Ok(log)
    }

    /// The connector's status (`GET /connectors/ingest-postgres/status`).
    pub async fn status(&self) -> Result<serde_json::Value> {
        self.get(&format!("/connectors/{CONNECTOR}/status")).await
    }

    /// The states of the connector and of its tasks, e.g. `["RUNNING", "RUNNING"]`.
    pub async fn states(&self) -> Result<Vec<String>> {
        let status = self.status().await?;
        let connector = status["connector"]["state"].as_str().unwrap_or("UNKNOWN").to_owned();
        let tasks = status["tasks"].as_array().cloned().unwrap_or_default();
        Ok(std::iter::once(connector)
            .chain(tasks.iter().map(|t| t["state"].as_str().unwrap_or("UNKNOWN").to_owned()))
            .collect())
    }

    /// `GET path` on the REST API, as JSON.
    pub async fn get(&self, path: &str) -> Result<serde_json::Value> {
        self.request("GET", path, None).await
    }

    /// `PUT path` of `body` on the REST API (e.g. `/connectors/NAME/config` to create or change a connector),
    /// its answer as JSON.
    pub async fn put(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value> {
        self.request("PUT", path, Some(body)).await
    }

    async fn request(&self, method: &str, path: &str, body: Option<&serde_json::Value>) -> Result<serde_json::Value> {
        // Creating a connector validates its configuration, which loads its plugin: slower than a read.
        let max_time = if body.is_some() { "30" } else { "10" };
        let mut curl = tokio::process::Command::new("curl");
        curl.args(["-sS", "--fail-with-body", "--max-time", max_time, "-X", method]);
        if let Some(body) = body {
            curl.args(["-H", "Content-Type: application/json", "--data-binary"]).arg(body.to_string());
        }
        let output = curl.arg(format!("{}{path}", self.url())).output().await.context("run curl")?;
        if !output.status.success() {
            let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
            bail!("{method} {path}: {stdout}{stderr}");
        }
        serde_json::from_slice(&output.stdout).with_context(|| format!("{method} {path}: not JSON"))
    }

    /// The worker's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Child::id)
    }

    /// The worker's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Where the worker logs (WARN and above, and that it started).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("connect.log")
    }

    async fn spawn(&mut self) -> Result<()> {
        let log_path = self.log_path();
        let log = File::options().create(true).append(true).open(&log_path)?;
        let logged_before = log.metadata()?.len();
        let mut command = self.install.java(
            "org.apache.kafka.connect.cli.ConnectDistributed",
            "768m",
            &self.dir.path().join("log4j2.properties"),
        );
        command
            .arg(self.dir.path().join("worker.properties"))
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        child::bind_to_parent(&mut command, None, libc::SIGKILL);
        self.process = Some(command.spawn().context("start Kafka Connect (is Java 17 installed?)")?);
        let started = self.wait_until_serving(&log_path, logged_before).await;
        if started.is_err() {
            self.stop();
        }
        started
    }

    async fn wait_until_serving(&mut self, log_path: &Path, logged_before: u64) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let since_spawn = || {
                let log = fs::read(log_path).unwrap_or_default();
                String::from_utf8_lossy(log.get(logged_before as usize..).unwrap_or_default()).into_owned()
            };
            if let Some(process) = self.process.as_mut()
                && let Some(status) = process.try_wait()?
            {
                bail!("Kafka Connect exited with {status}:\n{}", since_spawn());
            }
            if self.get("/connectors").await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("Kafka Connect did not serve within {START_TIMEOUT:?}:\n{}", since_spawn());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Kills the worker (SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            child::stop(&mut process, libc::SIGKILL, Duration::from_secs(5));
        }
    }
}

impl Drop for Connect {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `services.connect.environment` of `docker-compose.yml`, with `${NAME:-default}` taken at its default.
fn compose_environment() -> Result<BTreeMap<String, String>> {
    let path = repository_root().join("docker-compose.yml");
    let text = fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let compose: serde_norway::Value = serde_norway::from_str(&text)?;
    let environment = compose["services"]["connect"]["environment"]
        .as_mapping()
        .context("docker-compose.yml: services.connect.environment is not a mapping")?;
    let mut env = BTreeMap::new();
    for (name, value) in environment {
        let name = name.as_str().context("an environment name that is not a string")?.to_owned();
        let value = match value {
            serde_norway::Value::String(s) => s.clone(),
            serde_norway::Value::Number(n) => n.to_string(),
            serde_norway::Value::Bool(b) => b.to_string(),
            serde_norway::Value::Null => continue,
            other => bail!("docker-compose.yml: connect's {name} is {other:?}"),
        };
        env.insert(name, default_of(&value));
    }
    Ok(env)
}

/// `${NAME:-default}` as compose reads it with NAME unset.
fn default_of(value: &str) -> String {
    match value.strip_prefix("${").and_then(|v| v.strip_suffix('}')).and_then(|v| v.split_once(":-")) {
        Some((_, default)) => default.to_owned(),
        None => value.to_owned(),
    }
}

/// The worker properties the Debezium connect image writes for the environment `compose` (its
/// docker-entrypoint.sh: Kafka's `connect-distributed.properties`, the image's defaults, then the
/// short names and every `CONNECT_A_B` as `a.b`), with the addresses of this machine. Returns them and
/// the variables left for the worker's own environment.
fn worker_properties(
    compose: &BTreeMap<String, String>,
    bootstrap_servers: &str,
    port: u16,
    plugin_path: &str,
) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>)> {
    let mut properties: BTreeMap<String, String> = [
        // Kafka's config/connect-distributed.properties, which the image starts from.
        ("key.converter", "org.apache.kafka.connect.json.JsonConverter"),
        ("value.converter", "org.apache.kafka.connect.json.JsonConverter"),
        ("key.converter.schemas.enable", "true"),
        ("value.converter.schemas.enable", "true"),
        ("offset.storage.topic", "connect-offsets"),
        ("config.storage.topic", "connect-configs"),
        ("status.storage.topic", "connect-status"),
        ("offset.storage.replication.factor", "1"),
        ("config.storage.replication.factor", "1"),
        ("status.storage.replication.factor", "1"),
        ("offset.flush.interval.ms", "10000"),
        // The image's own defaults (GROUP_ID, OFFSET_FLUSH_*, SHUTDOWN_TIMEOUT).
        ("group.id", "1"),
        ("offset.flush.interval.ms", "60000"),
        ("offset.flush.timeout.ms", "5000"),
        ("task.shutdown.graceful.timeout.ms", "10000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut env = BTreeMap::new();
    for (name, value) in compose {
        let property = match name.as_str() {
            "BOOTSTRAP_SERVERS" => "bootstrap.servers".to_owned(),
            "GROUP_ID" => "group.id".to_owned(),
            "CONFIG_STORAGE_TOPIC" => "config.storage.topic".to_owned(),
            "OFFSET_STORAGE_TOPIC" => "offset.storage.topic".to_owned(),
            "STATUS_STORAGE_TOPIC" => "status.storage.topic".to_owned(),
            "ADVERTISED_HOST_NAME" => "rest.advertised.host.name".to_owned(),
            "ADVERTISED_PORT" => "rest.advertised.port".to_owned(),
            "KEY_CONVERTER" => "key.converter".to_owned(),
            "VALUE_CONVERTER" => "value.converter".to_owned(),
            "OFFSET_FLUSH_INTERVAL_MS" => "offset.flush.interval.ms".to_owned(),
            "OFFSET_FLUSH_TIMEOUT_MS" => "offset.flush.timeout.ms".to_owned(),
            "SHUTDOWN_TIMEOUT" => "task.shutdown.graceful.timeout.ms".to_owned(),
            other => match other.strip_prefix("CONNECT_") {
                Some(rest) => rest.to_lowercase().replace('_', "."),
                None => {
                    env.insert(name.clone(), value.clone());
                    continue;
                }
            },
        };
        properties.insert(property, value.clone());
    }
    if !properties.contains_key("bootstrap.servers") {
        bail!("docker-compose.yml's connect service sets no BOOTSTRAP_SERVERS");
    }
    // This machine's addresses for compose's host names.
    properties.insert("bootstrap.servers".into(), bootstrap_servers.into());
    properties.insert("listeners".into(), format!("http://127.0.0.1:{port}"));
    properties.insert("rest.advertised.host.name".into(), "127.0.0.1".into());
    properties.insert("rest.advertised.port".into(), port.to_string());
    properties.insert("plugin.path".into(), plugin_path.to_owned());
    Ok((properties, env))
}

fn render(properties: &BTreeMap<String, String>) -> String {
    properties.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

/// `docker/debezium/ingest-postgres.json`, with Postgres at 127.0.0.1:`pg_port`.
pub fn connector_config(pg_port: u16) -> Result<serde_json::Value> {
    let path = repository_root().join("docker/debezium/ingest-postgres.json");
    let text = fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let mut config: serde_json::Value = serde_json::from_str(&text)?;
    let object = config.as_object_mut().context("ingest-postgres.json is not an object")?;
    object.insert("database.hostname".into(), "127.0.0.1".into());
    object.insert("database.port".into(), pg_port.to_string().into());
    Ok(config)
}
