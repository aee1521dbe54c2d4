//! The compose setup checked against the workspace, so that renaming a service, a table or a binary fails
//! here rather than at `docker compose up`: every `depends_on` names a service, every `${VAR}` has a default
//! or is in `.env.example`, every mounted file exists, the Debezium connector reads the migrations'
//! publication and exactly its tables, and the Dockerfile builds binaries the workspace has. It also holds
//! what operators rely on: images pinned to releases, each container getting only the variables it uses (the
//! scraper and the inserter exactly their flags' variables), Connect's env provider limited to the
//! connector's password, stop grace periods longer than a flush, and the binaries' /metrics reachable by the
//! compose Prometheus (their default address is loopback). And who reaches whom: every address a service
//! names is on a network both share, the scraper (which parses what the internet sends) shares none with
//! Postgres, Connect or Kafka UI, Connect's REST API is reachable only from its clients, and Kafka UI asks for
//! a login.
//!
//! Each check returns the problems it found; the first test runs them on the repository's files, the others
//! show on small fixtures that each check catches what it is for.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use migration::{CDC_PUBLICATION, PUBLISHED_TABLES};
use serde_norway::Value;

const COMPOSE_FILE: &str = "docker-compose.yml";
const CONNECTOR_FILE: &str = "docker/debezium/ingest-postgres.json";
const PROMETHEUS_CONFIG: &str = "docker/prometheus/prometheus.yml";
const DATASOURCES: &str = "docker/grafana/provisioning/datasources/prometheus.yml";

fn repository_root() -> PathBuf {
    testkit::stack::repository_root()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The compose file with its `<<: *anchor` merge keys applied, as compose reads it.
fn parse_compose(text: &str) -> Value {
    let mut compose: Value = serde_norway::from_str(text).unwrap_or_else(|e| panic!("{COMPOSE_FILE} is not YAML: {e}"));
    compose.apply_merge().unwrap_or_else(|e| panic!("{COMPOSE_FILE}: a merge key: {e}"));
    compose
}

fn services(compose: &Value) -> Vec<(String, &Value)> {
    let services = compose.get("services").and_then(Value::as_mapping).expect("a `services:` mapping");
    services.iter().map(|(name, service)| (name.as_str().expect("a service name").to_owned(), service)).collect()
}

/// A `depends_on` list (`[a, b]`) or mapping (`a: {condition: ...}`) as names.
fn depends_on(service: &Value) -> Vec<String> {
    match service.get("depends_on") {
        Some(Value::Sequence(names)) => names.iter().filter_map(|n| n.as_str().map(str::to_owned)).collect(),
        Some(Value::Mapping(map)) => map.keys().filter_map(|n| n.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

fn check_depends_on(compose: &Value) -> Vec<String> {
    let services = services(compose);
    let names: BTreeSet<&str> = services.iter().map(|(name, _)| name.as_str()).collect();
    let mut problems = Vec::new();
    for (name, service) in &services {
        for target in depends_on(service) {
            if !names.contains(target.as_str()) {
                problems.push(format!("service `{name}` depends on `{target}`, which is not a service"));
            }
        }
    }
    problems
}

/// Every string in the document, keys included: compose interpolates both, after parsing (so comments are
/// not looked at).
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Sequence(items) => items.iter().for_each(|item| strings(item, out)),
        Value::Mapping(map) => {
            for (key, value) in map {
                strings(key, out);
                strings(value, out);
            }
        }
        Value::Tagged(tagged) => strings(&tagged.value, out),
        _ => {}
    }
}

/// The variables `text` interpolates that have no default: `$VAR`, `${VAR}`, `${VAR:?err}`, `${VAR?err}`.
/// `${VAR:-x}`, `${VAR-x}`, `${VAR:+x}` and `${VAR+x}` have one; `$$` is a literal dollar.
fn variables_without_default(text: &str, out: &mut BTreeSet<String>) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'$') => i += 2,
            Some(b'{') => {
                // The matching brace, counting nested `${...}` in the default.
                let (mut depth, mut end) = (1, i + 2);
                while end < bytes.len() && depth > 0 {
                    match bytes[end] {
                        b'{' => depth += 1,
                        b'}' => depth -= 1,
                        _ => {}
                    }
                    end += 1;
                }
                let inner = &text[i + 2..end.saturating_sub(1).max(i + 2)];
                let name_len = inner.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
                let (name, rest) = inner.split_at(name_len);
                let rest = rest.strip_prefix(':').unwrap_or(rest);
                if rest.starts_with('-') || rest.starts_with('+') {
                    variables_without_default(&rest[1..], out);
                } else {
                    out.insert(name.to_owned());
                }
                i = end;
            }
            Some(b) if b.is_ascii_alphabetic() || *b == b'_' => {
                let len = bytes[i + 1..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
                out.insert(text[i + 1..i + 1 + len].to_owned());
                i += 1 + len;
            }
            _ => i += 1,
        }
    }
}

/// The names `.env.example` sets or shows commented out (`NAME=...`, `#NAME=...`).
fn example_names(env_example: &str) -> BTreeSet<String> {
    env_example
        .lines()
        .filter_map(|line| {
            let line = line.trim_start().trim_start_matches('#').trim_start();
            let (name, _) = line.split_once('=')?;
            let valid =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            valid.then(|| name.to_owned())
        })
        .collect()
}

fn check_variables(compose: &Value, env_example: &str) -> Vec<String> {
    let mut texts = Vec::new();
    strings(compose, &mut texts);
    let mut needed = BTreeSet::new();
    for text in &texts {
        variables_without_default(text, &mut needed);
    }
    let documented = example_names(env_example);
    needed
        .difference(&documented)
        .map(|name| format!("${{{name}}} has no default and is not in .env.example"))
        .collect()
}

/// The host paths a service bind-mounts (short `./a:/b` and long `source:`), as written.
fn bind_sources(service: &Value) -> Vec<String> {
    let is_host_path = |s: &str| s.starts_with('.') || s.starts_with('/') || s.starts_with('~');
    let volumes = service.get("volumes").and_then(Value::as_sequence).into_iter().flatten();
    volumes
        .filter_map(|volume| match volume {
            Value::String(short) => short.split(':').next().map(str::to_owned),
            long => long.get("source").and_then(Value::as_str).map(str::to_owned),
        })
        .filter(|source| is_host_path(source))
        .collect()
}

