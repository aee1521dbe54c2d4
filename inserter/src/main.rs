//! `inserter`: see `inserter --help`.

use std::process::ExitCode;
use std::sync::Arc;

use common::ops::{self, Health};
use inserter::batch::Routes;
use inserter::metrics::Metrics;
use inserter::pipeline::{Options, Pipeline};
use inserter::redrive::Redrive;
use inserter::settings::{Command, RedriveArgs, Settings, Topics};
use inserter::{consumer, database, partitions};
use prometheus_client::registry::Registry;

#[tokio::main]
async fn main() -> ExitCode {
    dotenvy::dotenv().ok();
    let (settings, warnings) = Settings::parse_with_old_names();
    common::telemetry::init(settings.log_format);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    common::exit::report("inserter", run(settings).await)
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let routes = Routes::of(&settings.topics);
    if let Some(Command::Redrive(args)) = &settings.command {
        return redrive(&settings, &routes, args).await;
    }
    if let Some(topic) = routes.shared_topic() {
        anyhow::bail!("each source needs a topic of its own: `{topic}` is named twice among {}", Topics::flags());
    }
    let shutdown = common::shutdown::on_signal()?;
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry, &routes.topics());
    let health = Health::default();
    ops::serve(settings.metrics_addr, Arc::new(registry), health.clone(), shutdown.child_token()).await?;

    let db = database::connect(&settings.database_url).await?;
    if settings.run_migrations {
        database::migrate(&db).await?;
    } else {
        database::require_current_schema(&db).await?;
    }
    let maintenance = tokio::spawn(partitions::run_on_schedule(
        db.clone(),
        settings.partition_maintenance.clone(),
        metrics.clone(),
        shutdown.child_token(),
    ));
    let consumer = Arc::new(consumer::create(&settings.bootstrap_servers, &settings.group, metrics.clone())?);
    consumer::subscribe_when_ready(&consumer, &routes.topics(), &shutdown).await?;
    let options = Options {
        group: settings.group.clone(),
        routes,
        batch_size: settings.batch_size as usize,
        batch_bytes: settings.batch_bytes,
        batch_timeout: settings.batch_timeout,
        exit_when_idle: settings.exit_when_idle,
        progress_interval: settings.progress_interval,
    };
    let stopped = Pipeline::new(consumer.clone(), db.clone(), options, metrics.clone(), health).run(shutdown).await;
    // A maintenance run in progress is one transaction: cut short, it rolls back and the next start redoes it.
    maintenance.abort();
    let stopped = stopped?;
    // Dropping the last handle closes the consumer: it leaves the group, so its partitions move at once.
    drop(consumer);
    db.close().await.ok();
    tracing::info!(
        reason = ?stopped,
        records = metrics.records_consumed.total(),
        rows = metrics.rows_written.total(),
        dead_lettered = metrics.dead_letters.total(),
        batches = metrics.batches.get(),
        "inserter stopped"
    );
    Ok(())
}

async fn redrive(settings: &Settings, routes: &Routes, args: &RedriveArgs) -> anyhow::Result<()> {
    let shutdown = common::shutdown::on_signal()?;
    let db = database::connect(&settings.database_url).await?;
    database::require_current_schema(&db).await?;
    let redrive = Redrive {
        topics: args.topics.clone(),
        reason: args.reason.clone(),
        batch_size: args.batch_size,
        dry_run: args.dry_run,
    };
    let report = redrive.run(&db, routes, &shutdown).await?;
    db.close().await.ok();
    let verb = if args.dry_run { "would land (decode now)" } else { "landed" };
    tracing::info!(
        selected = report.selected,
        landed = report.landed,
        still_failing = report.still_failing,
        dry_run = args.dry_run,
        "redrive finished"
    );
    println!(
        "{} dead letters selected; {} {verb}; {} still failing",
        report.selected, report.landed, report.still_failing
    );
    Ok(())
}
