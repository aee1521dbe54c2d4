//! Moving a database's schema back to a named migration, whatever migrations come after it: a test written
//! against one migration should not count the ones added later.

use migration::{Migrator, MigratorTrait};
use sea_orm::DatabaseConnection;

/// Runs `down` for `name` (a migration's name or its leading part, e.g. `m20261201_000009`) and every
/// migration after it.
pub async fn down_to_before(db: &DatabaseConnection, name: &str) {
    let migrations = Migrator::migrations();
    let at = migrations.iter().position(|m| m.name().starts_with(name)).unwrap_or_else(|| panic!("no {name}"));
    Migrator::down(db, Some((migrations.len() - at) as u32)).await.unwrap();
}
