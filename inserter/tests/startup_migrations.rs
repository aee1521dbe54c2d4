//! The inserter's start-up: with `--run-migrations` it brings an empty database to the current schema, a
//! second start finds nothing to do, and a wrong database URL fails with a message that hides the password.

use std::process::{Command, Output};

use migration::{Migrator, MigratorTrait};
use sea_orm::Database;
use testkit::Postgres;

fn inserter(database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_inserter"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

#[tokio::test]
async fn run_migrations_brings_an_empty_database_to_the_current_schema() {
    let pg = Postgres::start().await.unwrap();
    let (_, url) = pg.create_database().await.unwrap();

    let first = inserter(&url, &["--run-migrations"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let db = Database::connect(&url).await.unwrap();
    assert!(Migrator::get_pending_migrations(&db).await.unwrap().is_empty());
    assert_eq!(Migrator::get_applied_migrations(&db).await.unwrap().len(), Migrator::migrations().len());

    let second = inserter(&url, &["--run-migrations"]);
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("schema is up to date"));
}

#[tokio::test]
async fn without_the_flag_the_schema_is_left_alone() {
    let pg = Postgres::start().await.unwrap();
    let (_, url) = pg.create_database().await.unwrap();

    assert!(inserter(&url, &[]).status.success());
    let db = Database::connect(&url).await.unwrap();
    assert_eq!(Migrator::get_pending_migrations(&db).await.unwrap().len(), Migrator::migrations().len());
}

#[tokio::test]
async fn an_unreachable_database_fails_clearly_without_printing_the_password() {
    let pg = Postgres::start().await.unwrap();
    let url = format!("postgres://inserter:hunter2@127.0.0.1:{}/no_such_database", pg.port());

    let output = inserter(&url, &["--run-migrations"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("connect to Postgres at postgres://inserter@127.0.0.1"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
