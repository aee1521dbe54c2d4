//! The Kafka offsets stored with the rows, per consumer group: written in each batch's transaction, read
//! when partitions are assigned, so that a batch's rows and its offsets are durable together.

use std::collections::{BTreeMap, HashMap};

use entity::kafka_offsets;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, OnConflict, PostgresQueryBuilder};
use sea_orm::sqlx::{self, AssertSqlSafe, PgConnection};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryTrait};
use sea_query_sqlx::SqlxBinder;

use crate::writer::{WriteError, exec_error};

/// Stores `next_offsets` for `group`. An offset never moves backwards: after a rebalance, the member that
/// lost a partition may commit its last batch after the new owner started below it.
pub(crate) async fn store(
    conn: &mut PgConnection,
    group: &str,
    next_offsets: &BTreeMap<(String, i32), i64>,
) -> Result<(), WriteError> {
    if next_offsets.is_empty() {
        return Ok(());
    }
    let now = chrono::Utc::now();
    let offsets = next_offsets.iter().map(|((topic, partition), next)| kafka_offsets::ActiveModel {
        consumer_group: Set(group.to_owned()),
        topic: Set(topic.clone()),
        partition: Set(*partition),
        next_offset: Set(*next),
        updated_at: Set(now),
    });
    use kafka_offsets::Column as C;
    let insert = kafka_offsets::Entity::insert_many(offsets)
        .on_conflict(
            OnConflict::columns([C::ConsumerGroup, C::Topic, C::Partition])
                .values([
                    (C::NextOffset, Expr::cust("GREATEST(kafka_offsets.next_offset, EXCLUDED.next_offset)")),
                    (C::UpdatedAt, Expr::cust("EXCLUDED.updated_at")),
                ])
                .to_owned(),
        )
        .into_query();
    let (sql, values) = insert.build_sqlx(PostgresQueryBuilder);
    sqlx::query_with(AssertSqlSafe(sql), values)
        .execute(conn)
        .await
        .map_err(|e| WriteError::from_db(exec_error(e), "store the offsets"))?;
    Ok(())
}

/// The offsets `group` committed with its rows: where to resume each partition.
pub async fn stored(db: &DatabaseConnection, group: &str) -> Result<HashMap<(String, i32), i64>, DbErr> {
    let rows = kafka_offsets::Entity::find().filter(kafka_offsets::Column::ConsumerGroup.eq(group)).all(db).await?;
    Ok(rows.into_iter().map(|row| ((row.topic, row.partition), row.next_offset)).collect())
}
