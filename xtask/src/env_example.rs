//! `.env.example`, written from the binaries' settings and compose's own variables.

use std::collections::BTreeMap;

use anyhow::bail;

use crate::settings::{Binary, Setting};

/// Values the example shows for variables without a default: `true` writes them out (a value every user
/// needs), `false` shows them commented out (a choice, or one that applies only with other settings, which
/// its help names). Any other variable without a default is shown commented out and empty.
const EXAMPLES: &[(&str, &str, bool)] = &[
    ("DATABASE_URL", "postgres://ingest_owner:ingest_owner@localhost:5432/ingest", true),
    ("SCRAPER_SOURCES", "bluesky", false),
    ("BLUESKY_DIDS", "did:plc:z72i7hdynmk6r22z27h6tvur", false),
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
    ("BLUESKY_RETENTION", "30d", false),
];

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
