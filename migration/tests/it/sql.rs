//! Running SQL text in the tests: statements whose failure fails the test, and the rows of a query as text.

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

/// Runs `sql` (several statements may follow each other); a failure panics with the statement.
pub async fn exec(db: &DatabaseConnection, sql: &str) {
    db.execute_unprepared(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The first column of every row, as text.
pub async fn lines(db: &DatabaseConnection, sql: &str) -> Vec<String> {
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    rows.iter().map(|row| row.try_get_by_index::<String>(0).unwrap()).collect()
}
