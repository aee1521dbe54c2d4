//! Writes a batch in one transaction: rows upserted from their SeaORM entities (`ON CONFLICT`, one array
//! parameter per column: see `unnest`), dead letters (`insert_many`, chunked under Postgres's
//! bind-parameter limit), and the batch's next offsets, so that rows and offsets become durable together.
//! A row the database refuses (a CHECK, a bad value) is isolated by splitting its chunk under savepoints,
//! and its record alone is dead-lettered; any other database error aborts the whole batch, so that nothing
//! is committed and the caller retries.

use std::collections::HashMap;

use entity::{ingest_errors, kafka_offsets, mastodon_statuses, twitter_data, twitter_users};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait, IdenStatic, QueryFilter, RuntimeErr,
    TransactionTrait,
};

use crate::batch::Batch;
use crate::unnest;

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
    let txn = db.begin().await?;
    let mut refused = Vec::new();
    write_isolating(&txn, &batch.users, &mut refused).await?;
    write_isolating(&txn, &batch.tweets, &mut refused).await?;
    write_isolating(&txn, &batch.statuses, &mut refused).await?;

    let mut dead_letters = batch.dead_letters.clone();
    dead_letters.extend(
        refused.iter().map(|(index, error)| batch.records[*index].dead_letter(&format!("database refused: {error}"))),
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
    let rows = batch.tweets.len() + batch.users.len() + batch.statuses.len();
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

/// A data exception (class 22) or an integrity violation (class 23): the row's fault, not the database's.
fn is_refused_row(error: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = error else {
        return false;
    };
    let sea_orm::sqlx::Error::Database(db_error) = e.as_ref() else { return false };
    db_error.code().is_some_and(|code| code.starts_with("22") || code.starts_with("23"))
}

/// The upsert rule of every data table: a row changes only when a newer scrape brings a different value, and
/// a value the source did not send (NULL) keeps the known one. So a replay, or an identical re-scrape, writes
/// nothing and emits no change event.
fn guarded_upsert<C: ColumnTrait + IdenStatic>(
    table: &str,
    key: C,
    kept_when_missing: &[C],
    replaced: &[C],
    metadata: &[C],
) -> OnConflict {
    let merged = |column: &C| {
        let name = column.as_str();
        if kept_when_missing.iter().any(|c| c.as_str() == name) {
            format!("COALESCE(EXCLUDED.{name}, {table}.{name})")
        } else {
            format!("EXCLUDED.{name}")
        }
    };
    let compared: Vec<&C> = kept_when_missing.iter().chain(replaced).collect();
    let current = compared.iter().map(|c| format!("{table}.{}", c.as_str())).collect::<Vec<_>>().join(", ");
    let incoming = compared.iter().map(|c| merged(c)).collect::<Vec<_>>().join(", ");
    let mut on_conflict = OnConflict::column(key);
    on_conflict.values(compared.iter().copied().chain(metadata).map(|c| (*c, Expr::cust(merged(c))))).action_and_where(
        Expr::cust(format!("EXCLUDED.scraped_at > {table}.scraped_at AND ({current}) IS DISTINCT FROM ({incoming})")),
    );
    on_conflict
}

impl Upsert for twitter_data::ActiveModel {
    async fn upsert(txn: &DatabaseTransaction, rows: &[(usize, Self)]) -> Result<(), DbErr> {
        use twitter_data::Column as C;
        let on_conflict = guarded_upsert(
            "twitter_data",
            C::TweetId,
            &[
                C::AuthorId,
                C::CreatedAt,
                C::Lang,
                C::ConversationId,
                C::InReplyToUserId,
                C::RepliedToId,
                C::QuotedId,
                C::RetweetedId,
                C::RetweetCount,
                C::ReplyCount,
                C::LikeCount,
                C::QuoteCount,
                C::BookmarkCount,
                C::ImpressionCount,
                C::PossiblySensitive,
            ],
            &[C::Text, C::Hashtags, C::Mentions, C::Urls],
            &[C::Source, C::Raw, C::ScrapedAt],
        );
        unnest::upsert(txn, rows, |(_, row)| row, on_conflict).await
    }
}

impl Upsert for twitter_users::ActiveModel {
    async fn upsert(txn: &DatabaseTransaction, rows: &[(usize, Self)]) -> Result<(), DbErr> {
        use twitter_users::Column as C;
        let on_conflict = guarded_upsert(
            "twitter_users",
            C::UserId,
            &[
                C::Name,
                C::Description,
                C::Location,
                C::Url,
                C::ProfileImageUrl,
                C::Verified,
                C::VerifiedType,
                C::Protected,
                C::CreatedAt,
                C::FollowersCount,
                C::FollowingCount,
                C::TweetCount,
                C::ListedCount,
                C::LikeCount,
            ],
            &[C::Username],
            &[C::Raw, C::ScrapedAt],
        );
        unnest::upsert(txn, rows, |(_, row)| row, on_conflict).await
    }
}

impl Upsert for mastodon_statuses::ActiveModel {
    async fn upsert(txn: &DatabaseTransaction, rows: &[(usize, Self)]) -> Result<(), DbErr> {
        use mastodon_statuses::Column as C;
        // What a status always carries is replaced by a newer scrape (an edit changes content, tags,
        // mentions); what may come as null keeps the known value.
        let on_conflict = guarded_upsert(
            "mastodon_statuses",
            C::Id,
            &[
                C::Url,
                C::Language,
                C::Sensitive,
                C::InReplyToId,
                C::ReblogOfId,
                C::ReblogsCount,
                C::FavouritesCount,
                C::RepliesCount,
                C::EditedAt,
            ],
            &[
                C::Uri,
                C::CreatedAt,
                C::AccountId,
                C::AccountAcct,
                C::AccountUsername,
                C::ContentHtml,
                C::ContentText,
                C::SpoilerText,
                C::Visibility,
                C::Tags,
                C::Mentions,
            ],
            &[C::Raw, C::ScrapedAt],
        );
        unnest::upsert(txn, rows, |(_, row)| row, on_conflict).await
    }
}
