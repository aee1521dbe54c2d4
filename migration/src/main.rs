//! `migration up|down|status|fresh|refresh|reset`: sea-orm-migration's CLI over this crate's migrations;
//! `migration retention`: the partitioned tables' retention (see `migration retention --help`).
//!
//! `DATABASE_URL` comes from the environment or `.env`; `sea-orm-cli migrate ...` from the repository root runs
//! this same binary.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // sea-orm-migration's CLI prints the variables' values in its help, DATABASE_URL's password with it.
    // Set before the runtime starts any thread, and before its dotenv, which would otherwise fill it from .env.
    if args.iter().skip(1).any(|a| a == "-h" || a == "--help" || a == "help") {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("DATABASE_URL", "(hidden)") };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("start the runtime");
    runtime.block_on(async {
        if args.get(1).map(String::as_str) == Some("retention") {
            std::process::exit(migration::retention::cli(args.into_iter().skip(1)).await);
        }
        sea_orm_migration::cli::run_cli(migration::Migrator).await;
    });
}