/// Host paths the compose file needs: bind mounts (short `./a:/b` and long `source:`), `env_file`s that are
/// required, build contexts and Dockerfiles, `configs`/`secrets` files.
fn host_paths(compose: &Value) -> Vec<(String, String)> {
    let mut paths = Vec::new();
    for (name, service) in services(compose) {
        for source in bind_sources(service) {
            paths.push((format!("service `{name}` mounts"), source));
        }
        let env_files = match service.get("env_file") {
            Some(Value::String(file)) => vec![file.clone()],
            Some(Value::Sequence(files)) => files
                .iter()
                .filter_map(|f| match f {
                    Value::String(file) => Some(file.clone()),
                    long if long.get("required").and_then(Value::as_bool) == Some(false) => None,
                    long => long.get("path").and_then(Value::as_str).map(str::to_owned),
                })
                .collect(),
            _ => Vec::new(),
        };
        paths.extend(env_files.into_iter().map(|file| (format!("service `{name}` reads env_file"), file)));
        match service.get("build") {
            Some(Value::String(context)) => {
                paths.push((format!("service `{name}` builds"), format!("{context}/Dockerfile")));
            }
            Some(build) => {
                let context = build.get("context").and_then(Value::as_str).unwrap_or(".");
                let dockerfile = build.get("dockerfile").and_then(Value::as_str).unwrap_or("Dockerfile");
                paths.push((format!("service `{name}` builds"), format!("{context}/{dockerfile}")));
            }
            None => {}
        }
    }
    for section in ["configs", "secrets"] {
        for (key, item) in compose.get(section).and_then(Value::as_mapping).into_iter().flatten() {
            if let Some(file) = item.get("file").and_then(Value::as_str) {
                paths.push((format!("{section} `{}`", key.as_str().unwrap_or("?")), file.to_owned()));
            }
        }
    }
    paths
}

fn check_host_paths(compose: &Value, dir: &Path) -> Vec<String> {
    host_paths(compose)
        .into_iter()
        .filter(|(_, path)| !path.contains('$') && !dir.join(path).exists())
        .map(|(what, path)| format!("{what} `{path}`, which does not exist"))
        .collect()
}

/// The connector's settings: the `config` object of a `POST /connectors` body, or the flat object of a
/// `PUT /connectors/NAME/config` body.
fn connector_config(connector: &serde_json::Value) -> &serde_json::Value {
    connector.get("config").unwrap_or(connector)
}

fn check_connector(connector: &serde_json::Value) -> Vec<String> {
    let config = connector_config(connector);
    let setting = |key: &str| config.get(key).and_then(serde_json::Value::as_str);
    let mut problems = Vec::new();
    if setting("publication.name") != Some(CDC_PUBLICATION) {
        problems.push(format!(
            "publication.name is {:?}, but the migrations create `{CDC_PUBLICATION}`",
            setting("publication.name")
        ));
    }
    if setting("plugin.name") != Some("pgoutput") {
        problems
            .push(format!("plugin.name is {:?}, but the publication is read with pgoutput", setting("plugin.name")));
    }
    let listed: Vec<String> = setting("table.include.list")
        .unwrap_or_default()
        .split(',')
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    let listed_set: BTreeSet<String> = listed.iter().cloned().collect();
    let published: BTreeSet<String> = PUBLISHED_TABLES.iter().map(|t| format!("public.{t}")).collect();
    if listed_set != published || listed.len() != listed_set.len() {
        problems.push(format!(
            "table.include.list differs from migration::PUBLISHED_TABLES: missing {:?}, not published {:?}",
            published.difference(&listed_set).collect::<Vec<_>>(),
            listed_set.difference(&published).collect::<Vec<_>>(),
        ));
    }
    problems
}

/// The binaries a Dockerfile builds (`--bin X`, `--bin=X`) or copies out of `target/<profile>/`.
fn dockerfile_binaries(dockerfile: &str) -> BTreeSet<String> {
    let mut binaries = BTreeSet::new();
    // Joined continuation lines, so that a `--bin` on the next line of a RUN still counts.
    let text = dockerfile.replace("\\\n", " ");
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, word) in words.iter().enumerate() {
            if *word == "--bin" {
                if let Some(name) = words.get(i + 1) {
                    binaries.insert(name.to_string());
                }
            } else if let Some(name) = word.strip_prefix("--bin=") {
                binaries.insert(name.to_owned());
            }
        }
        if words.first().is_some_and(|w| w.eq_ignore_ascii_case("COPY")) {
            for word in &words[1..] {
                let word = word.trim_matches(|c| matches!(c, '[' | ']' | '"' | ','));
                let mut parts = word.rsplit('/');
                let (Some(name), Some(profile), Some(target)) = (parts.next(), parts.next(), parts.next()) else {
                    continue;
                };
                if target == "target" && !name.is_empty() && !name.contains(['*', '$', '.']) && profile != "deps" {
                    binaries.insert(name.to_owned());
                }
            }
        }
    }
    binaries
}

/// Every binary target of the workspace's packages, from `cargo metadata`.
fn workspace_binaries(root: &Path) -> BTreeSet<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--no-deps", "--format-version", "1", "--offline"])
        .current_dir(root)
        .output()
        .expect("run cargo metadata");
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut binaries = BTreeSet::new();
    for package in metadata["packages"].as_array().unwrap() {
        for target in package["targets"].as_array().unwrap() {
            if target["kind"].as_array().unwrap().iter().any(|kind| kind == "bin") {
                binaries.insert(target["name"].as_str().unwrap().to_owned());
            }
        }
    }
    binaries
}

fn check_dockerfile(dockerfile: &str, workspace: &BTreeSet<String>) -> Vec<String> {
    let built = dockerfile_binaries(dockerfile);
    if built.is_empty() {
        return vec!["the Dockerfile names no binary (`--bin X`, or `COPY ... target/release/X`)".to_owned()];
    }
    built
        .difference(workspace)
        .map(|name| format!("the Dockerfile builds or copies `{name}`, which is not a binary of the workspace"))
        .collect()
}

