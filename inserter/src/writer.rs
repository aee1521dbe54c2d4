//! Writes a batch in one transaction: rows upserted from their SeaORM entities (`ON CONFLICT`, one array
//! parameter per column: see `unnest`), dead letters, and the batch's bookkeeping (its next offsets, or the
//! dead letters it re-drove), so that rows and bookkeeping become durable together.
//!
//! A failed statement is classified (`failure`). When rows are at fault, the batch's records are split in
//! halves under savepoints, each part decoded and written on its own, until the guilty records stand alone;
//! they alone are dead-lettered with the database's SQLSTATE and message, and the rest lands as writing the
//! records one by one would. A statement that collided with a concurrent writer runs again. A database that
//! is unwell aborts the batch (nothing is committed; the caller retries); a missing grant stops the inserter.

use std::collections::HashMap;

use entity::{
    ingest_errors, instagram_comments, instagram_hashtags, instagram_post_hashtags, instagram_post_tagged_users,
    instagram_posts, instagram_profile_snapshots, instagram_profiles, kafka_offsets, mastodon_statuses, twitter_data,
    twitter_users,
};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, QueryFilter,
    TransactionTrait,
};

use crate::batch::{Batch, Rows};
use crate::failure::{self, Reaction};
use crate::record::ConsumedRecord;
use crate::{guard, unnest};

/// Rows per upsert statement, at most.
const ROWS_PER_STATEMENT: usize = 10_000;

/// Payload bytes per statement, at most (one row's record alone may exceed it): far under Postgres's 1 GB
/// per value and per message, whatever the records' sizes.
pub const STATEMENT_BYTES: usize = 16 << 20;

/// Postgres accepts at most 65,535 bind parameters in one statement; a dead letter binds 8.
const DEAD_LETTERS_PER_STATEMENT: usize = 65_535 / 8;

/// How often a statement that collided with a concurrent writer's new row is run again before its rows are
/// taken to be at fault (a web post claiming another post's shortcode collides every time).
const RACE_RETRIES: u32 = 3;

/// What a committed batch wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Rows offered to the database (an unchanged row is offered but not rewritten).
    pub rows: usize,
    pub dead_letters: usize,
    /// Parts of the batch written again to isolate refused records (0 when nothing was refused).
    pub rewrites: usize,
}

/// Why a batch was not committed. Nothing of it is.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The database is unwell (down, restarting, out of space, deadlocked): write the same batch again later.
    #[error("the database is unavailable: {}", failure::describe(.0))]
    Unavailable(#[source] DbErr),
    /// No retry can help: a grant or the schema is missing, or a record cannot even be dead-lettered.
    #[error("{0}")]
    Fatal(String),
}

impl WriteError {
    fn from_db(error: DbErr, doing: &str) -> Self {
        match failure::classify(&error) {
            Reaction::Stop => Self::Fatal(format!(
                "{doing}: {} (the role in DATABASE_URL lacks a grant, or the schema is not migrated: grant what \
                 docker/postgres/roles.sql gives the role, or run the migrations; then restart)",
                failure::describe(&error)
            )),
            _ => Self::Unavailable(error),
        }
    }
}

