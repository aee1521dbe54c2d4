//! `migration retention`: how long the partitioned tables keep their daily partitions, set by the schema's
//! owner in `ingest.partition_policy`. The inserter's maintenance applies it and cannot change it.
//!
//! A table whose flag (or variable) is not given keeps its setting; `forever` keeps its partitions for ever.

use std::time::Duration;

use clap::Parser;
use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement};

/// One table's retention as given: a duration of at least a day, or `forever`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    Forever,
    For(Duration),
}

#[derive(Debug, Parser)]
#[command(
    name = "migration retention",
    bin_name = "migration retention",
    about = "Sets how long the partitioned tables keep their daily partitions (run as the schema's owner, \
             after `migration up`); prints every table's setting",
    long_about = None
)]
pub struct Args {
    /// The database, as its owner (`ingest_owner`): only the owner may change the retention
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// How long `twitter_data` keeps its daily partitions (e.g. 30d, 26weeks; at least 1d), or `forever`;
    /// unset: as it was. Whole partitions are dropped: no row is deleted, no change event is sent
    /// [default: as it was; at first, forever]
    #[arg(long, env = "TWITTER_RETENTION", value_parser = parse_retention)]
    pub twitter_retention: Option<Retention>,

    /// The same for `mastodon_statuses` [default: as it was; at first, forever]
    #[arg(long, env = "MASTODON_RETENTION", value_parser = parse_retention)]
    pub mastodon_retention: Option<Retention>,

    /// The same for `instagram_profile_snapshots` (the follower history) [default: as it was; at first,
    /// forever]
    #[arg(long, env = "INSTAGRAM_SNAPSHOT_RETENTION", value_parser = parse_retention)]
    pub instagram_snapshot_retention: Option<Retention>,

    /// The same for the four Bluesky tables (`bluesky_posts`, `bluesky_interactions`, `bluesky_deletions`,
    /// `bluesky_account_events`) [default: as it was; at first, forever]
    #[arg(long, env = "BLUESKY_RETENTION", value_parser = parse_retention)]
    pub bluesky_retention: Option<Retention>,
}

impl Args {
    fn settings(&self) -> [(&'static str, Option<Retention>); 7] {
        [
            ("twitter_data", self.twitter_retention),
            ("mastodon_statuses", self.mastodon_retention),
            ("instagram_profile_snapshots", self.instagram_snapshot_retention),
            ("bluesky_posts", self.bluesky_retention),
            ("bluesky_interactions", self.bluesky_retention),
            ("bluesky_deletions", self.bluesky_retention),
            ("bluesky_account_events", self.bluesky_retention),
        ]
    }
}

/// `migration retention ...` (`args` from `retention` on): sets what was given in one transaction,
/// then prints each table's retention. Returns the process's exit code.
pub async fn cli(args: impl IntoIterator<Item = String>) -> i32 {
    let _ = dotenvy::dotenv();
    let args = Args::parse_from(args);
    match run(&args).await {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            0
        }
        Err(e) => {
            eprintln!("migration retention: {e}");
            1
        }
    }
}

async fn run(args: &Args) -> Result<Vec<String>, DbErr> {
    let db = Database::connect(&args.database_url).await?;
    set(&db, &args.settings()).await?;
    show(&db).await
}

/// Sets each table's given retention, all or none.
pub async fn set(db: &DatabaseConnection, settings: &[(&str, Option<Retention>)]) -> Result<(), DbErr> {
    // Several statements in one simple query run as one transaction.
    let mut sql = String::new();
    for (table, retention) in settings {
        let value = match retention {
            None => continue,
            Some(Retention::Forever) => "NULL".to_owned(),
            // justify_hours: `7 days`, not `168:00:00`.
            Some(Retention::For(d)) => format!("justify_hours(make_interval(secs => {}))", d.as_secs_f64()),
        };
        sql += &format!("UPDATE ingest.partition_policy SET retention = {value} WHERE table_name = '{table}';\n");
    }
    if sql.is_empty() {
        return Ok(());
    }
    db.execute_unprepared(&sql).await.map(|_| ())
}

/// Each table's retention and last maintenance, a line each.
pub async fn show(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    let sql = "SELECT table_name || ': ' || coalesce('keeps ' || retention::text, 'keeps for ever') \
               || coalesce(', maintained ' || to_char(last_done_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS UTC'), \
                           ', not maintained yet') \
               FROM ingest.partition_policy ORDER BY table_name";
    let rows = db.query_all_raw(Statement::from_string(DbBackend::Postgres, sql)).await?;
    rows.iter().map(|row| row.try_get_by_index::<String>(0)).collect()
}

fn parse_retention(text: &str) -> Result<Retention, String> {
    if text.trim().eq_ignore_ascii_case("forever") {
        return Ok(Retention::Forever);
    }
    let retention = humantime::parse_duration(text).map_err(|e| format!("{e} (a duration such as 30d, or forever)"))?;
    if retention < Duration::from_secs(86_400) {
        return Err(format!("must be at least one partition's span, 1d (got {text})"));
    }
    Ok(Retention::For(retention))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_is_a_day_or_more_or_forever() {
        assert_eq!(parse_retention("30d").unwrap(), Retention::For(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_retention("Forever").unwrap(), Retention::Forever);
        assert!(parse_retention("23h").unwrap_err().contains("at least one partition's span"));
        assert!(parse_retention("thirty days").unwrap_err().contains("or forever"));
    }
}
