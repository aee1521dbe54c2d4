//! Migrations written as SQL text: `sql_migration!(UP, DOWN)` implements `MigrationTrait` by running `UP` or
//! `DOWN` (several statements each) in the migrator's transaction.

use sea_orm_migration::prelude::*;

pub(crate) async fn run(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    manager.get_connection().execute_unprepared(sql).await.map(|_| ())
}

macro_rules! sql_migration {
    ($up:expr, $down:expr) => {
        #[derive(DeriveMigrationName)]
        pub struct Migration;

        #[async_trait::async_trait]
        impl MigrationTrait for Migration {
            async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                $crate::sql::run(manager, $up).await
            }

            async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                $crate::sql::run(manager, $down).await
            }
        }
    };
}
pub(crate) use sql_migration;
