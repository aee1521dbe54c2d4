//! `migration up|down|status|fresh|refresh|reset`: sea-orm-migration's CLI over this crate's migrations;
//! `migration retention`: the partitioned tables' retention (see `migration retention --help`).
//!
//! `DATABASE_URL` comes from the environment or `.env`; `sea-orm-cli migrate ...` from the repository root runs
//! this same binary.

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("retention") {
        std::process::exit(migration::retention::cli(std::env::args().skip(1)).await);
    }
    sea_orm_migration::cli::run_cli(migration::Migrator).await;
}