/// A service's `command` (or else `entrypoint`) as words.
fn command_words(service: &Value) -> Vec<String> {
    match service.get("command").or_else(|| service.get("entrypoint")) {
        Some(Value::String(line)) => line.split_whitespace().map(str::to_owned).collect(),
        Some(Value::Sequence(words)) => words.iter().filter_map(|w| w.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

/// The services built from the repository's Dockerfile run a binary the image has; Postgres (an image of
/// its own, built from docker/postgres) runs with logical WAL.
fn check_commands(compose: &Value, image_binaries: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut logical_wal = false;
    for (name, service) in services(compose) {
        let words = command_words(service);
        let context = service.get("build").map(|b| b.get("context").and_then(Value::as_str).unwrap_or("."));
        if context == Some(".")
            && let Some(program) = words.first()
            && !image_binaries.contains(program)
        {
            problems.push(format!("service `{name}` runs `{program}`, which the Dockerfile does not build"));
        }
        let image = service.get("image").and_then(Value::as_str).unwrap_or_default();
        logical_wal |= image.contains("postgres") && words.iter().any(|w| w.contains("wal_level=logical"));
    }
    if !logical_wal {
        problems.push("no postgres service runs with `-c wal_level=logical` (Debezium needs it)".to_owned());
    }
    problems
}

/// How long each binary may need to stop cleanly: the scraper its FLUSH_TIMEOUT (default 30 s) to have what
/// it read acknowledged; the inserter to commit the batch in hand. Compose kills a container after its
/// `stop_grace_period` (10 s unless set), so that must be longer.
fn check_stop_grace(compose: &Value) -> Vec<String> {
    let seconds = |text: &str| -> Option<u64> {
        let text = text.trim();
        match text.strip_suffix("ms") {
            Some(ms) => ms.parse::<u64>().ok().map(|ms| ms / 1000),
            None => match text.strip_suffix('m') {
                Some(m) => m.parse::<u64>().ok().map(|m| m * 60),
                None => text.trim_end_matches('s').parse().ok(),
            },
        }
    };
    let mut problems = Vec::new();
    for (name, service) in services(compose) {
        let needed = match command_words(service).first().map(String::as_str) {
            Some("scraper") => {
                let flush = service.get("environment").and_then(|env| env.get("FLUSH_TIMEOUT"));
                flush.and_then(Value::as_str).and_then(seconds).unwrap_or(30)
            }
            Some("inserter") => 10,
            _ => continue,
        };
        let grace = service.get("stop_grace_period").and_then(Value::as_str).and_then(seconds).unwrap_or(10);
        if grace <= needed {
            problems.push(format!(
                "service `{name}` may be killed after {grace} s while stopping, but needs more than {needed} s: set stop_grace_period"
            ));
        }
    }
    problems
}

/// The names a service's `environment` sets or passes through, list (`A=x`, `A`) or mapping form.
fn environment_names(service: &Value) -> BTreeSet<String> {
    match service.get("environment") {
        Some(Value::Mapping(map)) => map.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect(),
        Some(Value::Sequence(items)) => {
            items.iter().filter_map(|item| item.as_str().map(|s| s.split('=').next().unwrap_or(s).to_owned())).collect()
        }
        _ => BTreeSet::new(),
    }
}

/// Whether `service` hands `variable` to its container or interpolates it anywhere (`$V`, `${V...}`).
fn mentions(service: &Value, variable: &str) -> bool {
    let mut texts = Vec::new();
    strings(service, &mut texts);
    environment_names(service).contains(variable)
        || texts.iter().any(|text| {
            text.match_indices('$').any(|(at, _)| {
                let rest = text[at + 1..].strip_prefix('{').unwrap_or(&text[at + 1..]);
                rest.strip_prefix(variable)
                    .is_some_and(|after| !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
            })
        })
}

/// Which services may see each secret: its owner, and Postgres, which sets the role passwords when its
/// volume is first initialised.
const SECRETS: &[(&str, &[&str])] = &[
    ("POSTGRES_PASSWORD", &["postgres"]),
    ("INGEST_OWNER_PASSWORD", &["postgres", "migrate", "retention"]),
    ("REDRIVER_DB_PASSWORD", &["postgres"]),
    ("INSERTER_DB_PASSWORD", &["postgres", "inserter"]),
    ("DEBEZIUM_DB_PASSWORD", &["postgres", "connect"]),
    ("ANALYST_DB_PASSWORD", &["postgres"]),
    ("GRAFANA_ADMIN_PASSWORD", &["grafana"]),
    ("KAFKA_UI_PASSWORD", &["kafka-ui"]),
    ("X_BEARER_TOKEN", &["scraper"]),
    ("SSE_BEARER_TOKEN", &["scraper"]),
    ("INSTAGRAM_ACCESS_TOKEN", &["scraper"]),
];

/// The variables `command`'s flags (and its subcommands') read.
fn variables(command: clap::Command) -> BTreeSet<String> {
    let mut found: BTreeSet<String> =
        command.get_arguments().filter_map(|arg| arg.get_env()).map(|env| env.to_string_lossy().into_owned()).collect();
    for sub in command.get_subcommands() {
        found.extend(variables(sub.clone()));
    }
    found
}

/// Each container gets the variables it uses and no others: no `env_file` (which hands over a whole file),
/// a secret only to the services in [`SECRETS`], and the scraper and the inserter exactly the variables
/// their flags read (`binaries`: the program and its variables), so that every setting works under compose
/// and nothing else gets in.
fn check_service_variables(compose: &Value, binaries: &[(&str, BTreeSet<String>)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, service) in services(compose) {
        if service.get("env_file").is_some() {
            problems.push(format!("service `{name}` reads an env_file: it would get every variable in it"));
        }
        for (secret, owners) in SECRETS {
            if mentions(service, secret) && !owners.contains(&name.as_str()) {
                problems.push(format!("service `{name}` gets {secret}, which only {} may see", owners.join(", ")));
            }
        }
        let program = command_words(service).into_iter().next().unwrap_or_default();
        let Some((_, reads)) = binaries.iter().find(|(binary, _)| *binary == program) else { continue };
        let given = environment_names(service);
        for variable in given.iter().filter(|v| !reads.contains(*v) && v.as_str() != "RUST_LOG") {
            problems.push(format!("service `{name}` gets {variable}, which `{program}` does not read"));
        }
        for variable in reads.difference(&given) {
            problems.push(format!("service `{name}` does not pass {variable} on to `{program}`, which reads it"));
        }
    }
    problems
}

/// Every image is pinned to a release (`15.18-bookworm`, `4.3.1`, `3.6.2.Final`, `v1.5.0`), not to a moving
/// tag (`latest`, `15`, none): an upgrade is then a change someone made and reviewed.
fn check_image_tags(compose: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, service) in services(compose) {
        let Some(image) = service.get("image").and_then(Value::as_str) else { continue };
        if service.get("build").is_some() {
            continue;
        }
        let tag = image.rsplit_once(':').map(|(_, tag)| tag).filter(|tag| !tag.contains('/')).unwrap_or("");
        let version = tag.trim_start_matches('v').split('-').next().unwrap_or_default();
        let parts: Vec<&str> = version.split('.').collect();
        let numeric = parts.iter().take_while(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())).count();
        if numeric < 2 {
            problems.push(format!("service `{name}` runs `{image}`: pin it to a release tag"));
        }
    }
    problems
}

/// Connect's env config provider may read only the variables the connector names (`${env:NAME}`): by default
/// it reads every variable of the worker, for anyone who may submit a connector configuration. The pattern is
/// a regular expression; names joined by `|` are what this check reads.
fn check_env_provider(compose: &Value, connector: &serde_json::Value) -> Vec<String> {
    let config = connector_config(connector);
    let named: BTreeSet<String> = config
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, v)| v.as_str())
        .filter_map(|v| v.strip_prefix("${env:")?.strip_suffix('}').map(str::to_owned))
        .collect();
    let mut problems = Vec::new();
    for (name, service) in services(compose) {
        let env = |key: &str| service.get("environment").and_then(|e| e.get(key)).and_then(Value::as_str);
        if env("CONNECT_CONFIG_PROVIDERS_ENV_CLASS").is_none() {
            continue;
        }
        let Some(pattern) = env("CONNECT_CONFIG_PROVIDERS_ENV_PARAM_ALLOWLIST_PATTERN") else {
            problems
                .push(format!("service `{name}`: the env config provider may read every variable: set its allowlist"));
            continue;
        };
        let allowed: BTreeSet<String> = pattern.split('|').map(str::to_owned).collect();
        if allowed != named {
            problems.push(format!(
                "service `{name}`: the env config provider may read {allowed:?}, but the connector names {named:?}"
            ));
        }
    }
    problems
}

