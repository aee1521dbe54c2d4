//! `.env.example` against the binaries: every setting it writes out is one a binary reads, and, where the
//! binary has a default, the example shows that default. A user who copies the file gets the binaries as they
//! are, not as they were when the file was written.

use std::collections::BTreeMap;

use clap::CommandFactory;

/// The variables `command`'s flags read.
pub(crate) fn variables(command: clap::Command) -> std::collections::BTreeSet<String> {
    let mut found = BTreeMap::new();
    defaults(command, &mut found);
    found.into_keys().collect()
}

/// A flag's default as the example must show it: its default, or, for a required flag, any value.
#[derive(Debug, PartialEq)]
enum Default {
    Value(String),
    Required,
    /// Unset unless set: a value in the example is a choice the file makes for every user who copies it.
    None,
}

/// (variable, default) of every flag of `command` that reads a variable.
fn defaults(command: clap::Command, out: &mut BTreeMap<String, Default>) {
    for arg in command.get_arguments() {
        if let Some(env) = arg.get_env() {
            let default: Vec<String> =
                arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
            let default = match (default.is_empty(), arg.is_required_set()) {
                (false, _) => Default::Value(default.join(",")),
                (true, true) => Default::Required,
                (true, false) => Default::None,
            };
            out.insert(env.to_string_lossy().into_owned(), default);
        }
    }
    for sub in command.get_subcommands() {
        defaults(sub.clone(), out);
    }
}

/// What the example writes out (not what it shows in comments).
fn example() -> Vec<(String, String)> {
    let path = format!("{}/../.env.example", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, value) = line.split_once('=').unwrap_or_else(|| panic!("not NAME=value: {line}"));
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect()
}

/// Variables the binaries do not read as flags: compose's own (passwords, host ports) and the log filter.
fn is_compose_or_logging(name: &str) -> bool {
    name.ends_with("_PASSWORD") || name.ends_with("_HOST_PORT") || name == "RUST_LOG"
}

#[test]
fn every_setting_of_the_env_example_is_read_with_the_default_it_shows() {
    let mut known = BTreeMap::new();
    defaults(scraper::settings::Settings::command(), &mut known);
    defaults(inserter::settings::Settings::command(), &mut known);
    let mut problems = Vec::new();
    for (name, value) in example() {
        match known.get(&name) {
            None if is_compose_or_logging(&name) => {}
            None => problems.push(format!("{name}: no binary reads it")),
            Some(Default::Value(default)) if *default != value => {
                problems.push(format!("{name}={value}, but the binaries' default is {default}"))
            }
            // X_STREAM_PARTITIONS=1 beside X_STREAM=sample stopped the scraper of everyone who copied the file.
            Some(Default::None) => problems.push(format!(
                "{name}={value} is set, but the binaries leave it unset: comment it out and name what it needs"
            )),
            Some(_) => {}
        }
    }
    assert!(problems.is_empty(), ".env.example is out of step with the binaries:\n- {}", problems.join("\n- "));
}
