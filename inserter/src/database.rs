//! The connection to Postgres, and the migrations the inserter can apply at start-up.

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection};

/// Connects to `url`. The URL may hold a password, so errors name the host, never the URL.
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url);
    options
        // A database that does not answer is reported (and retried) within seconds, not after sqlx's 30 s.
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        // One line per statement at info level would drown the progress lines.
        .sqlx_logging(false);
    Database::connect(options).await.with_context(|| format!("connect to Postgres at {}", redacted(url)))
}

/// Applies every pending migration; a no-op when the schema is current.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    let pending = Migrator::get_pending_migrations(db).await.context("read the applied migrations")?;
    if pending.is_empty() {
        tracing::info!("schema is up to date");
        return Ok(());
    }
    for migration in &pending {
        tracing::info!(migration = migration.name(), "applying migration");
    }
    Migrator::up(db, None).await.context("apply migrations")?;
    tracing::info!(applied = pending.len(), "migrations applied");
    Ok(())
}

/// Fails, naming what to run, when migrations are pending: an inserter on an old schema would dead-letter or
/// refuse every batch, so it is better not to start.
pub async fn require_current_schema(db: &DatabaseConnection) -> anyhow::Result<()> {
    let pending = Migrator::get_pending_migrations_read_only(db).await.context("read the applied migrations")?;
    match pending.first() {
        None => Ok(()),
        Some(first) => anyhow::bail!(
            "the database schema is {} migration(s) behind (next: {}); run `migration up` \
             (or `sea-orm-cli migrate up`) first, or start the inserter with --run-migrations",
            pending.len(),
            first.name()
        ),
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user@host/db`.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &url[..scheme_end + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn redaction_removes_the_password_only() {
        assert_eq!(redacted("postgres://app:s3cr@t@db:5432/x"), "postgres://app@db:5432/x");
        assert_eq!(redacted("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redacted("postgres://db/x"), "postgres://db/x");
    }
}