/// The host in an address: `scheme://user:password@HOST:port/path`, `id@HOST:port`, `HOST:port`; `None` for
/// a value that is not an address.
fn address_host(value: &str) -> Option<&str> {
    let (rest, url) = match value.split_once("://") {
        Some((_, rest)) => (rest, true),
        None => (value, false),
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let (host, port) = rest.split_once(':').unwrap_or((rest.split('/').next()?, ""));
    let port = port.split('/').next().unwrap_or_default();
    let looks_like_port = !port.is_empty() && (port.bytes().all(|b| b.is_ascii_digit()) || port.starts_with("${"));
    let looks_like_host = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    (looks_like_host && (url || looks_like_port)).then_some(host)
}

/// A service's environment as (name, value), list (`A=x`) or mapping form; names without a value left out.
fn environment_values(service: &Value) -> Vec<(String, String)> {
    match service.get("environment") {
        Some(Value::Mapping(map)) => {
            map.iter().filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned()))).collect()
        }
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(|item| item.as_str()?.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect(),
        _ => Vec::new(),
    }
}

/// Every host a service's environment or the connector points at is a service (or a name the services
/// answer to, or not one of ours: an address with a dot, `localhost`).
fn check_hosts(compose: &Value, connector: &serde_json::Value) -> Vec<String> {
    let services = services(compose);
    let mut known: BTreeSet<&str> = services.iter().map(|(name, _)| name.as_str()).collect();
    known.extend(services.iter().filter_map(|(_, service)| service.get("hostname").and_then(Value::as_str)));
    known.insert("localhost");
    let unknown = |host: &str| !host.contains('.') && !known.contains(host);
    let mut problems = Vec::new();
    for (name, service) in &services {
        for (variable, value) in environment_values(service) {
            for host in value.split(',').filter_map(address_host).filter(|host| unknown(host)) {
                problems.push(format!("service `{name}`: {variable} points at `{host}`, which is not a service"));
            }
        }
    }
    let config = connector_config(connector);
    if let Some(host) = config.get("database.hostname").and_then(serde_json::Value::as_str)
        && unknown(host)
    {
        problems.push(format!("the connector's database.hostname is `{host}`, which is not a service"));
    }
    problems
}

/// The networks a service joins (`networks:` as a list or a mapping); compose's `default` when it names none.
fn networks_of(service: &Value) -> BTreeSet<String> {
    let named: BTreeSet<String> = match service.get("networks") {
        Some(Value::Sequence(names)) => names.iter().filter_map(|n| n.as_str().map(str::to_owned)).collect(),
        Some(Value::Mapping(map)) => map.keys().filter_map(|n| n.as_str().map(str::to_owned)).collect(),
        _ => BTreeSet::new(),
    };
    if named.is_empty() { ["default".to_owned()].into() } else { named }
}

/// The services each service may share a network with (sharing one, two containers reach every port of each
/// other). The scraper parses what the internet sends: if that ever gives an attacker its process, they must
/// not find the database, Connect or Kafka UI next to it. Connect's REST API has no authentication and runs
/// any connector it is given, with the worker's secrets (`${env:DEBEZIUM_DB_PASSWORD}` sent to any host): its
/// clients are register-connector and kafka-ui, and it needs the broker and Postgres.
const NEIGHBOURS: &[(&str, &[&str])] = &[
    ("scraper", &["kafka", "inserter", "prometheus"]),
    ("connect", &["kafka", "postgres", "register-connector", "kafka-ui"]),
];

/// The services in [`NEIGHBOURS`] share networks with their neighbours only. A `network_mode` (the host's
/// network, or another container's) is refused outright: the networks would then not say who reaches whom.
fn check_neighbours(compose: &Value) -> Vec<String> {
    let services = services(compose);
    let mut problems = Vec::new();
    for (name, service) in &services {
        if let Some(mode) = service.get("network_mode").and_then(Value::as_str) {
            problems.push(format!(
                "service `{name}` sets network_mode `{mode}`: its networks no longer say what it reaches"
            ));
        }
    }
    for (guarded, allowed) in NEIGHBOURS {
        let Some((_, service)) = services.iter().find(|(name, _)| name == *guarded) else {
            problems.push(format!("no service `{guarded}`, whose neighbours are checked"));
            continue;
        };
        let networks = networks_of(service);
        for (other, other_service) in services.iter().filter(|(other, _)| other != *guarded) {
            for network in networks.intersection(&networks_of(other_service)) {
                if !allowed.contains(&other.as_str()) {
                    problems.push(format!(
                        "service `{guarded}` shares network `{network}` with `{other}`; it may share one only with {}",
                        allowed.join(", ")
                    ));
                }
            }
        }
    }
    problems
}

/// An address a service reaches: the service, the host it names, and where it names it.
type Address = (String, String, String);

/// The addresses the services name themselves: in their environment (comma-separated lists included) and in
/// their command's words.
fn named_addresses(compose: &Value) -> Vec<Address> {
    let mut found = Vec::new();
    for (name, service) in services(compose) {
        let values = environment_values(service).into_iter();
        let words = command_words(service).into_iter().map(|word| ("its command".to_owned(), word));
        for (what, value) in values.chain(words) {
            for host in value.split(',').filter_map(address_host) {
                found.push((name.clone(), host.to_owned(), what.clone()));
            }
        }
    }
    found
}

/// The services that bind-mount the repository file `path`, or a directory above it.
fn mounted_by(compose: &Value, path: &str) -> Vec<String> {
    let covers = |source: &str| {
        let source = source.trim_start_matches("./").trim_end_matches('/');
        path == source || path.strip_prefix(source).is_some_and(|rest| rest.starts_with('/'))
    };
    let services = services(compose).into_iter();
    services.filter(|(_, service)| bind_sources(service).iter().any(|s| covers(s))).map(|(name, _)| name).collect()
}

/// The addresses in files the services read: Prometheus's scrape targets and Grafana's data sources, reached
/// by the service that mounts them; and the connector's database host, reached by the Connect worker that the
/// service mounting the connector registers it with (the hosts that service names).
fn file_addresses(compose: &Value, root: &Path, connector: &serde_json::Value) -> Vec<Address> {
    let yaml = |path: &str| -> Value {
        serde_norway::from_str(&read(&root.join(path))).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"))
    };
    let texts = |value: &Value| {
        let mut out = Vec::new();
        strings(value, &mut out);
        out
    };
    let prometheus = yaml(PROMETHEUS_CONFIG);
    let targets = prometheus["scrape_configs"].as_sequence().into_iter().flatten();
    let targets: Vec<String> = targets
        .flat_map(|job| job["static_configs"].as_sequence().into_iter().flatten())
        .flat_map(|config| texts(&config["targets"]))
        .collect();
    let datasources = yaml(DATASOURCES);
    let urls: Vec<String> =
        datasources["datasources"].as_sequence().into_iter().flatten().flat_map(|d| texts(&d["url"])).collect();

    let mut found = Vec::new();
    for (file, values) in [(PROMETHEUS_CONFIG, targets), (DATASOURCES, urls)] {
        for reader in mounted_by(compose, file) {
            for host in values.iter().filter_map(|value| address_host(value)) {
                found.push((reader.clone(), host.to_owned(), format!("in {file}")));
            }
        }
    }
    if let Some(host) = connector_config(connector).get("database.hostname").and_then(serde_json::Value::as_str) {
        let registrars = mounted_by(compose, CONNECTOR_FILE);
        let named = named_addresses(compose);
        for (_, worker, _) in named.iter().filter(|(from, _, _)| registrars.contains(from)) {
            found.push((worker.clone(), host.to_owned(), "the connector's database.hostname".to_owned()));
        }
    }
    found
}

