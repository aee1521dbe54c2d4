//! Debian's Prometheus beside the pipeline, without containers: the compose stack's configuration
//! (`docker/prometheus/prometheus.yml` and the rule files it names) with each job's targets pointed at local
//! addresses, on a loopback port, with its data in a temporary directory that is removed on drop. The
//! observability test and `local-pipeline --prometheus` run it this way, so both check the file compose mounts.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_norway::{Mapping, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::child;

/// The compose stack's Prometheus configuration, relative to the repository.
pub const CONFIG: &str = "docker/prometheus/prometheus.yml";

/// The job in [`CONFIG`] that scrapes Prometheus itself: [`Prometheus::start`] points it at its own address.
pub const SELF_JOB: &str = "prometheus";

/// [`CONFIG`] rewritten for this machine.
#[derive(Debug)]
pub struct LocalConfig {
    pub yaml: String,
    /// Jobs of the configuration that were given no local address, and were left out (Connect, say).
    pub dropped_jobs: Vec<String>,
}

/// Rewrites the configuration at `config`: each job named in `targets` scrapes only that `host:port`, the other
/// jobs are left out, the rule files are named by absolute paths (so the result can be written anywhere), and
/// with `interval` both the scrape and the evaluation interval are that (e.g. `1s`, for a test that cannot
/// wait 15 s a sample).
pub fn local_config(config: &Path, targets: &BTreeMap<String, String>, interval: Option<&str>) -> Result<LocalConfig> {
    let text = std::fs::read_to_string(config).with_context(|| format!("read {}", config.display()))?;
    let mut root: Value = serde_norway::from_str(&text).with_context(|| format!("{} is not YAML", config.display()))?;
    let dir = config.parent().context("the configuration file has no directory")?;
    let root_map = root.as_mapping_mut().with_context(|| format!("{} is not a mapping", config.display()))?;

    if let Some(interval) = interval {
        let global = root_map.entry("global".into()).or_insert_with(|| Value::Mapping(Mapping::new()));
        let global = global.as_mapping_mut().context("`global` is not a mapping")?;
        global.insert("scrape_interval".into(), interval.into());
        global.insert("evaluation_interval".into(), interval.into());
        // A timeout longer than the interval is refused.
        global.remove("scrape_timeout");
    }

    if let Some(rule_files) = root_map.get_mut("rule_files") {
        for file in rule_files.as_sequence_mut().context("`rule_files` is not a list")? {
            let name = file.as_str().context("a rule file is not a string")?;
            let path = dir.join(name);
            if !path.is_file() {
                bail!("{} names the rule file {name}, which is not at {}", config.display(), path.display());
            }
            *file = path.to_str().context("a rule file's path is not UTF-8")?.into();
        }
    }

    let jobs = root_map.get_mut("scrape_configs").and_then(Value::as_sequence_mut);
    let jobs = jobs.with_context(|| format!("{} has no `scrape_configs` list", config.display()))?;
    let mut dropped_jobs = Vec::new();
    let mut seen = Vec::new();
    let mut kept = Vec::new();
    for mut job in jobs.drain(..) {
        let name = job.get("job_name").and_then(Value::as_str).context("a scrape config without job_name")?.to_owned();
        let Some(target) = targets.get(&name) else {
            dropped_jobs.push(name);
            continue;
        };
        let job_map = job.as_mapping_mut().context("a scrape config is not a mapping")?;
        // Service discovery (dns_sd_configs for scaled inserters, say) would find the containers' names.
        job_map.retain(|key, _| !key.as_str().is_some_and(|key| key.ends_with("_sd_configs")));
        let static_config = Mapping::from_iter([("targets".into(), Value::Sequence(vec![target.as_str().into()]))]);
        job_map.insert("static_configs".into(), Value::Sequence(vec![Value::Mapping(static_config)]));
        if interval.is_some() {
            job_map.remove("scrape_interval");
            job_map.remove("scrape_timeout");
        }
        seen.push(name);
        kept.push(job);
    }
    *jobs = kept;
    if let Some(missing) = targets.keys().find(|job| !seen.contains(job)) {
        bail!("{} has no job `{missing}`", config.display());
    }
    let yaml = serde_norway::to_string(&root).context("write the configuration")?;
    Ok(LocalConfig { yaml, dropped_jobs })
}

/// Where and how to run Prometheus.
#[derive(Clone, Debug)]
pub struct PrometheusOptions {
    /// The configuration to rewrite: [`CONFIG`] by default.
    pub config: PathBuf,
    /// `host:port` for each job, besides [`SELF_JOB`].
    pub targets: BTreeMap<String, String>,
    /// Scrape and evaluation interval instead of the configuration's.
    pub interval: Option<String>,
    /// The port on 127.0.0.1; 0 for a free one.
    pub port: u16,
    /// Where its log goes; its temporary directory by default.
    pub log: Option<PathBuf>,
}

impl PrometheusOptions {
    pub fn new(targets: BTreeMap<String, String>) -> Self {
        Self { config: crate::stack::repository_root().join(CONFIG), targets, interval: None, port: 0, log: None }
    }
}

/// A running Prometheus. Dropping it stops it and removes its data.
pub struct Prometheus {
    dir: tempfile::TempDir,
    port: u16,
    log: PathBuf,
    dropped_jobs: Vec<String>,
    process: Option<Child>,
}

