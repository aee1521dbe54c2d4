//! The `environment:` lists of compose's `scraper` and `inserter` services.

use anyhow::{Context, bail};

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

/// The variables `compose` interpolates (`${NAME...}`) that are not in `declared`: each must be in
/// `docker/compose.env` (or be a binary's setting), so that `.env.example` and the docs list it.
pub fn undeclared(compose: &str, declared: &[&str]) -> Vec<String> {
    let mut found: Vec<String> = compose
        .split("${")
        .skip(1)
        .map(|rest| rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>())
        .filter(|name| !declared.contains(&name.as_str()))
        .collect();
    found.sort();
    found.dedup();
    found
}

/// One of compose's own variables in `docker/compose.env`: `NAME=default`, or `#NAME=` (unset by default), with
/// the comment just above it.
pub struct Variable<'a> {
    pub name: &'a str,
    pub default: Option<&'a str>,
    pub comment: String,
}

/// The variables of `docker/compose.env`, in order; each must have a comment that says what it is.
pub fn variables(compose_env: &str) -> anyhow::Result<Vec<Variable<'_>>> {
    let is_name =
        |name: &str| !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    let mut found = Vec::new();
    let mut comment: Vec<&str> = Vec::new();
    for line in compose_env.lines() {
        match line.trim_start_matches('#').split_once('=').filter(|(name, _)| is_name(name)) {
            Some((name, value)) => {
                if comment.is_empty() {
                    bail!("docker/compose.env: {name} has no comment above it to say what it is");
                }
                let default = (!line.starts_with('#')).then_some(value);
                found.push(Variable { name, default, comment: comment.join(" ") });
                comment.clear();
            }
            None if line.is_empty() => comment.clear(),
            None => comment.push(line.trim_start_matches('#').trim()),
        }
    }
    Ok(found)
}