/// Every address a service reaches is a service it shares a network with: a service moved to another network,
/// or a new one, cannot lose its way to what it talks to unnoticed. Hosts that are not services are
/// [`check_hosts`]'s.
fn check_reach(compose: &Value, addresses: &[Address]) -> Vec<String> {
    let services = services(compose);
    let service = |host: &str| {
        services
            .iter()
            .find(|(name, service)| name == host || service.get("hostname").and_then(Value::as_str) == Some(host))
    };
    let mut problems = Vec::new();
    for (from, host, what) in addresses {
        let (Some((from, source)), Some((to, target))) = (service(from), service(host)) else { continue };
        if from != to && networks_of(source).is_disjoint(&networks_of(target)) {
            problems.push(format!("service `{from}` reaches `{to}` ({what}), but they share no network"));
        }
    }
    problems
}

/// Kafka UI can produce to, empty and delete topics, and run connectors: it asks for a login, with a password
/// from a variable (so not in the compose file, and given to it alone: [`SECRETS`]).
fn check_ui_login(compose: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, service) in services(compose) {
        if !service.get("image").and_then(Value::as_str).is_some_and(|image| image.contains("kafka-ui")) {
            continue;
        }
        let env = |key: &str| service.get("environment").and_then(|e| e.get(key)).and_then(Value::as_str);
        match env("AUTH_TYPE") {
            Some("LOGIN_FORM") => {
                let password = env("SPRING_SECURITY_USER_PASSWORD").unwrap_or_default();
                if env("SPRING_SECURITY_USER_NAME").is_none() || !password.starts_with("${") {
                    problems.push(format!(
                        "service `{name}`: a login form needs SPRING_SECURITY_USER_NAME and a password from a variable"
                    ));
                }
            }
            Some("OAUTH2" | "LDAP") => {}
            other => problems
                .push(format!("service `{name}` lets anyone in (AUTH_TYPE {}): set a login", other.unwrap_or("unset"))),
        }
    }
    problems
}

/// The services whose /metrics the compose Prometheus scrapes, and the variable of each one's address.
const OPS_ENDPOINTS: &[(&str, &str)] = &[("scraper", "SCRAPER_METRICS_ADDR"), ("inserter", "INSERTER_METRICS_ADDR")];

/// The value a service's `environment` gives `variable` (none for a name passed through without one).
fn environment_value(service: &Value, variable: &str) -> Option<String> {
    environment_values(service).into_iter().find(|(name, _)| name == variable).map(|(_, value)| value)
}

/// The binaries serve /metrics and /healthz on loopback unless told otherwise, which from outside a container
/// (Prometheus, the published port) reaches nothing: compose gives each an address on every interface, on the
/// port Prometheus scrapes.
fn check_ops_endpoints(compose: &Value, prometheus: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, service) in services(compose) {
        let Some((_, variable)) = OPS_ENDPOINTS.iter().find(|(service, _)| *service == name) else { continue };
        let address = environment_value(service, variable).and_then(|value| value.parse::<SocketAddr>().ok());
        match address {
            Some(address) if address.ip().is_unspecified() => {
                let target = format!("\"{name}:{}\"", address.port());
                if !prometheus.contains(&target) {
                    problems.push(format!("service `{name}` serves /metrics on {address}, but Prometheus scrapes no {target}"));
                }
            }
            _ => problems.push(format!(
                "service `{name}` must set {variable} to 0.0.0.0:PORT: the binary's default answers only inside its container"
            )),
        }
    }
    problems
}

#[test]
fn the_compose_setup_matches_the_workspace() {
    let root = repository_root();
    let compose = parse_compose(&read(&root.join(COMPOSE_FILE)));
    let connector: serde_json::Value = serde_json::from_str(&read(&root.join(CONNECTOR_FILE)))
        .unwrap_or_else(|e| panic!("{CONNECTOR_FILE} is not JSON: {e}"));
    let mut problems = check_depends_on(&compose);
    problems.extend(check_variables(&compose, &read(&root.join(".env.example"))));
    problems.extend(check_host_paths(&compose, &root));
    problems.extend(check_connector(&connector));
    problems.extend(check_hosts(&compose, &connector));
    let dockerfile = read(&root.join("Dockerfile"));
    problems.extend(check_dockerfile(&dockerfile, &workspace_binaries(&root)));
    problems.extend(check_commands(&compose, &dockerfile_binaries(&dockerfile)));
    problems.extend(check_stop_grace(&compose));
    problems.extend(check_image_tags(&compose));
    problems.extend(check_env_provider(&compose, &connector));
    problems.extend(check_neighbours(&compose));
    let addresses = [named_addresses(&compose), file_addresses(&compose, &root, &connector)].concat();
    problems.extend(check_reach(&compose, &addresses));
    problems.extend(check_ui_login(&compose));
    let binaries = [
        ("scraper", variables(scraper::settings::Settings::command())),
        ("inserter", variables(inserter::settings::Settings::command())),
    ];
    problems.extend(check_service_variables(&compose, &binaries));
    problems.extend(check_ops_endpoints(&compose, &read(&root.join(PROMETHEUS_CONFIG))));
    assert!(problems.is_empty(), "the compose setup is out of step with the workspace:\n- {}", problems.join("\n- "));
}

// The checks themselves, on small fixtures.

const FIXTURE: &str = r#"
services:
  postgres:
    image: postgres:15
    command: ["postgres", "-c", "wal_level=logical"]
    environment:
      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:-postgres}
    volumes:
      - ./roles.sql:/docker-entrypoint-initdb.d/roles.sql:ro
      - pgdata:/var/lib/postgresql/data
  inserter:
    build: .
    command: inserter --exit-when-idle 30s
    environment:
      DATABASE_URL: postgres://inserter:${INSERTER_PASSWORD:-x}@postgres/ingest
      KAFKA_BOOTSTRAP_SERVERS: ${KAFKA_BOOTSTRAP_SERVERS}
      LITERAL: "$$NOT_A_VARIABLE"
    depends_on:
      postgres:
        condition: service_healthy
volumes:
  pgdata:
"#;

#[test]
fn a_depends_on_naming_a_renamed_service_is_caught() {
    assert!(check_depends_on(&parse_compose(FIXTURE)).is_empty());
    let renamed = FIXTURE.replace("  postgres:\n    image", "  db:\n    image");
    assert_eq!(
        check_depends_on(&parse_compose(&renamed)),
        ["service `inserter` depends on `postgres`, which is not a service"]
    );
}

