//! The binaries' settings, written once: their clap definitions. From them this crate writes `.env.example`
//! and the `environment:` lists of compose's `scraper` and `inserter` services; `cargo xtask settings` writes
//! the files and a test fails while either is out of date.
//!
//! A generator crate rather than a `--print-settings` flag in each binary: the files combine all the binaries'
//! settings (a variable two binaries read is written once, and their defaults must agree), and the
//! production binaries carry no code for the repository's upkeep.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use clap::CommandFactory;

/// One variable a binary reads through a flag.
#[derive(Clone, Debug)]
pub struct Setting {
    pub env: String,
    pub default: Option<String>,
    pub required: bool,
    /// A credential, or a value that may carry one: never given a value in the example.
    pub secret: bool,
    pub help: String,
    pub heading: Option<String>,
}

/// A binary and the variables it reads, in the order of its `--help`.
pub struct Binary {
    pub name: &'static str,
    pub settings: Vec<Setting>,
}

/// Variables read outside clap: the log filter, read by `tracing`'s `EnvFilter` in every binary.
const RUST_LOG: (&str, &str, &str) = ("RUST_LOG", "Log filter, e.g. info,inserter=debug (tracing's EnvFilter)", "info");

/// Values the example shows for variables without a default: `true` writes them out (a value every user
/// needs), `false` shows them commented out (a choice, or one that applies only with other settings, which
/// its help names). Any other variable without a default is shown commented out and empty.
const EXAMPLES: &[(&str, &str, bool)] = &[
    ("DATABASE_URL", "postgres://ingest_owner:ingest_owner@localhost:5432/ingest", true),
    ("SCRAPER_SOURCES", "x", false),
    ("X_STREAM_PARTITIONS", "1-4", false),
    ("X_STREAM_PARTITION", "3", false),
    ("X_STREAM_RULES", r#"[{"value":"(kafka OR postgres) lang:en -is:retweet","tag":"data"}]"#, false),
    ("SSE_URL", "https://mastodon.social/api/v1/streaming/public,https://fosstodon.org/api/v1/streaming/public", false),
    ("SSE_TOPIC", "mastodon.statuses", false),
    ("INSTAGRAM_USERNAMES", "nasa,natgeo", false),
    ("INSTAGRAM_HASHTAGS", "coffee", false),
    ("INSTAGRAM_ROUNDS", "1", false),
    ("INSTAGRAM_USER_ID", "17841400000000000", false),
    ("REPLAY_FILE", "/data/sample.ndjson", false),
    ("REPLAY_COUNT", "100000", false),
    ("EXIT_WHEN_IDLE", "30s", false),
    ("TWITTER_RETENTION", "30d", false),
    ("MASTODON_RETENTION", "30d", false),
    ("INSTAGRAM_SNAPSHOT_RETENTION", "365d", false),
];

/// The binaries whose settings the files list.
pub fn binaries() -> Vec<Binary> {
    vec![
        Binary { name: "scraper", settings: settings(&scraper::settings::Settings::command()) },
        Binary { name: "inserter", settings: settings(&inserter::settings::Settings::command()) },
        Binary { name: "migration retention", settings: settings(&migration::retention::Args::command()) },
    ]
}

/// The variables `command`'s flags (and its subcommands') read.
pub fn settings(command: &clap::Command) -> Vec<Setting> {
    let mut found = Vec::new();
    collect(command, &mut found);
    found
}

fn collect(command: &clap::Command, out: &mut Vec<Setting>) {
    for arg in command.get_arguments() {
        let Some(env) = arg.get_env() else { continue };
        let env = env.to_string_lossy().into_owned();
        if out.iter().any(|s: &Setting| s.env == env) {
            continue;
        }
        let default: Vec<String> = arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        out.push(Setting {
            env,
            default: (!default.is_empty()).then(|| default.join(",")),
            required: arg.is_required_set(),
            secret: arg.is_hide_env_values_set(),
            help,
            heading: arg.get_help_heading().map(str::to_owned),
        });
    }
    for sub in command.get_subcommands() {
        collect(sub, out);
    }
}

/// `.env.example`: the variables two binaries read, then each binary's own by its `--help` heading, then
/// compose's own (`docker/compose.env`, which no binary reads).
pub fn env_example(binaries: &[Binary], compose_env: &str) -> anyhow::Result<String> {
    let mut readers: BTreeMap<&str, Vec<&Setting>> = BTreeMap::new();
    for binary in binaries {
        for setting in &binary.settings {
            readers.entry(&setting.env).or_default().push(setting);
        }
    }
    for (env, settings) in &readers {
        if settings.windows(2).any(|pair| pair[0].default != pair[1].default) {
            let defaults: Vec<_> = settings.iter().map(|s| format!("{:?}", s.default)).collect();
            bail!("{env} has different defaults in the binaries that read it: {}", defaults.join(", "));
        }
    }
    let shared = |env: &str| readers[env].len() > 1;

    let mut out = String::from(HEADER);
    let names: Vec<&str> = binaries.iter().map(|b| b.name).collect();
    section(&mut out, &format!("Read by more than one of {}", names.join(", ")));
    let mut written = Vec::new();
    for binary in binaries {
        for setting in binary.settings.iter().filter(|s| shared(&s.env)) {
            if !written.contains(&setting.env) {
                entry(&mut out, setting);
                written.push(setting.env.clone());
            }
        }
    }
    let (name, help, value) = RUST_LOG;
    out.push_str(&format!("\n{}{name}={value}\n", comment(help)));
    for binary in binaries {
        let mut heading = None;
        for setting in binary.settings.iter().filter(|s| !shared(&s.env)) {
            if heading != Some(&setting.heading) {
                heading = Some(&setting.heading);
                let title = match &setting.heading {
                    Some(h) if h != "Options" => format!("{}: {h}", binary.name),
                    _ => binary.name.to_owned(),
                };
                section(&mut out, &title);
            }
            entry(&mut out, setting);
        }
    }
    section(&mut out, "docker compose");
    out.push_str(compose_env);
    Ok(out)
}

const HEADER: &str = "\
# Copy to .env and adjust. Every binary reads these from the environment or from .env (dotenvy); a flag on
# the command line wins over both. Never commit a real .env.
#
# Generated from the binaries' flags by `cargo xtask settings`: edit the flags' help (or docker/compose.env
# for compose's own variables), not this file. A variable shown commented out is unset by default; its help
# says what it needs.
";

fn section(out: &mut String, title: &str) {
    out.push_str(&format!("\n# ==== {title} ====\n"));
}

fn entry(out: &mut String, setting: &Setting) {
    out.push('\n');
    out.push_str(&comment(&setting.help));
    let example = EXAMPLES.iter().find(|(env, ..)| *env == setting.env);
    let line = match (&setting.default, example) {
        (Some(default), _) => format!("{}={default}", setting.env),
        _ if setting.secret && !setting.required => format!("#{}=", setting.env),
        (None, Some((_, value, true))) => format!("{}={value}", setting.env),
        (None, Some((_, value, false))) => format!("#{}={value}", setting.env),
        (None, None) => format!("#{}=", setting.env),
    };
    out.push_str(&line);
    out.push('\n');
}

/// `text` as `# ` comment lines of at most 116 characters.
fn comment(text: &str) -> String {
    let mut out = String::new();
    for paragraph in text.lines() {
        let mut line = String::from("#");
        for word in paragraph.split_whitespace() {
            if line.len() > 1 && line.len() + 1 + word.len() > 116 {
                out.push_str(&line);
                out.push('\n');
                line = String::from("#");
            }
            line.push(' ');
            line.push_str(word);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `compose` with the `environment:` list of `service` made of the variables `names`: entries that set a value
/// (`NAME: value`, with the comments just above them) stay as they are, first; every other name follows bare
/// (`NAME:`), so that it takes its value from the shell or `.env`, or stays unset.
pub fn compose_environment(compose: &str, service: &str, names: &[String]) -> anyhow::Result<String> {
    let lines: Vec<&str> = compose.lines().collect();
    let start = lines.iter().position(|l| *l == format!("  {service}:")).with_context(|| format!("no {service}"))?;
    let end_of_service = lines[start + 1..]
        .iter()
        .position(|l| !l.is_empty() && !l.starts_with("   "))
        .map_or(lines.len(), |i| start + 1 + i);
    let env_line = lines[start..end_of_service]
        .iter()
        .position(|l| *l == "    environment:")
        .with_context(|| format!("service {service} has no environment: block"))?
        + start;
    let entries_end =
        lines[env_line + 1..].iter().position(|l| !l.starts_with("      ")).map_or(lines.len(), |i| env_line + 1 + i);
    let mut kept = Vec::new();
    let mut pending_comments = Vec::new();
    let mut valued = Vec::new();
    for line in &lines[env_line + 1..entries_end] {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            pending_comments.push(*line);
            continue;
        }
        let (name, value) = trimmed.split_once(':').with_context(|| format!("not NAME: value: {line}"))?;
        if !value.trim().is_empty() {
            kept.append(&mut pending_comments);
            kept.push(*line);
            valued.push(name.to_owned());
        }
        pending_comments.clear();
    }
    let mut block: Vec<String> = kept.iter().map(|l| (*l).to_owned()).collect();
    block.extend(names.iter().filter(|n| !valued.contains(n)).map(|n| format!("      {n}:")));
    let mut out: Vec<String> = lines[..=env_line].iter().map(|l| (*l).to_owned()).collect();
    out.extend(block);
    out.extend(lines[entries_end..].iter().map(|l| (*l).to_owned()));
    let mut text = out.join("\n");
    text.push('\n');
    Ok(text)
}

/// Every generated file: (path from the repository's root, its content).
pub fn generate(root: &Path) -> anyhow::Result<Vec<(&'static str, String)>> {
    let binaries = binaries();
    let read = |path: &str| std::fs::read_to_string(root.join(path)).with_context(|| path.to_owned());
    let env = env_example(&binaries, &read("docker/compose.env")?)?;
    let mut compose = read("docker-compose.yml")?;
    for binary in binaries.iter().filter(|b| b.name == "scraper" || b.name == "inserter") {
        let mut names: Vec<String> = binary.settings.iter().map(|s| s.env.clone()).collect();
        names.insert(0, RUST_LOG.0.to_owned());
        compose = compose_environment(&compose, binary.name, &names)?;
    }
    Ok(vec![(".env.example", env), ("docker-compose.yml", compose)])
}

/// The generated files that differ from what is in `root`.
pub fn out_of_date(root: &Path) -> anyhow::Result<Vec<&'static str>> {
    Ok(generate(root)?
        .into_iter()
        .filter(|(path, content)| std::fs::read_to_string(root.join(path)).ok().as_deref() != Some(content))
        .map(|(path, _)| path)
        .collect())
}

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
