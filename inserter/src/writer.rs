//! Writes a batch in one transaction: rows upserted from their SeaORM entities (`ON CONFLICT`, one array
//! parameter per column: see `unnest`), dead letters (`insert_many`, chunked under Postgres's
//! bind-parameter limit), and the batch's next offsets, so that rows and offsets become durable together.
//! A row the database refuses (a CHECK, a bad value) is isolated by splitting its chunk under savepoints,
//! and its record alone is dead-lettered; any other database error aborts the whole batch, so that nothing
//! is committed and the caller retries.

use std::collections::HashMap;

use std::borrow::Cow;
use std::collections::HashSet;

use entity::{
    ingest_errors, instagram_comments, instagram_hashtags, instagram_post_hashtags, instagram_post_tagged_users,
    instagram_posts, instagram_profile_snapshots, instagram_profiles, kafka_offsets, mastodon_statuses, twitter_data,
    twitter_users,
};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, RuntimeErr, TransactionTrait,
};

use crate::batch::Batch;
use crate::{guard, unnest};

/// Rows per upsert statement: bounds the size of one statement's arrays, not a bind-parameter count.
const ROWS_PER_STATEMENT: usize = 10_000;

/// Postgres accepts at most 65,535 bind parameters in one statement.
const MAX_BIND_PARAMETERS: usize = 65_535;

/// What a committed batch wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Rows offered to the database (an unchanged row is offered but not rewritten).
    pub rows: usize,
    pub dead_letters: usize,
}

