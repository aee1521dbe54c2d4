//! `inserter redrive`: runs dead letters through today's mappings again (after a mapping or schema fix). Each
//! batch writes its rows and deletes the dead letters it re-drove in one transaction; a record that still
//! fails is dead-lettered again with its new reason. Only dead letters that existed when the run started are
//! read, so the ones it writes again are not read twice.

use std::time::{Duration, Instant};

use anyhow::Context;
use entity::ingest_errors;
use sea_orm::sea_query::extension::postgres::PgBinOper;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio_util::sync::CancellationToken;

use crate::batch::{Batch, Routes};
use crate::record::{ConsumedRecord, headers_from_json};
use crate::writer::{self, WriteError};
use common::backoff::Backoff;

/// Which dead letters to re-drive, and how.
#[derive(Clone, Debug)]
pub struct Redrive {
    /// Only these topics (all when empty).
    pub topics: Vec<String>,
    /// Only reasons matching this regular expression (Postgres `~*`: case-insensitive).
    pub reason: Option<String>,
    /// Dead letters per transaction.
    pub batch_size: u64,
    /// Count and decode only; write nothing.
    pub dry_run: bool,
}

impl Default for Redrive {
    /// Every dead letter, a thousand a transaction.
    fn default() -> Self {
        Self { topics: Vec::new(), reason: None, batch_size: 1_000, dry_run: false }
    }
}

/// What a run did (or, dry, would do).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Dead letters selected.
    pub selected: u64,
    /// Of those, records that are rows now (dry: that decode now; the database may still refuse some).
    pub landed: u64,
    /// Of those, records dead-lettered again with today's reason.
    pub still_failing: u64,
}

impl Redrive {
    pub async fn run(
        &self,
        db: &DatabaseConnection,
        routes: &Routes,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Report> {
        let Some(last_id) = self
            .select()
            .select_only()
            .column_as(ingest_errors::Column::Id.max(), "max")
            .into_tuple::<Option<i64>>()
            .one(db)
            .await
            .context("read the dead letters")?
            .flatten()
        else {
            tracing::info!("no dead letter matches");
            return Ok(Report::default());
        };
        let total = self
            .select()
            .filter(ingest_errors::Column::Id.lte(last_id))
            .count(db)
            .await
            .context("count the dead letters")?;
        tracing::info!(dead_letters = total, dry_run = self.dry_run, "re-driving");
        let mut report = Report::default();
        let mut after = i64::MIN;
        let mut last_progress = Instant::now();
        while !shutdown.is_cancelled() {
            let dead_letters = self
                .select()
                .filter(ingest_errors::Column::Id.gt(after))
                .filter(ingest_errors::Column::Id.lte(last_id))
                .order_by_asc(ingest_errors::Column::Id)
                .limit(self.batch_size)
                .all(db)
                .await
                .context("read the dead letters")?;
            let Some(last) = dead_letters.last() else { break };
            after = last.id;
            let ids: Vec<i64> = dead_letters.iter().map(|d| d.id).collect();
            let mut batch = Batch::decode(dead_letters.into_iter().map(record_of), routes);
            if let Some((_, first)) = batch.clamped().first() {
                let records = batch.clamped().len();
                tracing::warn!(records, first = %first, "scraped_at too far ahead of this clock: re-driven as scraped at an earlier time");
            }
            let failing = if self.dry_run {
                batch.dead_letters.len()
            } else {
                self.write(db, &ids, &mut batch, shutdown).await?.dead_letters()
            };
            report.selected += ids.len() as u64;
            report.still_failing += failing as u64;
            report.landed += (ids.len() - failing) as u64;
            if last_progress.elapsed() >= Duration::from_secs(5) || report.selected == total {
                tracing::info!(
                    done = report.selected,
                    of = total,
                    landed = report.landed,
                    still_failing = report.still_failing,
                    "redrive progress"
                );
                last_progress = Instant::now();
            }
        }
        Ok(report)
    }

    /// Writes one batch, retrying while the database is unavailable.
    async fn write(
        &self,
        db: &DatabaseConnection,
        ids: &[i64],
        batch: &mut Batch,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<writer::Written> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        loop {
            match writer::write_redriven(db, ids, batch).await {
                Ok(written) => return Ok(written),
                Err(WriteError::Fatal(reason)) => anyhow::bail!("{reason}"),
                Err(e @ WriteError::Unavailable(_)) if shutdown.is_cancelled() => {
                    return Err(e).context("re-drive a batch at shutdown (nothing of it committed)");
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "re-driving a batch failed, nothing committed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
            }
        }
    }

    fn select(&self) -> sea_orm::Select<ingest_errors::Entity> {
        let mut select = ingest_errors::Entity::find();
        if !self.topics.is_empty() {
            select = select.filter(ingest_errors::Column::Topic.is_in(self.topics.iter().cloned()));
        }
        if let Some(pattern) = &self.reason {
            select = select.filter(
                Expr::col(ingest_errors::Column::Error).binary(PgBinOper::RegexCaseInsensitive, pattern.clone()),
            );
        }
        select
    }
}

/// The Kafka record a dead letter holds. The time it failed stands in for the broker's timestamp, which is
/// not kept: a record without a `scraped_at` header must not count as scraped now, or it would win over newer
/// scrapes.
fn record_of(dead_letter: ingest_errors::Model) -> ConsumedRecord {
    ConsumedRecord {
        topic: dead_letter.topic,
        partition: dead_letter.partition,
        offset: dead_letter.offset,
        key: dead_letter.key,
        payload: dead_letter.payload,
        headers: dead_letter.headers.as_ref().map(headers_from_json).unwrap_or_default(),
        timestamp: Some(dead_letter.failed_at),
    }
}
