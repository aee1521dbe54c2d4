//! Partition maintenance: the partitioned tables (`twitter_data`, `mastodon_statuses`,
//! `instagram_profile_snapshots`, one partition a day) need their coming days' partitions made, and with a
//! retention, their old ones dropped. The database does both in `ingest_partition_maintenance` (a migration
//! defines it, with the inserter allowed to run it and nothing more of DDL); the inserter only calls it on
//! a schedule, so that no cron job or extension worker has to be set up beside the pipeline.
//!
//! Retention drops whole partitions (DROP TABLE): no row is deleted, so Debezium sees no change event for
//! rows that age out, and no WAL is written for them.

use std::time::Duration;

use clap::Args;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// The partitioned tables, each with a retention of its own.
pub const TABLES: [&str; 3] = ["twitter_data", "mastodon_statuses", "instagram_profile_snapshots"];

/// The shortest retention: one partition's span. A shorter one would drop the partition being written.
const MIN_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Partitions and retention")]
pub struct Retention {
    /// Drop `twitter_data`'s daily partitions once wholly older than this (e.g. 30d, 26weeks); by default
    /// posts are kept for ever. Whole partitions go: no row is deleted, no change event is sent
    #[arg(long, env = "TWITTER_RETENTION", value_parser = parse_retention)]
    pub twitter_retention: Option<Duration>,

    /// The same for `mastodon_statuses`
    #[arg(long, env = "MASTODON_RETENTION", value_parser = parse_retention)]
    pub mastodon_retention: Option<Duration>,

    /// The same for `instagram_profile_snapshots` (the follower history)
    #[arg(long, env = "INSTAGRAM_SNAPSHOT_RETENTION", value_parser = parse_retention)]
    pub instagram_snapshot_retention: Option<Duration>,

    /// How often to make the coming days' partitions and apply the retentions (the first run is at start-up);
    /// with several inserters in a group, one of them does each run
    #[arg(long, env = "PARTITION_MAINTENANCE_INTERVAL", default_value = "1h", value_parser = parse_interval)]
    pub partition_maintenance_interval: Duration,
}

impl Retention {
    /// Each partitioned table with its retention.
    pub fn tables(&self) -> [(&'static str, Option<Duration>); 3] {
        let [twitter, mastodon, snapshots] = TABLES;
        [
            (twitter, self.twitter_retention),
            (mastodon, self.mastodon_retention),
            (snapshots, self.instagram_snapshot_retention),
        ]
    }
}

/// What one maintenance run did to one table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Maintained {
    pub created: i32,
    pub dropped: i32,
}

/// Runs the maintenance of `table` once: makes its missing partitions from today to a few days ahead and,
/// with a retention, drops the partitions wholly older than now minus it.
pub async fn maintain(
    db: &DatabaseConnection,
    table: &str,
    retention: Option<Duration>,
) -> Result<Maintained, sea_orm::DbErr> {
    let sql = "SELECT created, dropped FROM ingest_partition_maintenance($1, make_interval(secs => $2))";
    let retention = retention.map(|r| r.as_secs_f64());
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, sql, [table.into(), retention.into()]);
    let row = db
        .query_one_raw(statement)
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound("ingest_partition_maintenance returned no row".into()))?;
    Ok(Maintained { created: row.try_get_by_index(0)?, dropped: row.try_get_by_index(1)? })
}

/// Runs [`maintain`] for every table now and then every `interval` until `shutdown`, counting the partitions
/// dropped and the failed runs in `metrics`. A failed run (a lock
/// not granted within its timeout, a database away) is logged and left to the next one: partitions are made
/// days ahead, so one missed run loses nothing, and a row with no partition yet waits in the default one.
pub async fn run_on_schedule(
    db: DatabaseConnection,
    retention: Retention,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(retention.partition_maintenance_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        for (table, keep) in retention.tables() {
            let kept = keep.map(|k| humantime::format_duration(k).to_string());
            let done = maintain(&db, table, keep).await;
            metrics.count_maintenance(table, done.as_ref().ok().map(|d| d.dropped));
            match done {
                Ok(done) if done != Maintained::default() => tracing::info!(
                    table,
                    partitions_created = done.created,
                    partitions_dropped = done.dropped,
                    retention = kept.as_deref().unwrap_or("forever"),
                    "partition maintenance"
                ),
                Ok(_) => tracing::debug!(table, "partition maintenance: nothing to do"),
                Err(error) => tracing::warn!(table, %error, "partition maintenance failed; the next run retries"),
            }
        }
    }
}

fn parse_retention(text: &str) -> Result<Duration, String> {
    let retention = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if retention < MIN_RETENTION {
        return Err(format!("must be at least one partition's span, 1d (got {text})"));
    }
    Ok(retention)
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text).map_err(|e| e.to_string())? {
        interval if interval.is_zero() => Err("must be longer than 0s".into()),
        interval => Ok(interval),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_shorter_than_a_partition_is_refused() {
        assert!(parse_retention("23h").unwrap_err().contains("at least one partition's span"));
        assert_eq!(parse_retention("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert!(parse_retention("thirty days").is_err());
        assert!(parse_interval("0s").is_err());
    }
}
