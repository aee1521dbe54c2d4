//! The inserter's configuration: flags, each also read from the environment (and `.env`).

use clap::Parser;
use common::telemetry::LogFormat;

#[derive(Clone, Parser)]
#[command(name = "inserter", version, about = "Lands the scraper's Kafka records in Postgres.")]
pub struct Settings {
    /// Postgres URL, e.g. postgres://inserter:PASSWORD@localhost:5432/ingest
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Apply pending migrations at start-up (needs a role that may create tables)
    #[arg(long, env = "RUN_MIGRATIONS", default_value_t = false)]
    pub run_migrations: bool,

    /// Log format
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl std::fmt::Debug for Settings {
    // The database URL may carry a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &"<redacted>")
            .field("run_migrations", &self.run_migrations)
            .field("log_format", &self.log_format)
            .finish()
    }
}
