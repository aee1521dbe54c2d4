//! `inserter`: see `inserter --help`.

use std::process::ExitCode;

use clap::Parser;
use inserter::{database, settings::Settings};

#[tokio::main]
async fn main() -> ExitCode {
    dotenvy::dotenv().ok();
    let settings = Settings::parse();
    common::telemetry::init(settings.log_format);
    common::exit::report("inserter", run(settings).await)
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let db = database::connect(&settings.database_url).await?;
    if settings.run_migrations {
        database::migrate(&db).await?;
    }
    // The consumer loop (Kafka -> batched upserts) is issue #4; until then the inserter prepares the schema.
    tracing::warn!("the Kafka consumer is not built yet (issue #4): nothing to consume, exiting");
    Ok(())
}
