//! Writes a batch in one transaction: rows upserted from their SeaORM entities (`ON CONFLICT`, one binary
//! array parameter per column: see `table` and `encode`), dead letters, and the batch's bookkeeping (its next
//! offsets, or the dead letters it re-drove), so that rows and bookkeeping become durable together. The
//! transaction runs on a connection of SeaORM's own pool, through sqlx, which binds the binary arrays; every
//! statement is built by sea-query from the entities.
//!
//! A failed statement is classified (`failure`). When rows are at fault, the batch's records are split in
//! halves under savepoints, each part decoded and written on its own, until the guilty records stand alone;
//! they alone are dead-lettered with the database's SQLSTATE and message, and the rest lands as writing the
//! records one by one would. A statement that collided with a concurrent writer runs again. A database that
//! is unwell aborts the batch (nothing is committed; the caller retries); a missing grant stops the inserter.

use std::collections::BTreeMap;
use std::sync::Arc;

use entity::ingest_errors;
use sea_orm::sea_query::{OnConflict, PostgresQueryBuilder};
use sea_orm::sqlx::{self, AssertSqlSafe, PgConnection};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryTrait, RuntimeErr};
use sea_query_sqlx::SqlxBinder;

use crate::batch::{Batch, RowsToWrite};
use crate::failure::{self, Reaction};
use crate::offsets;
use crate::record::ConsumedRecord;
use crate::table::{Encoded, chunks};
use crate::tables::TableStatements;

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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Parts of the batch written again to isolate refused records (0 when nothing was refused).
    pub rewrites: usize,
    /// Rows offered to the database by table (only tables with rows; an unchanged row is offered but not
    /// rewritten).
    pub rows_by_table: BTreeMap<&'static str, usize>,
    /// Records dead-lettered, by the topic they came from.
    pub dead_letters_by_topic: BTreeMap<String, usize>,
}

impl Written {
    /// Rows offered to the database, over every table.
    pub fn rows_offered(&self) -> usize {
        self.rows_by_table.values().sum()
    }

