//! Apache Kafka and Debezium as `scripts/install-kafka.sh` installs them from Maven Central: where their jars
//! are, and a `java` command that runs one of their main classes with the repository's pins.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::stack::repository_root;

/// The pins of `scripts/kafka-versions.env`, the install script's and compose's single source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versions {
    pub kafka: String,
    pub debezium: String,
    /// Debezium's JDBC sink connector, which only the drain bench runs.
    pub jdbc_sink: String,
}

impl Versions {
    /// Reads `scripts/kafka-versions.env`.
    pub fn pinned() -> Result<Self> {
        let path = repository_root().join("scripts/kafka-versions.env");
        let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let pins: HashMap<&str, &str> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| line.split_once('='))
            .collect();
        let pin = |name: &str| {
            pins.get(name).map(|v| (*v).to_owned()).with_context(|| format!("{} pins no {name}", path.display()))
        };
        Ok(Self {
            kafka: pin("KAFKA_VERSION")?,
            debezium: pin("DEBEZIUM_VERSION")?,
            jdbc_sink: pin("JDBC_SINK_VERSION")?,
        })
    }
}

/// The directories the install script fills.
#[derive(Clone, Debug)]
pub struct Install {
    /// `kafka-<version>/libs`: the broker's and Connect's classpath.
    pub kafka_libs: PathBuf,
    /// `debezium-<version>/plugins`: Connect's `plugin.path`, with `debezium-connector-postgres/` in it.
    pub debezium_plugins: PathBuf,
}

impl Install {
    /// The installed jars of the pinned versions, or an error that says how to install them.
    pub fn pinned() -> Result<Self> {
        let versions = Versions::pinned()?;
        let home = jvm_home()?;
        let install = Self {
            kafka_libs: home.join(format!("kafka-{}", versions.kafka)).join("libs"),
            debezium_plugins: home.join(format!("debezium-{}", versions.debezium)).join("plugins"),
        };
        for dir in [&install.kafka_libs, &install.debezium_plugins] {
            if !dir.parent().is_some_and(|d| d.join(".installed").is_file()) {
                bail!(
                    "Apache Kafka {} and Debezium {} are not installed in {}: run scripts/install-kafka.sh \
                     (scripts/install-test-deps.sh runs it)",
                    versions.kafka,
                    versions.debezium,
                    home.display()
                );
            }
        }
        Ok(install)
    }

    /// `debezium-jdbc-sink-<version>/plugins`, with `debezium-connector-jdbc/` in it, once
    /// `scripts/install-kafka.sh --jdbc-sink` (or `scripts/bench-peer.sh`) installed it.
    pub fn jdbc_sink_plugins() -> Result<PathBuf> {
        let version = Versions::pinned()?.jdbc_sink;
        let dir = jvm_home()?.join(format!("debezium-jdbc-sink-{version}"));
        if !dir.join(".installed").is_file() {
            bail!("Debezium's JDBC sink {version} is not installed in {}: run scripts/bench-peer.sh", dir.display());
        }
        Ok(dir.join("plugins"))
    }

    /// `java` running `main_class` from the Kafka classpath with at most `heap` of heap (`-Xmx`), logging
    /// through `log4j2` (a Log4j 2 properties file).
    ///
    /// The JVM runs on the real clock even when the tests run under libfaketime
    /// (`scripts/test-time-travel.sh`): the preload would reach the JVM through the environment, and Java's
    /// timers are not made to run under it. Clients with a moved clock then stamp their records ahead of the
    /// broker's clock, which [`Broker`](crate::Broker) allows for.
    pub fn java(&self, main_class: &str, heap: &str, log4j2: &Path) -> Command {
        let mut command = Command::new(java_bin());
        command
            .env_remove("LD_PRELOAD")
            .env_remove("FAKETIME")
            .arg(format!("-Xmx{heap}"))
            .arg("-XX:+ExitOnOutOfMemoryError")
            .arg("-Djava.awt.headless=true")
            .arg(format!("-Dlog4j2.configurationFile={}", log4j2.display()))
            .arg("-cp")
            .arg(self.kafka_libs.join("*"))
            .arg(main_class);
        command
    }
}

/// `SOCIAL_INGEST_JVM_HOME`, else `$XDG_CACHE_HOME/social-ingest/jvm`, else `~/.cache/social-ingest/jvm`:
/// the install script's default.
fn jvm_home() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("SOCIAL_INGEST_JVM_HOME") {
        return Ok(PathBuf::from(home));
    }
    let cache = match std::env::var_os("XDG_CACHE_HOME") {
        Some(cache) => PathBuf::from(cache),
        None => PathBuf::from(std::env::var_os("HOME").context("neither HOME nor SOCIAL_INGEST_JVM_HOME is set")?)
            .join(".cache"),
    };
    Ok(cache.join("social-ingest").join("jvm"))
}

/// `$JAVA_HOME/bin/java` when JAVA_HOME is set, else `java` on the PATH.
fn java_bin() -> PathBuf {
    std::env::var_os("JAVA_HOME").map_or_else(|| PathBuf::from("java"), |home| PathBuf::from(home).join("bin/java"))
}

/// A Log4j 2 properties file: WARN and above to the console (the process's log file), and the INFO lines that
/// say a service is up, which testkit waits for.
pub(crate) fn log4j2_properties(started_logger: &str) -> String {
    format!(
        "rootLogger.level=WARN\n\
         rootLogger.appenderRef.console.ref=CONSOLE\n\
         appender.console.type=Console\n\
         appender.console.name=CONSOLE\n\
         appender.console.layout.type=PatternLayout\n\
         appender.console.layout.pattern=[%d] %p %m (%c)%n\n\
         logger.started.name={started_logger}\n\
         logger.started.level=INFO\n"
    )
}
