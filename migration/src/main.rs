//! `migration up|down|status|fresh|refresh|reset`: sea-orm-migration's CLI over this crate's migrations.
//!
//! `DATABASE_URL` comes from the environment or `.env`; `sea-orm-cli migrate ...` from the repository root runs
//! this same binary.

#[tokio::main]
async fn main() {
    sea_orm_migration::cli::run_cli(migration::Migrator).await;
}