    /// Records dead-lettered, over every topic.
    pub fn dead_letters(&self) -> usize {
        self.dead_letters_by_topic.values().sum()
    }
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
    pub(crate) fn from_db(error: DbErr, doing: &str) -> Self {
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
    let pool = db.get_postgres_connection_pool();
    let mut txn = pool.begin().await.map_err(|e| WriteError::from_db(conn_error(e), "begin the batch"))?;
    // A deferred constraint (a reply's parent comment) fails at COMMIT, where no row can be isolated any
    // more; checked at each statement's end instead, it fails where its record can. Rows are ordered so that
    // what they reference is written first.
    execute(&mut txn, "SET CONSTRAINTS ALL IMMEDIATE")
        .await
        .map_err(|e| WriteError::from_db(e, "check constraints immediately"))?;
    if let Bookkeeping::Redriven { dead_letter_ids } = bookkeeping {
        let delete = ingest_errors::Entity::delete_many()
            .filter(ingest_errors::Column::Id.is_in(dead_letter_ids.iter().copied()))
            .into_query();
        let (sql, values) = delete.build_sqlx(PostgresQueryBuilder);
        sqlx::query_with(AssertSqlSafe(sql), values).execute(&mut *txn).await.map_err(|e| {
            WriteError::from_db(
                exec_error(e),
                "delete the re-driven dead letters (redrive needs DELETE on ingest_errors: run it as the \
                 schema's owner, ingest_owner in compose)",
            )
        })?;
    }

    let mut dead_letters: Vec<(usize, String)> = batch.dead_letters.clone();
    let rewrites = write_isolating(&mut txn, batch, &mut dead_letters).await?;
    store_dead_letters(&mut txn, &batch.records, &dead_letters).await?;

    if let Bookkeeping::Offsets { group } = bookkeeping {
        offsets::store(&mut txn, group, batch.next_offsets()).await?;
    }
    txn.commit().await.map_err(|e| WriteError::from_db(exec_error(e), "commit the batch"))?;
    let mut dead_letters_by_topic = BTreeMap::new();
    for (index, _) in &dead_letters {
        *dead_letters_by_topic.entry(batch.records[*index].topic.clone()).or_default() += 1;
    }
    Ok(Written { rewrites, rows_by_table: batch.rows.count_by_table(), dead_letters_by_topic })
}

/// Writes the batch's rows. If the database refuses some for what they hold, the batch's records are split
/// in halves, each half decoded and written on its own under a savepoint, until every refused record stands
/// alone; those are added to `refused` with the database's reason, and everything else is written exactly as
/// writing the records one by one would (a refused record's rows never reach another record's, even where
/// the batch had merged them). Returns how many parts were written again.
async fn write_isolating(
    conn: &mut PgConnection,
    batch: &Batch,
    refused: &mut Vec<(usize, String)>,
) -> Result<usize, WriteError> {
    let Err(error) = under_savepoint(conn, &batch.rows, &batch.records).await? else { return Ok(0) };
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
            if let Err(error) = under_savepoint(conn, &batch.rows_of(half), &batch.records).await? {
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
    conn: &mut PgConnection,
    rows: &RowsToWrite,
    records: &[ConsumedRecord],
) -> Result<Result<(), DbErr>, WriteError> {
    let savepoint = Savepoint::open(conn, "batch_part").await?;
    let written = write_rows(conn, rows, records).await?;
    savepoint.close(conn, written.is_ok()).await?;
    Ok(written)
}

/// Writes every table's rows, in order, stopping at the first statement whose rows are at fault.
async fn write_rows(
    conn: &mut PgConnection,
    rows: &RowsToWrite,
    records: &[ConsumedRecord],
) -> Result<Result<(), DbErr>, WriteError> {
    // The batch's own rows were encoded when it was decoded (beside the previous batch's write); a part
    // written again to isolate a record is encoded here.
    match &rows.encoded {
        Some(encoded) => write_encoded(conn, encoded).await,
        None => write_encoded(conn, &encode(rows, records)).await,
    }
}

/// `rows`' statements, table by table in the order they are written.
pub(crate) fn encode(rows: &RowsToWrite, records: &[ConsumedRecord]) -> Vec<TableStatements> {
    rows.tables.encode(records, ROWS_PER_STATEMENT, STATEMENT_BYTES)
}

async fn write_encoded(conn: &mut PgConnection, tables: &[TableStatements]) -> Result<Result<(), DbErr>, WriteError> {
    for (table, statements) in tables {
        let statements = match statements {
            Ok(statements) => statements,
            // A value of a type its column does not take: the rows' fault.
            Err(error) => return Ok(Err(DbErr::Custom(format!("{table}: {error}")))),
        };
        for statement in statements {
            if let Err(error) = run(conn, statement).await? {
                return Ok(Err(error));
            }
        }
    }
    Ok(Ok(()))
}

/// A statement the writer runs under a savepoint.
trait Statement {
    async fn run(&self, conn: &mut PgConnection) -> Result<(), DbErr>;
}

impl Statement for Encoded {
    async fn run(&self, conn: &mut PgConnection) -> Result<(), DbErr> {
        let mut query = sqlx::query(AssertSqlSafe(self.sql.as_str()));
        for array in &self.arrays {
            query = query.bind(array);
        }
        query.execute(conn).await.map(drop).map_err(exec_error)
    }
}

/// Runs one statement under a savepoint, again when it collided with a concurrent writer's new row.
/// `Ok(Err(_))`: its rows are at fault.
async fn run(conn: &mut PgConnection, statement: &impl Statement) -> Result<Result<(), DbErr>, WriteError> {
    let mut races = 0;
    loop {
        let savepoint = Savepoint::open(conn, "statement").await?;
        let result = statement.run(conn).await;
        savepoint.close(conn, result.is_ok()).await?;
        let Err(error) = result else { return Ok(Ok(())) };
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

/// A savepoint: released when what ran under it succeeded, rolled back to otherwise.
struct Savepoint(&'static str);

impl Savepoint {
    async fn open(conn: &mut PgConnection, name: &'static str) -> Result<Self, WriteError> {
        execute(conn, &format!("SAVEPOINT {name}")).await.map_err(|e| WriteError::from_db(e, "open a savepoint"))?;
        Ok(Self(name))
    }

    async fn close(self, conn: &mut PgConnection, keep: bool) -> Result<(), WriteError> {
        let sql = match keep {
            true => format!("RELEASE SAVEPOINT {}", self.0),
            false => format!("ROLLBACK TO SAVEPOINT {0}; RELEASE SAVEPOINT {0}", self.0),
        };
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(conn)
            .await
            .map(drop)
            .map_err(|e| WriteError::from_db(exec_error(e), "close a savepoint"))
    }
}

async fn execute(conn: &mut PgConnection, sql: &str) -> Result<(), DbErr> {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned())).execute(conn).await.map(drop).map_err(exec_error)
}

/// A statement's error as SeaORM reports it, which `failure` classifies.
pub(crate) fn exec_error(error: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(Arc::new(error)))
}

/// A connection's error (begin, acquire) as SeaORM reports it.
fn conn_error(error: sqlx::Error) -> DbErr {
    DbErr::Conn(RuntimeErr::SqlxError(Arc::new(error)))
}

/// The insert of dead letters `(record index, reason)`, one per record (a replayed record already
/// dead-lettered is skipped); `minimal` ones without the record's bytes.
struct DeadLetters<'a> {
    records: &'a [ConsumedRecord],
    items: &'a [(usize, String)],
    minimal: bool,
}

impl Statement for DeadLetters<'_> {
    async fn run(&self, conn: &mut PgConnection) -> Result<(), DbErr> {
        use ingest_errors::Column as C;
        let rows = self.items.iter().map(|(index, reason)| match self.minimal {
            false => self.records[*index].dead_letter(reason),
            true => self.records[*index].minimal_dead_letter(reason),
        });
        let insert = ingest_errors::Entity::insert_many(rows)
            .on_conflict(OnConflict::columns([C::Topic, C::Partition, C::Offset]).do_nothing().to_owned())
            .into_query();
        let (sql, values) = insert.build_sqlx(PostgresQueryBuilder);
        sqlx::query_with(AssertSqlSafe(sql), values).execute(conn).await.map(drop).map_err(exec_error)
    }
}

