//! `cargo xtask settings`: writes `.env.example`, compose's `scraper` and `inserter` environment lists and the
//! settings tables of `docs/operations.md` from the binaries' flags. `cargo xtask settings --check` writes
//! nothing and fails when a file is out of date.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> anyhow::Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["settings"] => {
            for (path, content) in xtask::generate(&root)? {
                std::fs::write(root.join(path), content)?;
                println!("wrote {path}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ["settings", "--check"] => {
            let stale = xtask::out_of_date(&root)?;
            if stale.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!("out of date (run `cargo xtask settings`): {}", stale.join(", "));
            Ok(ExitCode::FAILURE)
        }
        _ => {
            eprintln!("usage: cargo xtask settings [--check]");
            Ok(ExitCode::from(2))
        }
    }
}