/// Writes `batch` and the next offsets of `group`, all or nothing. On an error nothing is committed and the
/// same batch can be written again.
pub async fn write(db: &DatabaseConnection, group: &str, batch: &mut Batch) -> Result<Written, DbErr> {
    batch.deduplicate();
    let rows = batch.rows();
    let txn = db.begin().await?;
    let mut refused = Vec::new();
    write_isolating(&txn, &batch.users, &mut refused).await?;
    write_isolating(&txn, &batch.tweets, &mut refused).await?;
    write_isolating(&txn, &batch.statuses, &mut refused).await?;
    // Instagram: the accounts first (a post points at its owner, a snapshot at its profile), then the posts,
    // then what points at a post. The rows of a record refused in an earlier table are left out of the later
    // ones: the record is dead-lettered whole, once.
    let ig = &batch.instagram;
    write_isolating(&txn, &ig.profiles, &mut refused).await?;
    write_isolating(&txn, &ig.referenced_profiles, &mut refused).await?;
    write_isolating(&txn, &without_refused(&ig.snapshots, &refused), &mut refused).await?;
    write_isolating(&txn, &without_refused(&ig.posts, &refused), &mut refused).await?;
    write_isolating(&txn, &without_refused(&ig.hashtags, &refused), &mut refused).await?;
    write_isolating(&txn, &without_refused(&ig.post_hashtags, &refused), &mut refused).await?;
    write_isolating(&txn, &without_refused(&ig.comments, &refused), &mut refused).await?;
    write_isolating(&txn, &without_refused(&ig.tagged_users, &refused), &mut refused).await?;

    let mut dead_letters = batch.dead_letters.clone();
    let mut dead_lettered = HashSet::new();
    dead_letters.extend(
        refused
            .iter()
            .filter(|(index, _)| dead_lettered.insert(*index))
            .map(|(index, error)| batch.records[*index].dead_letter(&format!("database refused: {error}"))),
    );
    for chunk in dead_letters.chunks(MAX_BIND_PARAMETERS / 8) {
        ingest_errors::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([
                    ingest_errors::Column::Topic,
                    ingest_errors::Column::Partition,
                    ingest_errors::Column::Offset,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    }

    let offsets: Vec<kafka_offsets::ActiveModel> = batch
        .next_offsets
        .iter()
        .map(|((topic, partition), next)| kafka_offsets::ActiveModel {
            consumer_group: Set(group.to_owned()),
            topic: Set(topic.clone()),
            partition: Set(*partition),
            next_offset: Set(*next),
            updated_at: Set(chrono::Utc::now()),
        })
        .collect();
    if !offsets.is_empty() {
        kafka_offsets::Entity::insert_many(offsets)
            .on_conflict(
                OnConflict::columns([
                    kafka_offsets::Column::ConsumerGroup,
                    kafka_offsets::Column::Topic,
                    kafka_offsets::Column::Partition,
                ])
                .update_columns([kafka_offsets::Column::NextOffset, kafka_offsets::Column::UpdatedAt])
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(Written { rows, dead_letters: dead_letters.len() })
}

/// The offsets `group` committed with its rows: where to resume each partition.
pub async fn stored_offsets(db: &DatabaseConnection, group: &str) -> Result<HashMap<(String, i32), i64>, DbErr> {
    let rows = kafka_offsets::Entity::find().filter(kafka_offsets::Column::ConsumerGroup.eq(group)).all(db).await?;
    Ok(rows.into_iter().map(|row| ((row.topic, row.partition), row.next_offset)).collect())
}

/// A row type the writer can upsert in bulk.
pub(crate) trait Upsert: Sized {
    /// Upserts the rows of `rows` (each with the index of its record).
    async fn upsert(txn: &DatabaseTransaction, rows: &[(usize, Self)]) -> Result<(), DbErr>;
}

/// Upserts `rows` chunk by chunk; a chunk the database refuses is split until the refused rows stand alone,
/// and those go to `refused` with their record index.
async fn write_isolating<R: Upsert>(
    txn: &DatabaseTransaction,
    rows: &[(usize, R)],
    refused: &mut Vec<(usize, String)>,
) -> Result<(), DbErr> {
    let mut pending: Vec<&[(usize, R)]> = rows.chunks(ROWS_PER_STATEMENT).rev().collect();
    while let Some(slice) = pending.pop() {
        let savepoint = txn.begin().await?;
        match R::upsert(&savepoint, slice).await {
            Ok(()) => savepoint.commit().await?,
            Err(error) if is_refused_row(&error) => {
                savepoint.rollback().await?;
                if let [(index, _)] = slice {
                    refused.push((*index, error.to_string()));
                } else {
                    let (first, second) = slice.split_at(slice.len() / 2);
                    pending.push(second);
                    pending.push(first);
                }
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// `rows` without those of the records already refused.
fn without_refused<'a, R: Clone>(rows: &'a [(usize, R)], refused: &[(usize, String)]) -> Cow<'a, [(usize, R)]> {
    if refused.is_empty() {
        return Cow::Borrowed(rows);
    }
    let refused: HashSet<usize> = refused.iter().map(|(index, _)| *index).collect();
    Cow::Owned(rows.iter().filter(|(index, _)| !refused.contains(index)).cloned().collect())
}

/// A data exception (class 22) or an integrity violation (class 23): the row's fault, not the database's.
fn is_refused_row(error: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = error else {
        return false;
    };
    let sea_orm::sqlx::Error::Database(db_error) = e.as_ref() else { return false };
    db_error.code().is_some_and(|code| code.starts_with("22") || code.starts_with("23"))
}

impl Upsert for twitter_data::ActiveModel {
    async fn upsert(txn: &DatabaseTransaction, rows: &[(usize, Self)]) -> Result<(), DbErr> {
        unnest::upsert(txn, rows, |(_, row)| row, guard::TWITTER_DATA.on_conflict()).await
    }
}

impl Upsert for twitter_users::ActiveModel {
    async fn upsert(txn: &DatabaseTransaction, rows: &[(usize, Self)]) -> Result<(), DbErr> {
        unnest::upsert(txn, rows, |(_, row)| row, guard::TWITTER_USERS.on_conflict()).await
    }
}

impl Upsert for mastodon_statuses::ActiveModel {
    async fn upsert(txn: &DatabaseTransaction, rows: &[(usize, Self)]) -> Result<(), DbErr> {
        unnest::upsert(txn, rows, |(_, row)| row, guard::MASTODON_STATUSES.on_conflict()).await
    }
}

impl Upsert for instagram_profiles::ActiveModel {
    /// A scraped profile; the minimal rows are [`Referenced`].
    async fn upsert(txn: &DatabaseTransaction, rows: &[(usize, Self)]) -> Result<(), DbErr> {
        unnest::upsert(txn, rows, |(_, row)| row, guard::INSTAGRAM_PROFILES.on_conflict()).await
    }
}

/// A minimal profile row: written only where the account has no row, so it never overwrites a scraped
/// profile, and two writers adding the same account do not conflict.
#[derive(Clone)]
pub(crate) struct Referenced(pub(crate) instagram_profiles::ActiveModel);

impl Upsert for Referenced {
    async fn upsert(txn: &DatabaseTransaction, rows: &[(usize, Self)]) -> Result<(), DbErr> {
        let on_conflict = OnConflict::column(instagram_profiles::Column::UserId).do_nothing().to_owned();
        unnest::upsert(txn, rows, |(_, row)| &row.0, on_conflict).await
    }
}

impl Upsert for instagram_profile_snapshots::ActiveModel {
    /// Append-only: a replayed scrape is already there.
    async fn upsert(txn: &DatabaseTransaction, rows: &[(usize, Self)]) -> Result<(), DbErr> {
        use instagram_profile_snapshots::Column as C;
        let on_conflict = OnConflict::columns([C::UserId, C::ScrapedAt]).do_nothing().to_owned();
        unnest::upsert(txn, rows, |(_, row)| row, on_conflict).await
    }
}

impl Upsert for instagram_posts::ActiveModel {
    async fn upsert(txn: &DatabaseTransaction, rows: &[(usize, Self)]) -> Result<(), DbErr> {
        unnest::upsert(txn, rows, |(_, row)| row, guard::INSTAGRAM_POSTS.on_conflict()).await
    }
}

impl Upsert for instagram_hashtags::ActiveModel {
    /// A hashtag is written once; the Graph API's id is added when a hashtag search gives it, and then kept.
    async fn upsert(txn: &DatabaseTransaction, rows: &[(usize, Self)]) -> Result<(), DbErr> {
        use instagram_hashtags::Column as C;
        let mut on_conflict = OnConflict::column(C::Name);
        on_conflict.update_column(C::GraphHashtagId).action_and_where(Expr::cust(
            "instagram_hashtags.graph_hashtag_id IS NULL AND EXCLUDED.graph_hashtag_id IS NOT NULL",
        ));
        unnest::upsert(txn, rows, |(_, row)| row, on_conflict).await
    }
}

impl Upsert for instagram_post_hashtags::ActiveModel {
    /// Links are only added: a caption edited to drop a tag leaves its link.
    async fn upsert(txn: &DatabaseTransaction, rows: &[(usize, Self)]) -> Result<(), DbErr> {
        use instagram_post_hashtags::Column as C;
        let on_conflict = OnConflict::columns([C::MediaId, C::Hashtag]).do_nothing().to_owned();
        unnest::upsert(txn, rows, |(_, row)| row, on_conflict).await
    }
}

impl Upsert for instagram_comments::ActiveModel {
    async fn upsert(txn: &DatabaseTransaction, rows: &[(usize, Self)]) -> Result<(), DbErr> {
        unnest::upsert(txn, rows, |(_, row)| row, guard::INSTAGRAM_COMMENTS.on_conflict()).await
    }
}

impl Upsert for instagram_post_tagged_users::ActiveModel {
    /// Links are only added, like the hashtags'.
    async fn upsert(txn: &DatabaseTransaction, rows: &[(usize, Self)]) -> Result<(), DbErr> {
        use instagram_post_tagged_users::Column as C;
        let on_conflict = OnConflict::columns([C::MediaId, C::UserId]).do_nothing().to_owned();
        unnest::upsert(txn, rows, |(_, row)| row, on_conflict).await
    }
}
