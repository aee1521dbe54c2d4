//! Runs a migration's SQL text: several statements, in the migrator's transaction.

use sea_orm_migration::prelude::*;

pub(crate) async fn run(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    manager.get_connection().execute_unprepared(sql).await.map(|_| ())
}