#[test]
fn a_variable_without_default_must_be_in_the_env_example() {
    let compose = parse_compose(FIXTURE);
    assert!(check_variables(&compose, "KAFKA_BOOTSTRAP_SERVERS=localhost:9092\n").is_empty());
    assert!(check_variables(&compose, "#KAFKA_BOOTSTRAP_SERVERS=\n").is_empty(), "a commented example counts");
    assert_eq!(
        check_variables(&compose, "DATABASE_URL=x\n"),
        ["${KAFKA_BOOTSTRAP_SERVERS} has no default and is not in .env.example"]
    );
    let mut found = BTreeSet::new();
    variables_without_default("${A:-${B}} $C ${D:?set D} ${E-e} ${F:+f} $$G ${H}", &mut found);
    assert_eq!(found, ["B", "C", "D", "H"].map(String::from).into());
}

#[test]
fn a_mounted_file_that_does_not_exist_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let compose = parse_compose(FIXTURE);
    assert_eq!(
        check_host_paths(&compose, dir.path()),
        ["service `postgres` mounts `./roles.sql`, which does not exist"]
    );
    std::fs::write(dir.path().join("roles.sql"), "").unwrap();
    assert!(check_host_paths(&compose, dir.path()).is_empty(), "named volumes are not files");
}

#[test]
fn the_connector_must_read_the_publication_and_exactly_its_tables() {
    let tables = |tables: &[&str]| tables.iter().map(|t| format!("public.{t}")).collect::<Vec<_>>().join(",");
    let connector = |publication: &str, list: String| {
        serde_json::json!({"name": "ingest", "config": {
            "plugin.name": "pgoutput", "publication.name": publication, "table.include.list": list,
        }})
    };
    assert!(check_connector(&connector(CDC_PUBLICATION, tables(PUBLISHED_TABLES))).is_empty());

    let problems = check_connector(&connector("dbz_publication", tables(PUBLISHED_TABLES)));
    assert!(problems.len() == 1 && problems[0].contains("publication.name"), "{problems:?}");

    let mut renamed: Vec<&str> = PUBLISHED_TABLES.to_vec();
    renamed[0] = "tweets";
    let problems = check_connector(&connector(CDC_PUBLICATION, tables(&renamed)));
    assert!(problems.len() == 1 && problems[0].contains("public.twitter_data"), "{problems:?}");
    assert!(problems[0].contains("public.tweets"), "{problems:?}");

    let flat = connector_config(&connector(CDC_PUBLICATION, tables(PUBLISHED_TABLES))).clone();
    assert!(check_connector(&flat).is_empty(), "a PUT /config body is read too");
}

#[test]
fn the_dockerfile_must_build_binaries_the_workspace_has() {
    let workspace = workspace_binaries(&repository_root());
    for binary in ["scraper", "inserter", "migration", "local-pipeline"] {
        assert!(workspace.contains(binary), "{workspace:?}");
    }
    let dockerfile = "FROM rust AS build\nRUN cargo build --release --bin scraper \\\n    --bin=inserter\n\
                      FROM debian\nCOPY --from=build /src/target/release/migration /usr/local/bin/\n";
    assert_eq!(dockerfile_binaries(dockerfile), ["inserter", "migration", "scraper"].map(String::from).into());
    assert!(check_dockerfile(dockerfile, &workspace).is_empty());

    let renamed = dockerfile.replace("--bin scraper", "--bin ingest-scraper");
    assert_eq!(
        check_dockerfile(&renamed, &workspace),
        ["the Dockerfile builds or copies `ingest-scraper`, which is not a binary of the workspace"]
    );
    assert_eq!(check_dockerfile("FROM scratch\n", &workspace).len(), 1, "a Dockerfile that names none is caught");
}

#[test]
fn a_service_running_a_binary_the_image_lacks_is_caught() {
    let compose = parse_compose(FIXTURE);
    let image = ["scraper", "inserter", "migration"].map(String::from).into();
    assert!(check_commands(&compose, &image).is_empty());
    let renamed = parse_compose(&FIXTURE.replace("command: inserter", "command: ingest-inserter"));
    assert_eq!(
        check_commands(&renamed, &image),
        ["service `inserter` runs `ingest-inserter`, which the Dockerfile does not build"]
    );
    let physical = parse_compose(&FIXTURE.replace("wal_level=logical", "wal_level=replica"));
    assert_eq!(check_commands(&physical, &image).len(), 1);
}

#[test]
fn an_address_naming_a_renamed_service_is_caught() {
    for (value, host) in [
        ("postgres://inserter:${INSERTER_PASSWORD:-x}@postgres:5432/ingest", Some("postgres")),
        ("kafka:29092", Some("kafka")),
        ("1@kafka:9093", Some("kafka")),
        ("http://connect:8083", Some("connect")),
        ("0.0.0.0:9101", Some("0.0.0.0")),
        ("INTERNAL://:29092", None),
        ("INTERNAL:PLAINTEXT", None),
        ("broker", None),
        ("localhost:${BROKER_HOST_PORT:-9092}", Some("localhost")),
    ] {
        assert_eq!(address_host(value), host, "{value}");
    }
    let connector = serde_json::json!({"database.hostname": "postgres"});
    assert!(check_hosts(&parse_compose(FIXTURE), &connector).is_empty());
    let renamed = FIXTURE.replace("  postgres:\n    image", "  db:\n    image");
    assert_eq!(
        check_hosts(&parse_compose(&renamed), &connector),
        [
            "service `inserter`: DATABASE_URL points at `postgres`, which is not a service",
            "the connector's database.hostname is `postgres`, which is not a service",
        ]
    );
}

#[test]
fn a_binary_compose_would_kill_mid_flush_is_caught() {
    let scraper = "services:\n  scraper:\n    build: .\n    command: [\"scraper\"]\n";
    assert_eq!(
        check_stop_grace(&parse_compose(scraper)),
        ["service `scraper` may be killed after 10 s while stopping, but needs more than 30 s: set stop_grace_period"]
    );
    let graced = format!("{scraper}    stop_grace_period: 45s\n");
    assert!(check_stop_grace(&parse_compose(&graced)).is_empty());
    let longer_flush = format!("{graced}    environment:\n      FLUSH_TIMEOUT: 2m\n");
    assert_eq!(check_stop_grace(&parse_compose(&longer_flush)).len(), 1, "45 s is not enough for a 2 min flush");
}

#[test]
fn a_secret_or_a_setting_in_the_wrong_container_is_caught() {
    let binaries = [("scraper", ["X_BEARER_TOKEN", "REPLAY_RATE"].map(String::from).into())];
    let compose = "services:\n  scraper:\n    command: [\"scraper\"]\n    environment:\n      X_BEARER_TOKEN:\n      REPLAY_RATE:\n";
    assert!(check_service_variables(&parse_compose(compose), &binaries).is_empty());

    let missing = compose.replace("      REPLAY_RATE:\n", "");
    assert_eq!(
        check_service_variables(&parse_compose(&missing), &binaries),
        ["service `scraper` does not pass REPLAY_RATE on to `scraper`, which reads it"]
    );
    let stranger = format!("{compose}      DATABASE_URL: postgres://x@postgres/ingest\n");
    assert_eq!(
        check_service_variables(&parse_compose(&stranger), &binaries),
        ["service `scraper` gets DATABASE_URL, which `scraper` does not read"]
    );
    let with_file = format!("{compose}    env_file: .env\n");
    assert_eq!(check_service_variables(&parse_compose(&with_file), &binaries).len(), 1);

    let leaky =
        "services:\n  migrate:\n    environment:\n      URL: postgres://o:${INSERTER_DB_PASSWORD:-x}@postgres/i\n";
    assert_eq!(
        check_service_variables(&parse_compose(leaky), &binaries),
        ["service `migrate` gets INSERTER_DB_PASSWORD, which only postgres, inserter may see"]
    );
    let prefix = "services:\n  migrate:\n    environment:\n      A: ${X_BEARER_TOKENS:-x}\n";
    assert!(check_service_variables(&parse_compose(prefix), &binaries).is_empty(), "another name, not the secret");
}