/// What a batch records beside its rows, in the same transaction.
enum Bookkeeping<'a> {
    /// The next offset of each partition, for consumer group `group`.
    Offsets { group: &'a str },
    /// The dead letters the batch's records were read from: deleted, since they are now rows, or dead
    /// letters again with today's reason.
    Redriven { dead_letter_ids: &'a [i64] },
}

/// Writes `batch` and the next offsets of `group`, all or nothing. On an error nothing is committed and the
/// same batch can be written again.
pub async fn write(db: &DatabaseConnection, group: &str, batch: &mut Batch) -> Result<Written, WriteError> {
    write_with(db, batch, Bookkeeping::Offsets { group }).await
}

/// Writes `batch`, read from the dead letters `dead_letter_ids`, and deletes those, all or nothing; a record
/// that fails again is dead-lettered again with its new reason.
pub async fn write_redriven(
    db: &DatabaseConnection,
    dead_letter_ids: &[i64],
    batch: &mut Batch,
) -> Result<Written, WriteError> {
    write_with(db, batch, Bookkeeping::Redriven { dead_letter_ids }).await
}

async fn write_with(
    db: &DatabaseConnection,
    batch: &mut Batch,
    bookkeeping: Bookkeeping<'_>,
) -> Result<Written, WriteError> {
    batch.rows.prepare();
    let txn = db.begin().await.map_err(|e| WriteError::from_db(e, "begin the batch"))?;
    // A deferred constraint (a reply's parent comment) fails at COMMIT, where no row can be isolated any
    // more; checked at each statement's end instead, it fails where its record can. Rows are ordered so that
    // what they reference is written first.
    txn.execute_unprepared("SET CONSTRAINTS ALL IMMEDIATE")
        .await
        .map_err(|e| WriteError::from_db(e, "check constraints immediately"))?;
    if let Bookkeeping::Redriven { dead_letter_ids } = bookkeeping {
        ingest_errors::Entity::delete_many()
            .filter(ingest_errors::Column::Id.is_in(dead_letter_ids.iter().copied()))
            .exec(&txn)
            .await
            .map_err(|e| {
                WriteError::from_db(
                    e,
                    "delete the re-driven dead letters (redrive needs DELETE on ingest_errors: run it as the \
                     schema's owner, ingest_owner in compose)",
                )
            })?;
    }

    let mut dead_letters: Vec<(usize, String)> = batch.dead_letters.clone();
    let rewrites = write_isolating(&txn, batch, &mut dead_letters).await?;
    store_dead_letters(&txn, &batch.records, &dead_letters).await?;

    if let Bookkeeping::Offsets { group } = bookkeeping {
        store_offsets(&txn, group, batch).await?;
    }
    txn.commit().await.map_err(|e| WriteError::from_db(e, "commit the batch"))?;
    Ok(Written { rows: batch.rows.count(), dead_letters: dead_letters.len(), rewrites })
}

/// Writes the batch's rows. If the database refuses some for what they hold, the batch's records are split
/// in halves, each half decoded and written on its own under a savepoint, until every refused record stands
/// alone; those are added to `refused` with the database's reason, and everything else is written exactly as
/// writing the records one by one would (a refused record's rows never reach another record's, even where
/// the batch had merged them). Returns how many parts were written again.
async fn write_isolating(
    txn: &DatabaseTransaction,
    batch: &Batch,
    refused: &mut Vec<(usize, String)>,
) -> Result<usize, WriteError> {
    let Err(error) = under_savepoint(txn, &batch.rows, &batch.records).await? else { return Ok(0) };
    let decoded = batch.decoded();
    let mut pending: Vec<(&[usize], DbErr)> = vec![(&decoded[..], error)];
    let mut rewrites = 0;
    while let Some((indexes, error)) = pending.pop() {
        if let [index] = indexes {
            refused.push((*index, format!("database refused: {}", failure::describe(&error))));
            continue;
        }
        let (first, second) = indexes.split_at(indexes.len() / 2);
        // The second half waits on the stack; the first is written first, so records keep their order.
        let mut halves = Vec::with_capacity(2);
        for half in [first, second] {
            rewrites += 1;
            if let Err(error) = under_savepoint(txn, &batch.rows_of(half), &batch.records).await? {
                halves.push((half, error));
            }
        }
        pending.extend(halves.into_iter().rev());
    }
    Ok(rewrites)
}

/// Writes `rows` under a savepoint: `Ok(Err(_))` when the rows are at fault (the savepoint is then rolled
/// back), `Err(_)` when the database is.
async fn under_savepoint(
    txn: &DatabaseTransaction,
    rows: &Rows,
    records: &[ConsumedRecord],
) -> Result<Result<(), DbErr>, WriteError> {
    let savepoint = txn.begin().await.map_err(|e| WriteError::from_db(e, "open a savepoint"))?;
    let written = write_rows(&savepoint, rows, records).await?;
    let closed = match written {
        Ok(()) => savepoint.commit().await,
        Err(_) => savepoint.rollback().await,
    };
    closed.map_err(|e| WriteError::from_db(e, "close a savepoint"))?;
    Ok(written)
}

/// Writes every table's rows, stopping at the first statement whose rows are at fault.
async fn write_rows(
    txn: &DatabaseTransaction,
    rows: &Rows,
    records: &[ConsumedRecord],
) -> Result<Result<(), DbErr>, WriteError> {
    // Each table has a row type of its own, so they are written in turn rather than in a loop.
    macro_rules! in_turn {
        ($($rows:expr),* $(,)?) => {
            $(if let Err(error) = table(txn, $rows, records).await? {
                return Ok(Err(error));
            })*
        };
    }
    let ig = &rows.instagram;
    // Instagram: the accounts first (a post points at its owner, a snapshot at its profile), then the posts,
    // then what points at a post.
    in_turn!(
        &rows.users,
        &rows.tweets,
        &rows.statuses,
        &ig.profiles,
        &ig.referenced_profiles,
        &ig.snapshots,
        &ig.posts,
        &ig.hashtags,
        &ig.post_hashtags,
        &ig.comments,
        &ig.tagged_users,
    );
    Ok(Ok(()))
}

/// Upserts one table's rows in statements bounded by count and bytes.
async fn table<R: Upsert>(
    txn: &DatabaseTransaction,
    rows: &[(usize, R)],
    records: &[ConsumedRecord],
) -> Result<Result<(), DbErr>, WriteError> {
    let weight = |(index, _): &(usize, R)| if R::CARRIES_PAYLOAD { payload_len(&records[*index]) } else { 256 };
    for (_, statement) in statements(rows, ROWS_PER_STATEMENT, &weight) {
        if let Err(error) = run(txn, &Upserts, statement).await? {
            return Ok(Err(error));
        }
    }
    Ok(Ok(()))
}

fn payload_len(record: &ConsumedRecord) -> usize {
    record.payload.as_ref().map_or(0, Vec::len)
}

/// Runs one statement under a savepoint, again when it collided with a concurrent writer's new row.
/// `Ok(Err(_))`: the items are at fault.
async fn run<T>(
    txn: &DatabaseTransaction,
    statement: &impl Statement<T>,
    items: &[T],
) -> Result<Result<(), DbErr>, WriteError> {
    let mut races = 0;
    loop {
        let savepoint = txn.begin().await.map_err(|e| WriteError::from_db(e, "open a savepoint"))?;
        let Err(error) = statement.run(&savepoint, items).await else {
            savepoint.commit().await.map_err(|e| WriteError::from_db(e, "release a savepoint"))?;
            return Ok(Ok(()));
        };
        savepoint.rollback().await.map_err(|e| WriteError::from_db(e, "roll back a savepoint"))?;
        match failure::classify(&error) {
            Reaction::RetryBatch | Reaction::Stop => return Err(WriteError::from_db(error, "write rows")),
            Reaction::RetryStatement if races < RACE_RETRIES => {
                races += 1;
                tracing::debug!(error = %failure::describe(&error), "collided with a concurrent writer; again");
            }
            Reaction::RetryStatement | Reaction::IsolateRows => return Ok(Err(error)),
        }
    }
}

/// Runs `statement` over `items` in statements of at most `max_items` and [`STATEMENT_BYTES`] (by
/// `weight`). A statement whose items are at fault is split until the guilty items stand alone; those are
/// returned (their positions in `items`, with their errors) and everything else is written.
async fn isolating<T>(
    txn: &DatabaseTransaction,
    items: &[T],
    max_items: usize,
    weight: impl Fn(&T) -> usize,
    statement: &impl Statement<T>,
) -> Result<Vec<(usize, DbErr)>, WriteError> {
    let mut pending: Vec<(usize, &[T])> = statements(items, max_items, &weight);
    pending.reverse();
    let mut failed = Vec::new();
    while let Some((start, slice)) = pending.pop() {
        let Err(error) = run(txn, statement, slice).await? else { continue };
        if slice.len() == 1 {
            failed.push((start, error));
        } else {
            let (first, second) = slice.split_at(slice.len() / 2);
            pending.push((start + first.len(), second));
            pending.push((start, first));
        }
    }
    Ok(failed)
}

/// A statement over a slice of items, which [`isolating`] runs.
trait Statement<T> {
    async fn run(&self, txn: &DatabaseTransaction, items: &[T]) -> Result<(), DbErr>;
}

/// The upsert of a table's rows.
struct Upserts;

impl<R: Upsert> Statement<(usize, R)> for Upserts {
    async fn run(&self, txn: &DatabaseTransaction, rows: &[(usize, R)]) -> Result<(), DbErr> {
        R::upsert(txn, rows).await
    }
}

/// The insert of dead letters `(record index, reason)`, one per record (a replayed record already
/// dead-lettered is skipped); `minimal` ones without the record's bytes.
struct DeadLetters<'a> {
    records: &'a [ConsumedRecord],
    minimal: bool,
}

