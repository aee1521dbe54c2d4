//! The compose stack without containers: a Postgres cluster with the compose file's roles
//! (`docker/postgres/roles.sql`) and the `ingest` database migrated by `ingest_owner`, a broker, and the
//! pipeline's binaries (`scraper`, `inserter`) as commands pointed at them, each as the role compose gives it.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sea_orm::{Database, DatabaseConnection};

use crate::connect::Connect;
use crate::{Broker, Postgres};

/// The database compose creates and the pipeline writes to.
pub const DATABASE: &str = "ingest";

/// The roles `roles.sql` creates, each with the least privilege its process needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Runs the migrations and owns the tables.
    Owner,
    /// SELECT, INSERT, UPDATE on the tables (default privileges of the owner).
    Inserter,
    /// LOGIN REPLICATION and SELECT: what the Debezium connector needs.
    Debezium,
    /// Read-only, for people.
    Analyst,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Inserter, Role::Debezium, Role::Analyst];

    pub fn name(self) -> &'static str {
        match self {
            Role::Owner => "ingest_owner",
            Role::Inserter => "inserter",
            Role::Debezium => "debezium",
            Role::Analyst => "analyst",
        }
    }

    /// The psql variable `roles.sql` reads the role's password from.
    fn password_variable(self) -> &'static str {
        match self {
            Role::Owner => "owner_password",
            Role::Inserter => "inserter_password",
            Role::Debezium => "debezium_password",
            Role::Analyst => "analyst_password",
        }
    }
}

/// Runs the repository's roles.sql on `database` with every role, `redriver` included, and each role's name
/// as its password: for tests that connect as each role ([`role_url`]).
pub fn apply_roles_named(pg: &Postgres, database: &str) -> Result<()> {
    let variables = [
        ("owner_password", "ingest_owner"),
        ("inserter_password", "inserter"),
        ("debezium_password", "debezium"),
        ("analyst_password", "analyst"),
        ("redriver_password", "redriver"),
    ];
    apply_roles_sql(pg, database, &repository_root().join("docker/postgres/roles.sql"), &variables)
}

/// `postgres://ROLE:ROLE@127.0.0.1:PORT/database`: `role` as [`apply_roles_named`] made it.
pub fn role_url(pg: &Postgres, role: &str, database: &str) -> String {
    pg.url_as(role, role, database)
}

