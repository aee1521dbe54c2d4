//! The settings tables of `docs/operations.md`. The doc's prose stays hand-written; each table sits between a
//! marker that says what it lists and [`END`], and is written from the binaries' flags (or from compose's own
//! variables). Every variable a binary reads must be in a table.

use std::collections::BTreeSet;

use anyhow::{Context, bail};

use crate::compose;
use crate::settings::{Binary, Setting};

/// `<!-- settings: scraper, inserter | Topics -->`: the variables of these binaries' flags under this `--help`
/// heading (`Options` for flags without one). `<!-- settings: docker/compose.env -->`: compose's own.
pub const BEGIN: &str = "<!-- settings: ";
pub const END: &str = "<!-- end of settings -->";
const COMPOSE_ENV: &str = "docker/compose.env";

/// `doc` with every marked table written anew.
pub fn operations(doc: &str, binaries: &[Binary], compose_env: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut covered = BTreeSet::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        out.push_str(line);
        out.push('\n');
        let Some(selector) = line.strip_prefix(BEGIN).and_then(|rest| rest.strip_suffix(" -->")) else { continue };
        loop {
            match lines.next() {
                Some(END) => break,
                Some(inner) if inner.starts_with(BEGIN) => bail!("{line} is followed by {inner} before {END}"),
                Some(_) => {}
                None => bail!("{line} has no {END} after it"),
            }
        }
        let table = if selector == COMPOSE_ENV {
            compose_table(compose_env)?
        } else {
            settings_table(selector, binaries, &mut covered).with_context(|| line.to_owned())?
        };
        out.push_str(&table);
        out.push_str(END);
        out.push('\n');
    }
    let missing: Vec<String> = binaries
        .iter()
        .flat_map(|binary| binary.settings.iter().map(move |setting| (binary.name, setting)))
        .filter(|(name, setting)| !covered.contains(&(*name, setting.env.clone())))
        .map(|(name, setting)| format!("{} ({name}, under {})", setting.env, heading(setting)))
        .collect();
    if !missing.is_empty() {
        bail!("no table lists {}: add a `{BEGIN}BINARY | HEADING -->` ... `{END}` block", missing.join(", "));
    }
    Ok(out)
}

fn heading(setting: &Setting) -> &str {
    setting.heading.as_deref().unwrap_or("Options")
}

/// One row: a variable and the binaries (of those the marker names) that read it.
struct Row<'a> {
    setting: &'a Setting,
    readers: Vec<&'static str>,
}

fn settings_table(
    selector: &str,
    binaries: &[Binary],
    covered: &mut BTreeSet<(&'static str, String)>,
) -> anyhow::Result<String> {
    let (names, wanted) = selector.split_once(" | ").context("expected `BINARY, BINARY | HEADING`")?;
    let names: Vec<&str> = names.split(", ").collect();
    let mut rows: Vec<Row> = Vec::new();
    for name in &names {
        let binary = binaries.iter().find(|b| b.name == *name).with_context(|| format!("no binary {name}"))?;
        for setting in binary.settings.iter().filter(|s| heading(s) == wanted) {
            covered.insert((binary.name, setting.env.clone()));
            match rows.iter_mut().find(|row| row.setting.env == setting.env) {
                Some(row) => {
                    if (&row.setting.default, &row.setting.long_help) != (&setting.default, &setting.long_help) {
                        bail!("{} has another default or help in {} than in {}", setting.env, name, row.readers[0]);
                    }
                    row.readers.push(binary.name);
                }
                None => rows.push(Row { setting, readers: vec![binary.name] }),
            }
        }
    }
    if rows.is_empty() {
        bail!("no variable is under the heading {wanted:?}");
    }
    let shared = names.len() > 1;
    let mut out = String::from(if shared {
        "| variable | flag | default | read by | meaning |\n|---|---|---|---|---|\n"
    } else {
        "| variable | flag | default | meaning |\n|---|---|---|---|\n"
    });
    for row in rows {
        let setting = row.setting;
        let (meaning, stated_default) = split_default(&setting.long_help);
        let default = match (&setting.default, stated_default) {
            (Some(default), _) => format!("`{default}`"),
            (None, Some(stated)) => stated,
            (None, None) if setting.required => "— (required)".into(),
            (None, None) => "—".into(),
        };
        let read_by = match row.readers.len() {
            n if n == names.len() && n == 2 => "both | ".to_owned(),
            _ if shared => format!("{} | ", row.readers.join(", ")),
            _ => String::new(),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {read_by}{} |\n",
            setting.env,
            setting.flags.as_deref().unwrap_or("—"),
            cell(&default),
            cell(&meaning)
        ));
    }
    Ok(out)
}