impl Statement<(usize, String)> for DeadLetters<'_> {
    async fn run(&self, txn: &DatabaseTransaction, items: &[(usize, String)]) -> Result<(), DbErr> {
        use ingest_errors::Column as C;
        let rows = items.iter().map(|(index, reason)| match self.minimal {
            false => self.records[*index].dead_letter(reason),
            true => self.records[*index].minimal_dead_letter(reason),
        });
        ingest_errors::Entity::insert_many(rows)
            .on_conflict(OnConflict::columns([C::Topic, C::Partition, C::Offset]).do_nothing().to_owned())
            .exec_without_returning(txn)
            .await
            .map(drop)
    }
}

/// `items` cut into statements of at most `max_items` and about [`STATEMENT_BYTES`], each with the position
/// of its first item.
fn statements<'a, T>(items: &'a [T], max_items: usize, weight: &impl Fn(&T) -> usize) -> Vec<(usize, &'a [T])> {
    let mut statements = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (position, item) in items.iter().enumerate() {
        let item_bytes = weight(item);
        if position > start && (position - start >= max_items || bytes + item_bytes > STATEMENT_BYTES) {
            statements.push((start, &items[start..position]));
            (start, bytes) = (position, 0);
        }
        bytes += item_bytes;
    }
    if start < items.len() {
        statements.push((start, &items[start..]));
    }
    statements
}