/// Runs `roles_sql` (the repository's: `docker/postgres/roles.sql`) on `database` as the superuser, with the
/// psql variables `variables` (`owner_password`, ...), as compose's init-roles.sh does.
pub fn apply_roles_sql(pg: &Postgres, database: &str, roles_sql: &Path, variables: &[(&str, &str)]) -> Result<()> {
    let mut psql = pg.psql(database);
    for (name, value) in variables {
        psql.arg("-v").arg(format!("{name}={value}"));
    }
    psql.arg("-f").arg(roles_sql);
    let output = psql.output().context("run psql")?;
    if !output.status.success() {
        bail!(
            "psql -f {} failed ({}): {}",
            roles_sql.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Where and how to start the stack.
#[derive(Clone, Debug)]
pub struct StackOptions {
    /// Postgres's port on 127.0.0.1; 0 for a free one.
    pub pg_port: u16,
    /// The broker's port on 127.0.0.1; 0 for a free one.
    pub kafka_port: u16,
    /// The roles script compose runs at the database's first start.
    pub roles_sql: PathBuf,
    /// Where the `migration`, `scraper` and `inserter` binaries are.
    pub bin_dir: PathBuf,
}

impl StackOptions {
    /// Free ports, the repository's `roles.sql`, and the binaries next to the running executable.
    pub fn new() -> Result<Self> {
        Ok(Self {
            pg_port: 0,
            kafka_port: 0,
            roles_sql: repository_root().join("docker/postgres/roles.sql"),
            bin_dir: binaries_dir()?,
        })
    }
}

/// The running services. Dropping it stops them and removes their files.
pub struct Stack {
    pub pg: Postgres,
    pub broker: Broker,
    /// One per [`Role::ALL`], made up at start: trust authentication does not check them, but `roles.sql`
    /// sets them and the URLs carry them, as in compose.
    passwords: [String; 4],
    bin_dir: PathBuf,
}

impl Stack {
    /// Starts Postgres and the broker, creates the `ingest` database and applies `roles.sql` to it as the
    /// superuser. The schema is [`Stack::migrate`]'s job, as in compose.
    pub async fn start(options: &StackOptions) -> Result<Self> {
        for binary in ["migration", "scraper", "inserter"] {
            let path = options.bin_dir.join(binary);
            if !path.is_file() {
                bail!(
                    "no `{binary}` binary at {}: build the workspace first (`cargo build --workspace`, or \
                     `cargo build --release -p scraper -p inserter -p migration -p testkit`)",
                    path.display()
                );
            }
        }
        if !options.roles_sql.is_file() {
            bail!("no roles script at {}", options.roles_sql.display());
        }
        let pg = Postgres::start_on_port(options.pg_port).await?;
        // A broker of its own: the pipeline's binaries use compose's topic names, which tests may not share.
        let broker = Broker::start_on_port(options.kafka_port).await?;
        let passwords = Role::ALL.map(|role| made_up_password(role.name()));
        let stack = Self { pg, broker, passwords, bin_dir: options.bin_dir.clone() };
        stack.pg.create_named_database(DATABASE).await?;
        stack.apply_roles(&options.roles_sql)?;
        Ok(stack)
    }

    fn apply_roles(&self, roles_sql: &Path) -> Result<()> {
        let variables: Vec<(&str, &str)> =
            Role::ALL.iter().map(|&role| (role.password_variable(), self.password(role))).collect();
        apply_roles_sql(&self.pg, DATABASE, roles_sql, &variables)
    }

    fn password(&self, role: Role) -> &str {
        let index = Role::ALL.iter().position(|r| *r == role).expect("every role is in ALL");
        &self.passwords[index]
    }

    /// `postgres://ROLE:PASSWORD@127.0.0.1:PORT/ingest`.
    pub fn url(&self, role: Role) -> String {
        self.pg.url_as(role.name(), self.password(role), DATABASE)
    }

    /// Connects to `ingest` as `role`.
    pub async fn connect(&self, role: Role) -> Result<DatabaseConnection> {
        Database::connect(self.url(role)).await.with_context(|| format!("connect as {}", role.name()))
    }

    /// Kafka Connect with the Debezium connector registered and running, as compose's `connect` and
    /// `register-connector` services run them, its REST API on 127.0.0.1:`port` (0: a free one): after
    /// [`Stack::migrate`], which makes the publication.
    pub async fn start_debezium(&self, port: u16) -> Result<Connect> {
        let connect = Connect::start(&self.broker.bootstrap_servers(), self.password(Role::Debezium), port).await?;
        connect.register(self.pg.port())?;
        Ok(connect)
    }

    /// Runs `migration up` as `ingest_owner`, as compose's migrate service does; returns its output.
    pub fn migrate(&self) -> Result<String> {
        let output = self
            .command("migration")
            .arg("up")
            .env("DATABASE_URL", self.url(Role::Owner))
            .output()
            .context("run the migration binary")?;
        let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        if !output.status.success() {
            bail!("`migration up` as {} failed ({}):\n{log}", Role::Owner.name(), output.status);
        }
        Ok(log)
    }

    /// The `scraper` binary, producing to the broker; the rest of its configuration comes from the
    /// environment (replay by default).
    pub fn scraper(&self) -> Command {
        let mut command = self.command("scraper");
        command.env("KAFKA_BOOTSTRAP_SERVERS", self.broker.bootstrap_servers());
        command
    }

    /// The `inserter` binary, consuming from the broker and writing as the `inserter` role.
    pub fn inserter(&self) -> Command {
        let mut command = self.command("inserter");
        command
            .env("KAFKA_BOOTSTRAP_SERVERS", self.broker.bootstrap_servers())
            .env("DATABASE_URL", self.url(Role::Inserter))
            .env("RUN_MIGRATIONS", "false");
        command
    }

    /// The workspace binary `binary` (`migration`, `scraper`, `inserter`), with no setting of the stack's.
    pub fn command(&self, binary: &str) -> Command {
        Command::new(self.bin_dir.join(binary))
    }
}

/// The repository the testkit crate was built from.
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("testkit sits in the workspace").to_owned()
}

/// The directory of the workspace's binaries for the running executable: `target/<profile>`, both for a
/// binary there and for a test in `target/<profile>/deps`.
pub fn binaries_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locate the running executable")?;
    let dir = exe.parent().context("the executable has no directory")?;
    Ok(if dir.ends_with("deps") { dir.parent().unwrap_or(dir) } else { dir }.to_owned())
}

/// 16 hex digits, different at every call: `RandomState` is seeded from the OS.
fn made_up_password(role: &str) -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write(role.as_bytes());
    format!("{}_{:016x}", role, hasher.finish())
}
