//! Partition maintenance: the partitioned tables (`twitter_data`, `mastodon_statuses`,
//! `instagram_profile_snapshots`, one partition a day) need their coming days' partitions made, and with a
//! retention, their old ones dropped. The database does both in `ingest_partition_maintenance` (a migration
//! defines it, with the inserter allowed to run it and nothing more of DDL); the inserter only calls it on
//! a schedule, so that no cron job or extension worker has to be set up beside the pipeline.
//!
//! The retention is the schema owner's, in `ingest.partition_policy` (`migration retention`): the inserter
//! cannot choose it, so its credentials cannot drop a partition the owner meant to keep. Retention drops
//! whole partitions (DROP TABLE): no row is deleted, so Debezium sees no change event for rows that age out,
//! and no WAL is written for them.

use std::time::Duration;

use clap::Args;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// The partitioned tables, as their entities describe them (`entity::Described`).
pub fn tables() -> Vec<&'static str> {
    entity::tables().into_iter().filter(|facts| facts.partitioned).map(|facts| facts.table).collect()
}

#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Partitions and retention")]
pub struct Maintenance {
    /// How often to make the coming days' partitions and apply the retentions the schema's owner set
    /// (`migration retention`); the first run is at start-up. With several inserters in a group, one of
    /// them does each run and the others skip it
    #[arg(long, env = "PARTITION_MAINTENANCE_INTERVAL", default_value = "1h", value_parser = parse_interval)]
    pub partition_maintenance_interval: Duration,
}

/// What one maintenance run did to one table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Maintained {
    pub created: i32,
    pub dropped: i32,
    /// Another session was running this table's maintenance: this run did nothing.
    pub skipped: bool,
    /// The owner's retention, as Postgres writes an interval (`30 days`); `None`: kept for ever.
    pub retention: Option<String>,
    /// When a run last did this table's work (this one, unless skipped), in Unix seconds; `None`: never.
    pub last_done_at: Option<i64>,
}

/// Runs the maintenance of `table` once: makes its missing partitions from today to a few days ahead and,
/// with the owner's retention, drops the partitions wholly older than now minus it.
pub async fn maintain(db: &DatabaseConnection, table: &str) -> Result<Maintained, sea_orm::DbErr> {
    let sql = "SELECT created, dropped, skipped, retention::text, extract(epoch FROM last_done_at)::bigint \
               FROM ingest_partition_maintenance($1)";
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, sql, [table.into()]);
    let row = db
        .query_one_raw(statement)
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound("ingest_partition_maintenance returned no row".into()))?;
    Ok(Maintained {
        created: row.try_get_by_index(0)?,
        dropped: row.try_get_by_index(1)?,
        skipped: row.try_get_by_index(2)?,
        retention: row.try_get_by_index(3)?,
        last_done_at: row.try_get_by_index(4)?,
    })
}

/// Runs [`maintain`] for every table now and then every `interval` until `shutdown`, counting in `metrics`
/// the partitions dropped, the runs skipped and failed, and when each table was last maintained. A failed
/// run (a lock not granted within its timeout, a database away) is logged and left to the next one:
/// partitions are made days ahead, so one missed run loses nothing, and a row with no partition yet waits
/// in the default one.
pub async fn run_on_schedule(
    db: DatabaseConnection,
    maintenance: Maintenance,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(maintenance.partition_maintenance_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        for table in tables() {
            let done = maintain(&db, table).await;
            metrics.count_maintenance(table, done.as_ref().ok());
            match done {
                Ok(done) if done.skipped => {
                    tracing::info!(table, "partition maintenance skipped: another session is running it")
                }
                Ok(done) if done.created != 0 || done.dropped != 0 => tracing::info!(
                    table,
                    partitions_created = done.created,
                    partitions_dropped = done.dropped,
                    retention = done.retention.as_deref().unwrap_or("forever"),
                    "partition maintenance"
                ),
                Ok(_) => tracing::debug!(table, "partition maintenance: nothing to do"),
                Err(error) => tracing::warn!(table, %error, "partition maintenance failed; the next run retries"),
            }
        }
    }
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
    fn an_interval_of_nothing_is_refused() {
        assert!(parse_interval("0s").is_err());
        assert_eq!(parse_interval("90m").unwrap(), Duration::from_secs(5_400));
    }
}
