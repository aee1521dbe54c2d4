//! X's backfill after a restart: a restarted stream's first connection asks X to resend what it sent since
//! the newest record of that stream in its topic (capped at `X_BACKFILL_MINUTES`), where before the scraper
//! forgot the gap with the process. Several X streams may share the topic, so the stream's own records are
//! told apart by their `source` header, and only the last `max_minutes` of the topic are read: an older
//! gap asks for all of them anyway. The partitions of `x.sample10` share their `source`: a partition run by
//! another process, or one that was reconnecting when the scraper stopped, is taken to have stopped with the
//! newest of them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::ClientConfig;

use crate::topic_tail::{self, Start};

/// How long the start-up read of the topic may take; a stream that cannot read it starts without backfill.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How long ago the newest record of `source` in `topic` was scraped, as of `now`: `None` when the topic holds
/// no record at all (a first run, which missed nothing). When the topic holds records but none of `source`
/// in the last `max_minutes`, the gap is at least that long, and is given as that.
pub async fn gap(
    config: ClientConfig,
    topic: String,
    source: String,
    max_minutes: u8,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<Duration>> {
    let window = Duration::from_secs(60 * u64::from(max_minutes));
    tokio::task::spawn_blocking(move || {
        let since = now - chrono::Duration::from_std(window).unwrap_or_default();
        let mut newest: Option<DateTime<Utc>> = None;
        let written =
            topic_tail::read(&config, &topic, Start::Since(since.timestamp_millis()), READ_TIMEOUT, |record| {
                if record.header(contract::header::SOURCE) != Some(source.as_str()) {
                    return;
                }
                let scraped =
                    record.header(contract::header::SCRAPED_AT).and_then(|at| DateTime::parse_from_rfc3339(at).ok());
                if let Some(scraped) = scraped.map(|at| at.with_timezone(&Utc)) {
                    newest = Some(newest.map_or(scraped, |n| n.max(scraped)));
                }
            })?;
        Ok(match newest {
            // A record scraped "after now" (another machine's clock) leaves no gap to speak of.
            Some(newest) => Some((now - newest).to_std().unwrap_or_default().min(window)),
            None if written > 0 => Some(window),
            None => None,
        })
    })
    .await?
}
