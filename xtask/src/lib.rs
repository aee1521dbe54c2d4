//! The binaries' settings, written once: their clap definitions. From them this crate writes `.env.example`,
//! the `environment:` lists of compose's `scraper` and `inserter` services and the settings tables of
//! `docs/operations.md`; `cargo xtask settings` writes the files and a test fails while one is out of date.
//!
//! A generator crate rather than a `--print-settings` flag in each binary: the files combine all the binaries'
//! settings (a variable two binaries read is written once, and their defaults must agree), and the
//! production binaries carry no code for the repository's upkeep.

mod compose;
mod docs;
mod env_example;
mod paths;
mod settings;

use std::path::Path;

use anyhow::{Context, bail};

pub use compose::compose_environment;
pub use env_example::env_example;
pub use paths::missing_paths;
pub use settings::{Binary, Setting, binaries, settings};

/// Every generated file: (path from the repository's root, its content).
pub fn generate(root: &Path) -> anyhow::Result<Vec<(&'static str, String)>> {
    let binaries = binaries();
    let read = |path: &str| std::fs::read_to_string(root.join(path)).with_context(|| path.to_owned());
    let compose_env = read("docker/compose.env")?;
    let env = env_example(&binaries, &compose_env)?;
    let mut compose = read("docker-compose.yml")?;
    let mut declared: Vec<&str> = binaries.iter().flat_map(|b| b.settings.iter().map(|s| s.env.as_str())).collect();
    declared.extend(compose::variables(&compose_env)?.into_iter().map(|variable| variable.name));
    let undeclared = compose::undeclared(&compose, &declared);
    if !undeclared.is_empty() {
        bail!("docker-compose.yml reads {} without a line in docker/compose.env", undeclared.join(", "));
    }
    for binary in binaries.iter().filter(|b| b.name == "scraper" || b.name == "inserter") {
        let names: Vec<String> = binary.settings.iter().map(|s| s.env.clone()).collect();
        compose = compose_environment(&compose, binary.name, &names)?;
    }
    let operations =
        docs::operations(&read("docs/operations.md")?, &binaries, &compose_env).context("docs/operations.md")?;
    Ok(vec![(".env.example", env), ("docker-compose.yml", compose), ("docs/operations.md", operations)])
}

/// The generated files that differ from what is in `root`.
pub fn out_of_date(root: &Path) -> anyhow::Result<Vec<&'static str>> {
    Ok(generate(root)?
        .into_iter()
        .filter(|(path, content)| std::fs::read_to_string(root.join(path)).ok().as_deref() != Some(content))
        .map(|(path, _)| path)
        .collect())
}