/// Stores the dead letters `(record index, reason)`, isolated like rows. A dead letter refused whole (for a
/// key or a header value the database cannot hold) is stored without its bytes; if even that is refused,
/// nothing is committed and the inserter stops: a record is never skipped.
async fn store_dead_letters(
    txn: &DatabaseTransaction,
    records: &[ConsumedRecord],
    dead_letters: &[(usize, String)],
) -> Result<(), WriteError> {
    let weight = |(index, _): &(usize, String)| payload_len(&records[*index]) + 1_024;
    let whole = DeadLetters { records, minimal: false };
    let failed = isolating(txn, dead_letters, DEAD_LETTERS_PER_STATEMENT, weight, &whole).await?;
    for (position, error) in failed {
        let (index, reason) = &dead_letters[position];
        let record = &records[*index];
        let reason = format!(
            "{reason} (its key, value and headers could not be stored: {}; read them from Kafka)",
            failure::describe(&error)
        );
        let minimal = DeadLetters { records, minimal: true };
        if let Err(error) = run(txn, &minimal, &[(*index, reason)]).await? {
            return Err(WriteError::Fatal(format!(
                "cannot store even a minimal dead letter for {}/{}@{}: {}; nothing was committed",
                record.topic,
                record.partition,
                record.offset,
                failure::describe(&error)
            )));
        }
    }
    Ok(())
}

/// Stores the batch's next offsets for `group`. An offset never moves backwards: after a rebalance, the
/// member that lost a partition may commit its last batch after the new owner started below it.
async fn store_offsets(txn: &DatabaseTransaction, group: &str, batch: &Batch) -> Result<(), WriteError> {
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
    if offsets.is_empty() {
        return Ok(());
    }
    use kafka_offsets::Column as C;
    kafka_offsets::Entity::insert_many(offsets)
        .on_conflict(
            OnConflict::columns([C::ConsumerGroup, C::Topic, C::Partition])
                .values([
                    (C::NextOffset, Expr::cust("GREATEST(kafka_offsets.next_offset, EXCLUDED.next_offset)")),
                    (C::UpdatedAt, Expr::cust("EXCLUDED.updated_at")),
                ])
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await
        .map_err(|e| WriteError::from_db(e, "store the offsets"))?;
    Ok(())
}

/// The offsets `group` committed with its rows: where to resume each partition.
pub async fn stored_offsets(db: &DatabaseConnection, group: &str) -> Result<HashMap<(String, i32), i64>, DbErr> {
    let rows = kafka_offsets::Entity::find().filter(kafka_offsets::Column::ConsumerGroup.eq(group)).all(db).await?;
    Ok(rows.into_iter().map(|row| ((row.topic, row.partition), row.next_offset)).collect())
}

/// A row type the writer can upsert in bulk.
pub(crate) trait Upsert: Sized {
    /// Whether a row carries its record's payload (`raw`): it then weighs that much in a statement.
    const CARRIES_PAYLOAD: bool = true;

    /// Upserts the rows of `rows` (each with the index of its record).
    async fn upsert(txn: &DatabaseTransaction, rows: &[(usize, Self)]) -> Result<(), DbErr>;
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
    const CARRIES_PAYLOAD: bool = false;

    async fn upsert(txn: &DatabaseTransaction, rows: &[(usize, Self)]) -> Result<(), DbErr> {
        let on_conflict = OnConflict::column(instagram_profiles::Column::UserId).do_nothing().to_owned();
        unnest::upsert(txn, rows, |(_, row)| &row.0, on_conflict).await
    }
}

impl Upsert for instagram_profile_snapshots::ActiveModel {
    const CARRIES_PAYLOAD: bool = false;

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
    const CARRIES_PAYLOAD: bool = false;

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
    const CARRIES_PAYLOAD: bool = false;

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
    const CARRIES_PAYLOAD: bool = false;

    /// Links are only added, like the hashtags'.
    async fn upsert(txn: &DatabaseTransaction, rows: &[(usize, Self)]) -> Result<(), DbErr> {
        use instagram_post_tagged_users::Column as C;
        let on_conflict = OnConflict::columns([C::MediaId, C::UserId]).do_nothing().to_owned();
        unnest::upsert(txn, rows, |(_, row)| row, on_conflict).await
    }
}
