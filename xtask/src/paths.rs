//! Repository paths cited in comments and docs, and whether they exist.

use std::path::Path;

/// The top-level directories of the repository: a cited path that starts with one of them is a path from
/// the repository's root.
const ROOTS: &[&str] = &[
    "common/",
    "contract/",
    "entity/",
    "inserter/",
    "migration/",
    "scraper/",
    "testkit/",
    "xtask/",
    "docs/",
    "scripts/",
    "docker/",
    ".ci/",
    ".config/",
    ".cargo/",
];

/// File endings of the files the repository cites.
const CITED: &[&str] = &[".rs", ".md", ".sh", ".toml", ".yml", ".yaml", ".json", ".sql", ".c", ".py", ".env"];

/// Paths from the repository's root that a tracked text file cites (in a comment, a doc or a string) and that
/// do not exist: `(file, cited path)`.
pub fn missing_paths(root: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let listed = std::process::Command::new("git").arg("-C").arg(root).args(["ls-files", "-z"]).output()?;
    anyhow::ensure!(listed.status.success(), "git ls-files: {}", String::from_utf8_lossy(&listed.stderr));
    let files: Vec<String> =
        listed.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()).map(|f| String::from_utf8_lossy(f).into()).collect();
    let mut missing = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(root.join(file)) else { continue };
        for cited in cited_paths(&text) {
            if !root.join(&cited).exists() {
                missing.push((file.clone(), cited));
            }
        }
    }
    Ok(missing)
}

/// The repository paths in `text`: a run of path characters that starts with a top-level directory (after
/// a character that cannot be part of a path) and ends with a known file ending.
fn cited_paths(text: &str) -> Vec<String> {
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/');
    let mut found = Vec::new();
    for (start, _) in text.char_indices() {
        if start > 0 && text[..start].chars().next_back().is_some_and(|c| is_path_char(c) || c == '$') {
            continue;
        }
        let rest = &text[start..];
        if !ROOTS.iter().any(|root| rest.starts_with(root)) {
            continue;
        }
        let end = rest.find(|c: char| !is_path_char(c)).unwrap_or(rest.len());
        let candidate = rest[..end].trim_end_matches('.');
        if CITED.iter().any(|ending| candidate.ends_with(ending)) && !candidate.contains("..") {
            found.push(candidate.to_owned());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::cited_paths;

    #[test]
    fn cited_paths_are_found_where_prose_and_code_name_them() {
        let text = "see `testkit/tests/it/compose_config.rs`, (docs/operations.md). Not src/x.rs or \
                    $HOME/docs/a.md or my-docs/b.md; scripts/test.sh.";
        assert_eq!(cited_paths(text), ["testkit/tests/it/compose_config.rs", "docs/operations.md", "scripts/test.sh"]);
    }
}