/// A help text without the `[default: ...]` it states (for a default that depends on other settings), and
/// that default.
fn split_default(help: &str) -> (String, Option<String>) {
    let Some(start) = help.find(" [default: ") else { return (help.to_owned(), None) };
    let rest = &help[start + " [default: ".len()..];
    let Some(end) = rest.find(']') else { return (help.to_owned(), None) };
    (format!("{}{}", &help[..start], &rest[end + 1..]), Some(rest[..end].to_owned()))
}

/// `text` as one Markdown table cell: its paragraphs joined as sentences on one line, and `|` escaped.
fn cell(text: &str) -> String {
    let sentences: Vec<String> = text
        .split("\n\n")
        .map(|paragraph| paragraph.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|paragraph| !paragraph.is_empty())
        .collect();
    let mut joined = String::new();
    for sentence in sentences {
        if !joined.is_empty() {
            // clap's first paragraph, the one-line help, has no full stop of its own.
            if !joined.ends_with(['.', '!', '?', ':']) {
                joined.push('.');
            }
            joined.push(' ');
        }
        joined.push_str(&sentence);
    }
    joined.replace('|', "\\|")
}

/// Compose's own variables (`docker/compose.env`), each with its default and the comment above it.
fn compose_table(compose_env: &str) -> anyhow::Result<String> {
    let mut out = String::from("| variable | default | meaning |\n|---|---|---|\n");
    for variable in compose::variables(compose_env)? {
        let default = variable.default.map_or_else(|| "— (unset)".to_owned(), |value| format!("`{value}`"));
        out.push_str(&format!("| `{}` | {default} | {} |\n", variable.name, cell(&variable.comment)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(env: &str, heading: Option<&str>, help: &str) -> Setting {
        Setting {
            env: env.into(),
            flags: Some(format!("`--{}`", env.to_lowercase())),
            default: None,
            required: false,
            secret: false,
            help: help.into(),
            long_help: help.into(),
            heading: heading.map(Into::into),
        }
    }

    #[test]
    fn a_marked_table_is_written_from_the_flags_and_the_prose_around_it_is_kept() {
        let binaries = [
            Binary {
                name: "a",
                settings: vec![setting("ONE", None, "First | second"), setting("TWO", Some("X"), "x")],
            },
            Binary { name: "b", settings: vec![setting("TWO", Some("X"), "x")] },
        ];
        let doc = format!("intro\n{BEGIN}a | Options -->\nstale\n{END}\nmiddle\n{BEGIN}a, b | X -->\n{END}\nend\n");
        let written = operations(&doc, &binaries, "").unwrap();
        assert_eq!(
            written,
            format!(
                "intro\n{BEGIN}a | Options -->\n| variable | flag | default | meaning |\n|---|---|---|---|\n\
                 | `ONE` | `--one` | — | First \\| second |\n{END}\nmiddle\n{BEGIN}a, b | X -->\n\
                 | variable | flag | default | read by | meaning |\n|---|---|---|---|---|\n\
                 | `TWO` | `--two` | — | both | x |\n{END}\nend\n"
            )
        );
    }

    #[test]
    fn a_variable_in_no_table_is_refused() {
        let binaries =
            [Binary { name: "a", settings: vec![setting("ONE", None, "1"), setting("TWO", Some("X"), "2")] }];
        let doc = format!("{BEGIN}a | Options -->\n{END}\n");
        let error = operations(&doc, &binaries, "").unwrap_err().to_string();
        assert!(error.contains("no table lists TWO (a, under X)"), "{error}");
    }

    #[test]
    fn a_default_that_depends_on_other_settings_moves_to_the_default_column() {
        let (meaning, default) = split_default("Topic for kept events [default: the statuses topic]. More");
        assert_eq!((meaning.as_str(), default.as_deref()), ("Topic for kept events. More", Some("the statuses topic")));
    }

    #[test]
    fn compose_variables_take_the_comment_above_them() {
        let env = "# header\n\n# Its password.\nA_PASSWORD=a\n# Unset: none.\n#B_PASSWORD=\n";
        assert_eq!(
            compose_table(env).unwrap(),
            "| variable | default | meaning |\n|---|---|---|\n| `A_PASSWORD` | `a` | Its password. |\n\
             | `B_PASSWORD` | — (unset) | Unset: none. |\n"
        );
    }
}