#[test]
fn an_ops_endpoint_prometheus_cannot_reach_is_caught() {
    let prometheus = "      - targets: [\"scraper:9101\"]\n";
    let compose = |environment: &str| {
        parse_compose(&format!(
            "services:\n  scraper:\n    command: [\"scraper\"]\n    environment:\n      {environment}\n"
        ))
    };
    assert!(check_ops_endpoints(&compose("SCRAPER_METRICS_ADDR: 0.0.0.0:9101"), prometheus).is_empty());
    for unreachable in [
        "SCRAPER_METRICS_ADDR: 127.0.0.1:9101",
        "SCRAPER_METRICS_ADDR:",
        "SCRAPER_METRICS_ADDR: 0.0.0.0:9200",
        "REPLAY_RATE: 5",
    ] {
        assert_eq!(check_ops_endpoints(&compose(unreachable), prometheus).len(), 1, "{unreachable}");
    }
}

#[test]
fn an_image_on_a_moving_tag_is_caught() {
    let compose = |image: &str| parse_compose(&format!("services:\n  s:\n    image: {image}\n"));
    for pinned in [
        "postgres:15.18-trixie",
        "apache/kafka:4.3.1",
        "quay.io/debezium/connect:3.6.2.Final",
        "ghcr.io/kafbat/kafka-ui:v1.5.0",
    ] {
        assert!(check_image_tags(&compose(pinned)).is_empty(), "{pinned}");
    }
    for moving in ["postgres:15-trixie", "apache/kafka", "grafana/grafana:latest", "localhost:5000/kafka"] {
        assert_eq!(check_image_tags(&compose(moving)).len(), 1, "{moving}");
    }
}

#[test]
fn an_env_provider_that_may_read_every_variable_is_caught() {
    let connector = serde_json::json!({"database.password": "${env:DEBEZIUM_DB_PASSWORD}"});
    let connect = "services:\n  connect:\n    environment:\n      CONNECT_CONFIG_PROVIDERS_ENV_CLASS: x\n";
    let restricted =
        format!("{connect}      CONNECT_CONFIG_PROVIDERS_ENV_PARAM_ALLOWLIST_PATTERN: DEBEZIUM_DB_PASSWORD\n");
    assert!(check_env_provider(&parse_compose(&restricted), &connector).is_empty());
    assert_eq!(check_env_provider(&parse_compose(connect), &connector).len(), 1);
    let wide = restricted.replace("PATTERN: DEBEZIUM_DB_PASSWORD", "PATTERN: .*");
    assert_eq!(check_env_provider(&parse_compose(&wide), &connector).len(), 1);
}

/// pg_partman's major versions differ in `create_parent`: the compose image must install the very package the
/// tests run against (scripts/install-test-deps.sh), on a Postgres 15 that Debian packages it for.
#[test]
fn the_compose_postgres_installs_the_pg_partman_the_tests_run() {
    let root = repository_root();
    let package = |text: &str| {
        let start = text.find("postgresql-15-partman=").expect("a pinned postgresql-15-partman");
        text[start..].split(|c: char| c.is_whitespace() || c == '"').next().unwrap().to_owned()
    };
    let dockerfile = read(&root.join("docker/postgres/Dockerfile"));
    let tests = read(&root.join("scripts/install-test-deps.sh"));
    assert_eq!(package(&dockerfile), package(&tests));
    let from = dockerfile.lines().find_map(|l| l.strip_prefix("FROM ")).unwrap();
    assert!(from.starts_with("postgres:15.") && from.ends_with("-bookworm"), "FROM {from}");

    let compose = parse_compose(&read(&root.join("docker-compose.yml")));
    let postgres = compose["services"]["postgres"]["build"]["context"].as_str();
    assert_eq!(postgres, Some("docker/postgres"), "compose builds postgres from docker/postgres/Dockerfile");

    // The version the tests' Postgres has is the one pinned (4.7.2-1 is extension version 4.7.2).
    let control = read(Path::new("/usr/share/postgresql/15/extension/pg_partman.control"));
    let installed = control.lines().find_map(|l| l.strip_prefix("default_version = ")).unwrap().trim_matches('\'');
    let pinned = package(&dockerfile);
    assert!(pinned.starts_with(&format!("postgresql-15-partman={installed}-")), "{pinned} against {installed}");
}

/// The compose file's services as far as the network checks look, on their networks.
const NETWORKED: &str = r#"
services:
  postgres:
    image: postgres:15.18
    networks: [db, debezium-db]
  kafka:
    image: apache/kafka:4.3.1
    hostname: kafka
    environment:
      KAFKA_CONTROLLER_QUORUM_VOTERS: 1@kafka:9093
    networks: [ingest, connect]
  connect:
    image: quay.io/debezium/connect:3.6.2.Final
    environment:
      BOOTSTRAP_SERVERS: kafka:29092
    networks: [connect, debezium-db]
  register-connector:
    environment:
      CONNECT_URL: http://connect:8083
    volumes:
      - ./docker/debezium:/debezium:ro
    networks: [connect]
  kafka-ui:
    image: ghcr.io/kafbat/kafka-ui:v1.5.0
    environment:
      KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS: kafka:29092
      KAFKA_CLUSTERS_0_KAFKACONNECT_0_ADDRESS: http://connect:8083
      AUTH_TYPE: LOGIN_FORM
      SPRING_SECURITY_USER_NAME: admin
      SPRING_SECURITY_USER_PASSWORD: ${KAFKA_UI_PASSWORD:-x}
    networks: [connect]
  scraper:
    command: ["scraper"]
    environment:
      KAFKA_BOOTSTRAP_SERVERS: kafka:29092
    networks: [ingest, metrics]
  inserter:
    command: ["inserter"]
    environment:
      DATABASE_URL: postgres://inserter:x@postgres:5432/ingest
      KAFKA_BOOTSTRAP_SERVERS: kafka:29092
    networks: [ingest, db, metrics]
  prometheus:
    command: ["--config.file=/etc/prometheus/prometheus.yml"]
    volumes:
      - ./docker/prometheus:/etc/prometheus:ro
    networks: [metrics, dashboards]
  grafana:
    volumes:
      - ./docker/grafana/provisioning:/etc/grafana/provisioning:ro
    networks: [dashboards]
"#;

