//! Partitions are days by the clock, and a test that compares what one statement made with what a later one
//! computes would see two different days if a day turned between them. Postgres's clock cannot be held
//! still, so such a test starts clear of the turn instead.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY_MS: u64 = 86_400_000;
/// Where a day of X ids starts within a UTC day: X's epoch (1288834974657 ms) is 01:42:54.657 UTC.
const X_DAY_STARTS_MS: u64 = 1_288_834_974_657 % DAY_MS;
/// Longer than any test that calls this takes between its first and last statement.
const MARGIN: Duration = Duration::from_secs(90);

/// Returns at once, or, when a partition day (UTC midnight for Mastodon ids and snapshots, 01:42:54.657
/// UTC for X ids) turns within the margin, once it has turned.
pub async fn clear_of_a_partition_day_boundary() {
    let into_day = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 % DAY_MS;
    for starts in [0, X_DAY_STARTS_MS] {
        let until = Duration::from_millis((starts + DAY_MS - into_day) % DAY_MS);
        if until < MARGIN {
            tokio::time::sleep(until + Duration::from_secs(1)).await;
        }
    }
}