/// Stores the dead letters `(record index, reason)`, isolated like rows: a statement refused is split until
/// the refused dead letters stand alone. A dead letter refused whole (for a key or a header value the
/// database cannot hold) is stored without its bytes; if even that is refused, nothing is committed and the
/// inserter stops: a record is never skipped.
async fn store_dead_letters(
    conn: &mut PgConnection,
    records: &[ConsumedRecord],
    dead_letters: &[(usize, String)],
) -> Result<(), WriteError> {
    let weight = |(index, _): &(usize, String)| records[*index].payload.as_ref().map_or(0, Vec::len) + 1_024;
    let mut pending = chunks(dead_letters, DEAD_LETTERS_PER_STATEMENT, STATEMENT_BYTES, weight);
    pending.reverse();
    while let Some((start, items)) = pending.pop() {
        let Err(error) = run(conn, &DeadLetters { records, items, minimal: false }).await? else { continue };
        if let [(index, reason)] = items {
            store_minimal_dead_letter(conn, &records[*index], *index, reason, &error, records).await?;
        } else {
            let (first, second) = items.split_at(items.len() / 2);
            pending.push((start + first.len(), second));
            pending.push((start, first));
        }
    }
    Ok(())
}

async fn store_minimal_dead_letter(
    conn: &mut PgConnection,
    record: &ConsumedRecord,
    index: usize,
    reason: &str,
    refused: &DbErr,
    records: &[ConsumedRecord],
) -> Result<(), WriteError> {
    let reason = format!(
        "{reason} (its key, value and headers could not be stored: {}; read them from Kafka)",
        failure::describe(refused)
    );
    let items = [(index, reason)];
    if let Err(error) = run(conn, &DeadLetters { records, items: &items, minimal: true }).await? {
        return Err(WriteError::Fatal(format!(
            "cannot store even a minimal dead letter for {}/{}@{}: {}; nothing was committed",
            record.topic,
            record.partition,
            record.offset,
            failure::describe(&error)
        )));
    }
    Ok(())
}