#[test]
fn the_scraper_or_connect_beside_what_it_must_not_reach_is_caught() {
    let check = |text: &str| check_neighbours(&parse_compose(text));
    assert!(check(NETWORKED).is_empty());
    let only = |neighbours: &str| format!("; it may share one only with {neighbours}");
    let scraper_only = only("kafka, inserter, prometheus");

    let scraper_on_db = NETWORKED.replace("networks: [ingest, metrics]", "networks: [ingest, metrics, db]");
    assert_eq!(check(&scraper_on_db), [format!("service `scraper` shares network `db` with `postgres`{scraper_only}")]);
    let ui_on_ingest = NETWORKED.replace(
        "USER_PASSWORD: ${KAFKA_UI_PASSWORD:-x}\n    networks: [connect]",
        "USER_PASSWORD: ${KAFKA_UI_PASSWORD:-x}\n    networks: [connect, ingest]",
    );
    assert_eq!(
        check(&ui_on_ingest),
        [format!("service `scraper` shares network `ingest` with `kafka-ui`{scraper_only}")]
    );
    let inserter_on_connect =
        NETWORKED.replace("networks: [ingest, db, metrics]", "networks: [ingest, db, metrics, connect]");
    assert_eq!(
        check(&inserter_on_connect),
        [format!(
            "service `connect` shares network `connect` with `inserter`{}",
            only("kafka, postgres, register-connector, kafka-ui")
        )]
    );

    // Compose's default network, which a service without `networks:` joins, is a network like the others.
    let flat: String =
        NETWORKED.lines().filter(|line| !line.contains("networks:")).map(|line| format!("{line}\n")).collect();
    let problems = check(&flat);
    for other in ["postgres", "connect", "kafka-ui", "grafana"] {
        let line = format!("service `scraper` shares network `default` with `{other}`{scraper_only}");
        assert!(problems.contains(&line), "{line} in {problems:?}");
    }
    assert!(problems.iter().any(|p| p.starts_with("service `connect` shares network `default` with `scraper`")));

    let host = NETWORKED.replace("  scraper:\n", "  scraper:\n    network_mode: host\n");
    assert_eq!(
        check(&host),
        ["service `scraper` sets network_mode `host`: its networks no longer say what it reaches"]
    );
    let renamed = NETWORKED.replace("  scraper:\n", "  fetcher:\n");
    assert_eq!(check(&renamed), ["no service `scraper`, whose neighbours are checked"]);
}

#[test]
fn an_address_on_no_network_its_service_shares_is_caught() {
    let root = repository_root();
    let connector = serde_json::json!({"database.hostname": "postgres"});
    let addresses = |compose: &Value| [named_addresses(compose), file_addresses(compose, &root, &connector)].concat();
    let check = |text: &str| {
        let compose = parse_compose(text);
        check_reach(&compose, &addresses(&compose))
    };

    // What each service talks to is found in its environment and in the files it mounts.
    let found = addresses(&parse_compose(NETWORKED));
    for (from, to) in [
        ("inserter", "postgres"),
        ("inserter", "kafka"),
        ("scraper", "kafka"),
        ("connect", "kafka"),
        ("connect", "postgres"),
        ("register-connector", "connect"),
        ("kafka-ui", "kafka"),
        ("kafka-ui", "connect"),
        ("prometheus", "scraper"),
        ("prometheus", "inserter"),
        ("grafana", "prometheus"),
    ] {
        assert!(found.iter().any(|(f, t, _)| (f.as_str(), t.as_str()) == (from, to)), "{from} -> {to} in {found:?}");
    }
    assert!(check(NETWORKED).is_empty());

    let inserter_off_db = NETWORKED.replace("networks: [ingest, db, metrics]", "networks: [ingest, metrics]");
    assert_eq!(
        check(&inserter_off_db),
        ["service `inserter` reaches `postgres` (DATABASE_URL), but they share no network"]
    );
    let connect_off_postgres = NETWORKED.replace("networks: [connect, debezium-db]", "networks: [connect]");
    assert_eq!(
        check(&connect_off_postgres),
        ["service `connect` reaches `postgres` (the connector's database.hostname), but they share no network"]
    );
    let scraper_off_metrics = NETWORKED.replace("networks: [ingest, metrics]", "networks: [ingest]");
    assert_eq!(
        check(&scraper_off_metrics),
        [format!("service `prometheus` reaches `scraper` (in {PROMETHEUS_CONFIG}), but they share no network")]
    );
    let grafana_alone = NETWORKED.replace("networks: [dashboards]", "networks: [grafana]");
    assert_eq!(
        check(&grafana_alone),
        [format!("service `grafana` reaches `prometheus` (in {DATASOURCES}), but they share no network")]
    );
}

#[test]
fn a_kafka_ui_without_a_login_is_caught() {
    let check = |text: &str| check_ui_login(&parse_compose(text));
    assert!(check(NETWORKED).is_empty());
    assert_eq!(
        check(&NETWORKED.replace("      AUTH_TYPE: LOGIN_FORM\n", "")),
        ["service `kafka-ui` lets anyone in (AUTH_TYPE unset): set a login"]
    );
    assert_eq!(check(&NETWORKED.replace("AUTH_TYPE: LOGIN_FORM", "AUTH_TYPE: DISABLED")).len(), 1);
    let written_in = NETWORKED.replace("${KAFKA_UI_PASSWORD:-x}", "hunter2");
    assert_eq!(
        check(&written_in),
        ["service `kafka-ui`: a login form needs SPRING_SECURITY_USER_NAME and a password from a variable"]
    );

    let no_binaries: &[(&str, BTreeSet<String>)] = &[];
    assert!(check_service_variables(&parse_compose(NETWORKED), no_binaries).is_empty());
    let leaked =
        NETWORKED.replace("    command: [\"scraper\"]\n", "    command: [\"scraper\", \"${KAFKA_UI_PASSWORD}\"]\n");
    assert_eq!(
        check_service_variables(&parse_compose(&leaked), no_binaries),
        ["service `scraper` gets KAFKA_UI_PASSWORD, which only kafka-ui may see"]
    );
}

/// The tests, the benchmarks and scripts/run-local.sh run Apache Kafka and the Debezium connector from Maven
/// Central's jars at the pins of scripts/kafka-versions.env (scripts/install-kafka.sh): compose must run the
/// very releases as images, and the jars installed must be the pinned ones.
#[test]
fn the_compose_broker_and_connect_run_the_releases_the_tests_run() {
    let versions = testkit::jvm::Versions::pinned().unwrap();
    let compose = parse_compose(&read(&repository_root().join("docker-compose.yml")));
    let image = |service: &str| compose["services"][service]["image"].as_str().unwrap().to_owned();
    assert_eq!(image("kafka"), format!("apache/kafka:{}", versions.kafka));
    assert_eq!(image("connect"), format!("quay.io/debezium/connect:{}", versions.debezium));

    let install = testkit::jvm::Install::pinned().unwrap();
    let broker = install.kafka_libs.join(format!("kafka_2.13-{}.jar", versions.kafka));
    let connect = install.kafka_libs.join(format!("connect-runtime-{}.jar", versions.kafka));
    let connector = install
        .debezium_plugins
        .join("debezium-connector-postgres")
        .join(format!("debezium-connector-postgres-{}.jar", versions.debezium));
    for jar in [broker, connect, connector] {
        assert!(jar.is_file(), "{} is not installed", jar.display());
    }
}