impl Prometheus {
    pub async fn start(options: &PrometheusOptions) -> Result<Self> {
        let binary = find_program("prometheus", "PROMETHEUS_BIN")?;
        let dir = child::service_dir("prometheus")?;
        let log = options.log.clone().unwrap_or_else(|| dir.path().join("prometheus.log"));
        let mut prometheus = Self { dir, port: options.port, log, dropped_jobs: Vec::new(), process: None };
        if options.port == 0 {
            child::on_free_port("Prometheus", async |port| {
                prometheus.port = port;
                prometheus.spawn(&binary, options).await
            })
            .await?;
        } else {
            prometheus
                .spawn(&binary, options)
                .await
                .with_context(|| format!("start Prometheus on {}", options.port))?;
        }
        Ok(prometheus)
    }

    async fn spawn(&mut self, binary: &Path, options: &PrometheusOptions) -> Result<()> {
        let mut targets = options.targets.clone();
        targets.entry(SELF_JOB.to_owned()).or_insert_with(|| self.address());
        let config = local_config(&options.config, &targets, options.interval.as_deref())?;
        self.dropped_jobs = config.dropped_jobs;
        let config_path = self.dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config.yaml)?;
        let data = self.dir.path().join("data");
        // A fresh database at each attempt: one that lost a port race may have left a lock behind.
        let _ = std::fs::remove_dir_all(&data);
        let log = File::options().create(true).append(true).open(&self.log)?;
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address={}", self.address()))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        child::bind_to_parent(&mut command, None, libc::SIGKILL);
        self.process = Some(command.spawn().with_context(|| format!("start {}", binary.display()))?);
        let ready = self.wait_until_ready().await;
        if ready.is_err() {
            self.stop();
        }
        ready
    }

    async fn wait_until_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(process) = self.process.as_mut()
                && let Some(status) = process.try_wait()?
            {
                bail!("Prometheus exited with {status}:\n{}", self.log());
            }
            if matches!(self.client().get("/-/ready").await, Ok((200, _))) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("Prometheus was not ready on {} within 60 s:\n{}", self.url(), self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address())
    }

    pub fn dropped_jobs(&self) -> &[String] {
        &self.dropped_jobs
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            child::stop(&mut process, libc::SIGTERM, Duration::from_secs(10));
        }
    }

    /// Its HTTP API.
    pub fn client(&self) -> Client {
        Client::new(&self.address())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Prometheus's HTTP API at an address, this crate's or another process's (`local-pipeline --prometheus`).
#[derive(Clone, Debug)]
pub struct Client {
    address: String,
}

impl Client {
    /// `address` is `host:port`.
    pub fn new(address: &str) -> Self {
        Self { address: address.to_owned() }
    }

    /// The `data` of an HTTP API answer (`/api/v1/...`), which must have `"status": "success"`.
    pub async fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<serde_json::Value> {
        let query: Vec<String> =
            params.iter().map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v))).collect();
        let target = if query.is_empty() { path.to_owned() } else { format!("{path}?{}", query.join("&")) };
        let (status, body) = self.get(&target).await?;
        let answer: serde_json::Value = serde_json::from_slice(&body)
            .with_context(|| format!("GET {target}: {status}, not JSON: {}", String::from_utf8_lossy(&body)))?;
        if answer["status"] != "success" {
            bail!("GET {target}: {status} {}: {}", answer["errorType"], answer["error"]);
        }
        Ok(answer["data"].clone())
    }

    /// The instant vector `promql` evaluates to now: `data.result` of `/api/v1/query`.
    pub async fn query(&self, promql: &str) -> Result<Vec<serde_json::Value>> {
        let data = self.api("/api/v1/query", &[("query", promql)]).await?;
        match data["result"].as_array() {
            Some(result) if data["resultType"] == "vector" => Ok(result.clone()),
            _ => bail!("`{promql}` is not an instant vector: {data}"),
        }
    }

    /// HTTP/1.0, so that the answer ends with the connection: no chunked encoding to undo.
    async fn get(&self, target: &str) -> Result<(u16, Vec<u8>)> {
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(&self.address).await?;
            let request = format!("GET {target} HTTP/1.0\r\nHost: {}\r\n\r\n", self.address);
            stream.write_all(request.as_bytes()).await?;
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await?;
            anyhow::Ok(answer)
        };
        let answer = tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .with_context(|| format!("GET {target}: no answer within 30 s"))??;
        let split = answer.windows(4).position(|w| w == b"\r\n\r\n").context("an answer without a header end")?;
        let head = String::from_utf8_lossy(&answer[..split]);
        let status = head.split_whitespace().nth(1).and_then(|code| code.parse().ok());
        let status = status.with_context(|| format!("GET {target}: no status in `{head}`"))?;
        Ok((status, answer[split + 4..].to_vec()))
    }
}

/// `variable`, else `name` on the PATH.
pub fn find_program(name: &str, variable: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(found) = std::env::split_paths(&path).map(|dir| dir.join(name)).find(|bin| bin.is_file()) {
        return Ok(found);
    }
    bail!(
        "`{name}` is not installed: run scripts/install-test-deps.sh (it installs Debian's `prometheus` package), \
         or set {variable}"
    )
}

/// RFC 3986's unreserved characters stay; every other byte is `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
