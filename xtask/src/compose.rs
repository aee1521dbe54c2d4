//! The `environment:` lists of compose's `scraper` and `inserter` services.

use anyhow::Context;

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
