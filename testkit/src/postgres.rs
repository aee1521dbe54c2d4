//! A throwaway PostgreSQL cluster: initdb into a temporary directory, the postmaster on a free loopback port
//! with `wal_level=logical`, trust authentication, and one fresh database per test.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use sea_orm_migration::MigratorTrait;

use crate::child::{self, RunAs};
use crate::names::unique_name;

/// Where Debian puts the PostgreSQL 15 server binaries; `PG_BIN` overrides it.
const DEFAULT_PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A running cluster. Dropping it stops the server and removes its files.
pub struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
    run_as: Option<RunAs>,
    /// The postmaster, when running; `None` between [`Postgres::stop`] and [`Postgres::restart`].
    server: Option<Child>,
    /// Started by [`Postgres::start_durable`]: without [`NO_DURABILITY`] on the command line.
    durable: bool,
}

/// A database of its own for one test, migrated by the migrator it was made with.
pub struct TestDatabase {
    pub name: String,
    /// `postgres://postgres@127.0.0.1:PORT/NAME`, for the code under test and for child processes.
    pub url: String,
    pub conn: DatabaseConnection,
}

impl Postgres {
    /// Creates and starts a new cluster on a free port; returns once it accepts connections.
    pub async fn start() -> Result<Self> {
        Self::start_on_port(0).await
    }

    /// Creates and starts a new cluster on a free port with `fsync` and `full_page_writes` at Postgres's
    /// defaults (on), as users run it, for benchmarks. The test clusters set both off on the command line,
    /// which `ALTER SYSTEM` cannot override; here `ALTER SYSTEM` and `pg_reload_conf()` can turn them off.
    pub async fn start_durable() -> Result<Self> {
        Self::start_as(0, true).await
    }

    /// Creates and starts a new cluster on 127.0.0.1:`port`, or on a free port when `port` is 0.
    pub async fn start_on_port(port: u16) -> Result<Self> {
        Self::start_as(port, false).await
    }

    async fn start_as(port: u16, durable: bool) -> Result<Self> {
        let run_as = RunAs::for_postgres()?;
        let dir = child::service_dir("pg")?;
        if let Some(run_as) = run_as {
            run_as.chown(dir.path())?;
        }
        let mut pg = Self { dir, port, run_as, server: None, durable };
        pg.initdb()?;
        if port == 0 {
            child::on_free_port("postgres", async |port| {
                pg.port = port;
                pg.restart().await
            })
            .await?;
        } else {
            pg.restart().await.with_context(|| format!("start postgres on port {port}"))?;
        }
        Ok(pg)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `database` as the superuser `postgres`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The URL of database `database` as `user` with `password` (which trust authentication does not check);
    /// both must be URL-safe.
    pub fn url_as(&self, user: &str, password: &str, database: &str) -> String {
        format!("postgres://{user}:{password}@127.0.0.1:{}/{database}", self.port)
    }

    /// `psql` connected to `database` as the superuser, stopping at the first error (`ON_ERROR_STOP`) and
    /// reading no `~/.psqlrc`: add `-v name=value`, `-f FILE` or `-c SQL` and run it.
    pub fn psql(&self, database: &str) -> Command {
        let mut command = Command::new(pg_bin("psql"));
        command
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", database])
            .stdin(Stdio::null());
        command
    }

    /// Creates an empty database with a unique name.
    pub async fn create_database(&self) -> Result<(String, String)> {
        let name = unique_name("test");
        let admin = Database::connect(self.url("postgres")).await.context("connect as postgres")?;
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
        admin.close().await?;
        let url = self.url(&name);
        Ok((name, url))
    }

    /// Creates the empty database `name`.
    pub async fn create_named_database(&self, name: &str) -> Result<()> {
        let admin = Database::connect(self.url("postgres")).await.context("connect as postgres")?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("create database {name}"))?;
        admin.close().await?;
        Ok(())
    }

    /// Creates a database with a unique name and applies every migration of `M`.
    pub async fn migrated_database<M: MigratorTrait>(&self) -> Result<TestDatabase> {
        let (name, url) = self.create_database().await?;
        let conn = Database::connect(&url).await.with_context(|| format!("connect to {url}"))?;
        M::up(&conn, None).await.context("apply migrations")?;
        Ok(TestDatabase { name, url, conn })
    }

    /// Stops the server (fast shutdown), keeping its data: to test what happens while the database is down.
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            child::stop(&mut server, libc::SIGINT, Duration::from_secs(10));
        }
    }

    /// Starts the server again (after [`Postgres::stop`]) on the same port with the same data.
    pub async fn restart(&mut self) -> Result<()> {
        if self.server.is_some() {
            return Ok(());
        }
        let log = File::create(self.dir.path().join("postgres.log"))?;
        let mut command = Command::new(pg_bin("postgres"));
        command
            .arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args(self.settings().flat_map(|setting| ["-c", setting]))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SIGQUIT: immediate shutdown, which also takes the postmaster's own children down.
        child::bind_to_parent(&mut command, self.run_as, libc::SIGQUIT);
        self.server = Some(command.spawn().context("start postgres")?);
        let ready = self.wait_until_ready().await;
        if ready.is_err() {
            self.stop();
        }
        ready
    }

    /// The `-c` settings of the postmaster.
    fn settings(&self) -> impl Iterator<Item = &'static str> {
        let durability: &[&str] = if self.durable { &[] } else { NO_DURABILITY };
        SERVER_SETTINGS.iter().chain(durability).copied()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn initdb(&self) -> Result<()> {
        let mut command = Command::new(pg_bin("initdb"));
        command
            .arg("-D")
            .arg(self.data_dir())
            .args(["-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        child::bind_to_parent(&mut command, self.run_as, libc::SIGKILL);
        let output =
            command.output().context("run initdb (is PostgreSQL 15 installed? see scripts/install-test-deps.sh)")?;
        if !output.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(())
    }

    async fn wait_until_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(server) = self.server.as_mut()
                && let Some(status) = server.try_wait()?
            {
                bail!("postgres exited with {status}: {}", self.log_tail());
            }
            match Database::connect(self.url("postgres")).await {
                Ok(conn) => {
                    conn.close().await?;
                    return Ok(());
                }
                Err(e) if Instant::now() > deadline => {
                    bail!("postgres did not accept connections within 30 s: {e}; log: {}", self.log_tail())
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The postmaster's process id, while it runs.
    pub fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().map(Child::id)
    }

    /// The cluster's directory (data, socket, `postgres.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            // Immediate shutdown: the data is thrown away anyway.
            child::stop(&mut server, libc::SIGQUIT, Duration::from_secs(10));
        }
    }
}

/// Logical WAL as in production.
const SERVER_SETTINGS: &[&str] = &[
    "listen_addresses=127.0.0.1",
    "wal_level=logical",
    "max_wal_senders=10",
    "max_replication_slots=10",
    "max_connections=200",
    "log_min_messages=warning",
];

/// Durability off, because the cluster is thrown away after the test (all but [`Postgres::start_durable`]).
const NO_DURABILITY: &[&str] = &["fsync=off", "full_page_writes=off"];

fn pg_bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("PG_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_PG_BIN));
    dir.join(name)
}
