//! The inserter's start-up: with `--run-migrations` it brings an empty database to the current schema and a
//! second start finds nothing to do; without it, a database that lacks migrations stops it with a message
//! naming what to run (and is left untouched); a wrong database URL fails with a message that hides the password;
//! two sources configured onto one topic stop it before it connects to anything.

use crate::support;

use std::process::Command;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use support::{Rig, Schema};
use testkit::unique_name;

const EXIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn run_migrations_brings_an_empty_database_to_the_current_schema() {
    let rig = Rig::start_with(1, Schema::Empty).await;

    let mut first = rig.inserter(&unique_name("group"), &["--run-migrations", "--exit-when-idle", "1s"]);
    assert!(first.wait(EXIT).await.unwrap().success(), "{}", first.log());
    assert!(Migrator::get_pending_migrations(rig.conn()).await.unwrap().is_empty());
    assert_eq!(Migrator::get_applied_migrations(rig.conn()).await.unwrap().len(), Migrator::migrations().len());

    let mut second = rig.inserter(&unique_name("group"), &["--run-migrations", "--exit-when-idle", "1s"]);
    assert!(second.wait(EXIT).await.unwrap().success(), "{}", second.log());
    assert!(second.log().contains("schema is up to date"), "{}", second.log());
}

#[tokio::test]
async fn without_the_flag_a_database_behind_the_schema_stops_it_and_is_left_alone() {
    let rig = Rig::start_with(1, Schema::Empty).await;

    let mut inserter = rig.inserter(&unique_name("group"), &["--exit-when-idle", "1s"]);
    let status = inserter.wait(EXIT).await.unwrap();
    let log = inserter.log();
    assert!(!status.success(), "{log}");
    assert!(log.contains("migration(s) behind") && log.contains("--run-migrations"), "{log}");
    let tables = support::count(rig.conn(), "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").await;
    assert_eq!(tables, 0, "not even the migrations table is created");
}

#[test]
fn help_shows_no_database_password() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_inserter"))
        .arg("--help")
        .current_dir(dir.path())
        .env_clear()
        .env("DATABASE_URL", "postgres://inserter:hunter2@localhost:5432/ingest")
        // Shown: the check would see a password that --help printed.
        .env("INSERTER_GROUP", "help-group")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("[env: INSERTER_GROUP=help-group]") && help.contains("[env: DATABASE_URL]"), "{help}");
    assert!(!help.contains("hunter2"), "{help}");
}

#[tokio::test]
async fn an_unreachable_database_fails_clearly_without_printing_the_password() {
    let rig = Rig::start(0).await;
    let url = format!("postgres://inserter:hunter2@127.0.0.1:{}/no_such_database", rig.pg.port());

    let output = Command::new(env!("CARGO_BIN_EXE_inserter"))
        .args(["--run-migrations", "--metrics-addr", "127.0.0.1:0"])
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("connect to Postgres at postgres://inserter@127.0.0.1"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn two_sources_on_one_topic_stop_it_before_it_connects() {
    let output = Command::new(env!("CARGO_BIN_EXE_inserter"))
        .args(["--topic-tweets", "everything", "--topic-mastodon-statuses", "everything"])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .env("DATABASE_URL", "postgres://inserter@127.0.0.1:1/nowhere")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("each source needs a topic of its own"), "{stderr}");
    assert!(!stderr.contains("connect to Postgres"), "{stderr}");
}
