//! The observability profile (`docker compose --profile observability up`) checked without containers:
//! promtool accepts Prometheus's configuration and alert rules, and each alert fires on what it describes; the
//! Grafana provisioning, the dashboard and the compose file agree on paths, the data source and the scrape
//! targets; and Debian's Prometheus, run against the pipeline with the same jobs and rules, finds a series for
//! every dashboard panel's query and every alert's condition, so that a renamed metric or label fails here
//! rather than leaving an empty panel or an alert that can never fire. `local-pipeline --prometheus` runs the
//! same Prometheus beside the pipeline and stops it with the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_norway::Value;
use testkit::Process;
use testkit::prometheus::{Client, Prometheus, PrometheusOptions, find_program, local_config};
use testkit::stack::{Stack, StackOptions};

const PROMETHEUS_CONFIG: &str = "docker/prometheus/prometheus.yml";
const ALERTS: &str = "docker/prometheus/alerts.yml";
const DASHBOARD: &str = "docker/grafana/dashboards/ingest-pipeline.json";
const DATASOURCES: &str = "docker/grafana/provisioning/datasources/prometheus.yml";
const DASHBOARD_PROVIDERS: &str = "docker/grafana/provisioning/dashboards/dashboards.yml";

/// What the live test puts in for Grafana's `$__rate_interval`: fifteen samples at its 1 s scrape interval.
const RATE_INTERVAL: &str = "15s";

fn root() -> PathBuf {
    testkit::stack::repository_root()
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn yaml(relative: &str) -> Value {
    let mut value: Value = serde_norway::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"));
    value.apply_merge().unwrap_or_else(|e| panic!("{relative}: a merge key: {e}"));
    value
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD} is not JSON: {e}"))
}

fn program(name: &str, variable: &str) -> PathBuf {
    find_program(name, variable).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The dashboard's panels, those inside collapsed rows included, without the rows themselves.
fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("the dashboard has `panels`") {
        if panel["type"] == "row" {
            out.extend(panel["panels"].as_array().into_iter().flatten());
        } else {
            out.push(panel);
        }
    }
    out
}

/// `(panel title, expr)` for every query of the dashboard.
fn panel_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push((title.to_owned(), target["expr"].as_str().unwrap_or_default().to_owned()));
        }
    }
    queries
}

/// `(alert, expr)` for every alerting rule of alerts.yml.
fn alerts() -> Vec<(String, String)> {
    let rules = yaml(ALERTS);
    let mut alerts = Vec::new();
    for group in rules["groups"].as_sequence().expect("alerts.yml has `groups`") {
        for rule in group["rules"].as_sequence().expect("a group has `rules`") {
            if let Some(name) = rule.get("alert").and_then(Value::as_str) {
                let expr = rule["expr"].as_str().unwrap_or_else(|| panic!("alert {name} has no expr"));
                alerts.push((name.to_owned(), expr.trim().to_owned()));
            }
        }
    }
    alerts
}

/// `<query> <op> <number>` as `<query> <op> bool <number>`: the condition's value for every series, firing or
/// not. Refuses any other shape, a top-level `and`/`or`/`unless` included (the comparison would then be only
/// one side of it).
fn bool_form(expr: &str) -> Result<String, String> {
    let expr = expr.split_whitespace().collect::<Vec<_>>().join(" ");
    let (head, number) = expr.rsplit_once(' ').ok_or("not `<query> <op> <number>`")?;
    number.parse::<f64>().map_err(|_| format!("it does not end with a number but with `{number}`"))?;
    let head = head.trim_end();
    let op = ["==", "!=", ">=", "<=", ">", "<"]
        .into_iter()
        .find(|op| head.ends_with(op))
        .ok_or_else(|| format!("no comparison before `{number}`"))?;
    let query = head[..head.len() - op.len()].trim_end();
    if query.ends_with("bool") || query.is_empty() {
        return Err("already a `bool` comparison, or nothing to compare".into());
    }
    let (mut depth, mut quote, mut top_level) = (0i32, None, String::new());
    for c in query.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => continue,
            (None, '"' | '\'' | '`') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => depth -= 1,
            (None, c) if depth == 0 => top_level.push(c),
            _ => {}
        }
    }
    if let Some(set_op) = top_level.split_whitespace().find(|w| matches!(*w, "and" | "or" | "unless")) {
        return Err(format!("a top-level `{set_op}`: the comparison is only one side of it"));
    }
    Ok(format!("{query} {op} bool {number}"))
}

#[test]
fn bool_form_takes_one_comparison_against_a_number() {
    assert_eq!(bool_form("up == 0").unwrap(), "up == bool 0");
    assert_eq!(bool_form("rate(x_total[5m]) > 0").unwrap(), "rate(x_total[5m]) > bool 0");
    assert_eq!(
        bool_form("a / 4\n  * on (job) (b > bool 0)\n>= 0.9").unwrap(),
        "a / 4 * on (job) (b > bool 0) >= bool 0.9"
    );
    assert_eq!(bool_form(r#"x{a="and"} < 1e3"#).unwrap(), r#"x{a="and"} < bool 1e3"#);
    assert!(bool_form("a > 0 and b > 1").is_err());
    assert!(bool_form("(a > 0) or b > 1").is_err());
    assert!(bool_form("sum(a > 0)").is_err());
    assert!(bool_form("a > bool 0").is_err());
}

#[test]
fn promtool_accepts_the_configuration_and_the_rules() {
    let promtool = program("promtool", "PROMTOOL_BIN");
    // `check config` also checks the rule files the configuration names, found relative to it as in the
    // container.
    for args in [["check", "config", PROMETHEUS_CONFIG], ["check", "rules", ALERTS]] {
        let output = Command::new(&promtool).args(args).current_dir(root()).output().expect("run promtool");
        let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "promtool {}: {}\n{log}", args.join(" "), output.status);
        assert!(!log.contains("WARNING"), "promtool {}:\n{log}", args.join(" "));
    }
}

/// For each alert: series that must make it fire, and series beside them that must not (the `for:` included).
/// promtool compares the annotations too, so the rules are checked without them: the conditions are what is
/// under test here.
const ALERT_TESTS: &str = r#"
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
      - series: 'up{job="scraper", instance="s:9101"}'
        values: '0x40'
      - series: 'up{job="inserter", instance="i:9102"}'
        values: '1x40'
      - series: 'inserter_write_failures_total{job="inserter", instance="failing:9102"}'
        values: '0+1x40'
      - series: 'inserter_write_failures_total{job="inserter", instance="i:9102"}'
        values: '5x40'
      # Failing at every run (every 15 s here); one failure long ago.
      - series: 'inserter_partition_maintenance_failures_total{job="inserter", instance="i:9102", table="twitter_data"}'
        values: '0+1x40'
      - series: 'inserter_partition_maintenance_failures_total{job="inserter", instance="i:9102", table="mastodon_statuses"}'
        values: '1x40'
      - series: 'inserter_dead_letters_total{job="inserter", instance="i:9102", topic="twitter.tweets"}'
        values: '0x4 1x40'
      - series: 'inserter_dead_letters_total{job="inserter", instance="i:9102", topic="mastodon.statuses"}'
        values: '3x40'
      - series: 'scraper_records_produced_total{job="scraper", instance="s:9101", outcome="rejected", topic="scraper.rejects"}'
        values: '0x4 2x40'
      - series: 'scraper_records_produced_total{job="scraper", instance="s:9101", outcome="accepted", topic="twitter.tweets"}'
        values: '0+100x40'
      - series: 'scraper_delivery_failures_total{job="scraper", instance="s:9101"}'
        values: '0x4 1x40'
      - series: 'scraper_delivery_failures_total{job="scraper", instance="fine:9101"}'
        values: '0x40'
      # Full and waiting; full but no source waits; waiting but not full.
      - series: 'scraper_queued_bytes{job="scraper", instance="s:9101"}'
        values: '65000000x40'
      - series: 'scraper_queue_full_total{job="scraper", instance="s:9101"}'
        values: '0+1x40'
      - series: 'scraper_queued_bytes{job="scraper", instance="full:9101"}'
        values: '65000000x40'
      - series: 'scraper_queue_full_total{job="scraper", instance="full:9101"}'
        values: '7x40'
      - series: 'scraper_queued_bytes{job="scraper", instance="waiting:9101"}'
        values: '1000000x40'
      - series: 'scraper_queue_full_total{job="scraper", instance="waiting:9101"}'
        values: '0+1x40'
      # promtool's clock starts at the epoch: silent since second 1; receiving every 15 s; never received.
      - series: 'scraper_last_receive_timestamp_seconds{job="scraper", instance="s:9101"}'
        values: '1x40'
      - series: 'scraper_last_receive_timestamp_seconds{job="scraper", instance="live:9101"}'
        values: '0+15x40'
      - series: 'scraper_last_receive_timestamp_seconds{job="scraper", instance="replay:9101"}'
        values: '0x40'
    alert_rule_test:
      - alertname: TargetDown
        eval_time: 1m
      - alertname: TargetDown
        eval_time: 3m
        exp_alerts:
          - exp_labels: {severity: critical, job: scraper, instance: "s:9101"}
      - alertname: InserterWriteFailures
        eval_time: 3m
      - alertname: InserterWriteFailures
        eval_time: 7m
        exp_alerts:
          - exp_labels: {severity: critical, job: inserter, instance: "failing:9102"}
      - alertname: PartitionMaintenanceFailing
        eval_time: 3m
      - alertname: PartitionMaintenanceFailing
        eval_time: 9m
        exp_alerts:
          - exp_labels: {severity: warning, job: inserter, instance: "i:9102", table: twitter_data}
      - alertname: DeadLetters
        eval_time: 3m
        exp_alerts:
          - exp_labels: {severity: warning, job: inserter, instance: "i:9102", topic: twitter.tweets}
      - alertname: ScraperRejects
        eval_time: 3m
        exp_alerts:
          - exp_labels: {severity: warning, job: scraper, instance: "s:9101", outcome: rejected, topic: scraper.rejects}
      - alertname: ScraperDeliveryFailures
        eval_time: 3m
        exp_alerts:
          - exp_labels: {severity: critical, job: scraper, instance: "s:9101"}
      - alertname: ScraperQueueFull
        eval_time: 3m
      - alertname: ScraperQueueFull
        eval_time: 8m
        exp_alerts:
          - exp_labels: {severity: warning, job: scraper, instance: "s:9101"}
      - alertname: StreamingSourceSilent
        eval_time: 5m
      - alertname: StreamingSourceSilent
        eval_time: 9m
        exp_alerts:
          - exp_labels: {severity: warning, job: scraper, instance: "s:9101"}

  - interval: 15s
    input_series:
      # 2 records a second more at every step; a steady lag; 0.67 a second, under the threshold.
      - series: 'inserter_consumer_lag_records{job="inserter", instance="i:9102", topic="twitter.tweets", partition="0"}'
        values: '0+30x200'
      - series: 'inserter_consumer_lag_records{job="inserter", instance="i:9102", topic="twitter.tweets", partition="1"}'
        values: '100x200'
      - series: 'inserter_consumer_lag_records{job="inserter", instance="i:9102", topic="twitter.tweets", partition="2"}'
        values: '0+10x200'
    alert_rule_test:
      - alertname: ConsumerLagGrowing
        eval_time: 10m
      - alertname: ConsumerLagGrowing
        eval_time: 20m
        exp_alerts:
          - exp_labels: {severity: warning, job: inserter, instance: "i:9102", topic: twitter.tweets, partition: "0"}

  - interval: 1m
    input_series:
      # Done at every run (every minute here) by one member, never by the other; done once at the start, then
      # every run skipped or failed.
      - series: 'inserter_partition_maintenance_last_done_timestamp_seconds{job="inserter", instance="i:9102", table="twitter_data"}'
        values: '0+60x300'
      - series: 'inserter_partition_maintenance_last_done_timestamp_seconds{job="inserter", instance="j:9102", table="twitter_data"}'
        values: '0x300'
      - series: 'inserter_partition_maintenance_last_done_timestamp_seconds{job="inserter", instance="i:9102", table="mastodon_statuses"}'
        values: '60x300'
    alert_rule_test:
      - alertname: PartitionMaintenanceStale
        eval_time: 2h
      - alertname: PartitionMaintenanceStale
        eval_time: 4h
        exp_alerts:
          - exp_labels: {severity: warning, table: mastodon_statuses}
"#;

#[test]
fn each_alert_fires_on_what_it_describes() {
    let dir = tempfile::tempdir().unwrap();
    let mut rules = yaml(ALERTS);
    for group in rules["groups"].as_sequence_mut().unwrap() {
        for rule in group["rules"].as_sequence_mut().unwrap() {
            rule.as_mapping_mut().unwrap().remove("annotations");
        }
    }
    let rules_path = dir.path().join("alerts.yml");
    std::fs::write(&rules_path, serde_norway::to_string(&rules).unwrap()).unwrap();
    let mut tests: Value = serde_norway::from_str(ALERT_TESTS).unwrap();
    tests.as_mapping_mut().unwrap().insert("rule_files".into(), vec![Value::from(rules_path.to_str().unwrap())].into());

    let tested: BTreeSet<String> = tests["tests"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|test| test["alert_rule_test"].as_sequence().unwrap())
        .map(|case| case["alertname"].as_str().unwrap().to_owned())
        .collect();
    let defined: BTreeSet<String> = alerts().into_iter().map(|(name, _)| name).collect();
    assert_eq!(tested, defined, "every alert of {ALERTS} has a case here, and only those");

    let tests_path = dir.path().join("alerts_test.yml");
    std::fs::write(&tests_path, serde_norway::to_string(&tests).unwrap()).unwrap();
    let output = Command::new(program("promtool", "PROMTOOL_BIN"))
        .args(["test", "rules"])
        .arg(&tests_path)
        .output()
        .expect("run promtool");
    let log = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "promtool test rules: {}\n{log}", output.status);
}

/// `host:port` strings of a scrape config's static targets.
fn static_targets(job: &Value) -> Vec<String> {
    let configs = job.get("static_configs").and_then(Value::as_sequence).into_iter().flatten();
    configs.flat_map(|c| c["targets"].as_sequence().unwrap().iter().map(|t| t.as_str().unwrap().to_owned())).collect()
}

/// A service's bind mounts as (host path, container path).
fn mounts(service: &Value) -> Vec<(String, String)> {
    let volumes = service.get("volumes").and_then(Value::as_sequence).into_iter().flatten();
    volumes
        .filter_map(|v| v.as_str())
        .filter_map(|v| {
            let mut parts = v.split(':');
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect()
}

/// The container path `host` (e.g. `./docker/prometheus`) is mounted at.
fn mounted_at(service: &Value, host: &str) -> Option<String> {
    mounts(service).into_iter().find(|(source, _)| source == host).map(|(_, target)| target)
}

/// The host file a container path resolves to through the service's bind mounts.
fn host_file(service: &Value, container_path: &str) -> Option<PathBuf> {
    mounts(service).into_iter().find_map(|(source, target)| {
        let rest = container_path.strip_prefix(&format!("{target}/"))?;
        Some(root().join(source.trim_start_matches("./")).join(rest))
    })
}

fn environment(service: &Value) -> BTreeMap<String, String> {
    let map = service.get("environment").and_then(Value::as_mapping).into_iter().flatten();
    map.filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned()))).collect()
}

#[test]
fn the_dashboard_and_its_provisioning_match_the_compose_file() {
    let compose = yaml("docker-compose.yml");
    let services = &compose["services"];
    let mut problems = Vec::new();

    for name in ["prometheus", "grafana"] {
        let service = &services[name];
        let profiles: Vec<&str> =
            service["profiles"].as_sequence().into_iter().flatten().filter_map(Value::as_str).collect();
        if profiles != ["observability"] {
            problems.push(format!("service `{name}` has profiles {profiles:?}, not [observability]"));
        }
        let image = service["image"].as_str().unwrap_or_default();
        let tag = image.rsplit_once(':').map(|(_, tag)| tag.trim_start_matches('v')).unwrap_or_default();
        if tag.split('.').count() != 3 || !tag.split('.').all(|part| part.parse::<u32>().is_ok()) {
            problems.push(format!("service `{name}`: image `{image}` is not pinned to a full release"));
        }
        for port in service["ports"].as_sequence().into_iter().flatten().filter_map(Value::as_str) {
            if !port.starts_with("127.0.0.1:") {
                problems.push(format!("service `{name}` publishes {port} beyond 127.0.0.1"));
            }
        }
    }

    // Prometheus reads the configuration compose mounts, and scrapes services on the ports they serve.
    let prometheus = &services["prometheus"];
    let command: Vec<&str> = prometheus["command"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
    let config_arg = command.iter().find_map(|arg| arg.strip_prefix("--config.file=")).expect("--config.file");
    match host_file(prometheus, config_arg) {
        Some(file) if file == root().join(PROMETHEUS_CONFIG) => {}
        other => problems.push(format!("Prometheus reads {config_arg}, which is {other:?}, not {PROMETHEUS_CONFIG}")),
    }
    let config = yaml(PROMETHEUS_CONFIG);
    for job in config["scrape_configs"].as_sequence().unwrap() {
        let job_name = job["job_name"].as_str().unwrap_or_default();
        for target in static_targets(job) {
            let (host, port) = target.rsplit_once(':').unwrap();
            if host == "localhost" {
                continue;
            }
            let Some(service) = services.get(host) else {
                problems.push(format!("job `{job_name}` scrapes {target}, but there is no service `{host}`"));
                continue;
            };
            if !environment(service).values().any(|value| value.ends_with(&format!(":{port}"))) {
                problems
                    .push(format!("job `{job_name}` scrapes {target}, but `{host}` serves no address on port {port}"));
            }
        }
    }

    // Grafana: the data source is that Prometheus; the dashboards are where the provider looks.
    let grafana = &services["grafana"];
    let datasources = yaml(DATASOURCES);
    let datasource = &datasources["datasources"][0];
    let uid = datasource["uid"].as_str().expect("the data source has a uid").to_owned();
    assert_eq!(datasource["type"].as_str(), Some("prometheus"));
    let url = datasource["url"].as_str().unwrap_or_default();
    let prometheus_ports: Vec<&str> =
        prometheus["ports"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
    let container_port = prometheus_ports.first().and_then(|p| p.rsplit(':').next()).unwrap_or_default();
    if url != format!("http://prometheus:{container_port}") {
        problems
            .push(format!("the data source points at {url}, not at the prometheus service's port {container_port}"));
    }
    if mounted_at(grafana, "./docker/grafana/provisioning").as_deref() != Some("/etc/grafana/provisioning") {
        problems.push("docker/grafana/provisioning is not mounted at /etc/grafana/provisioning".to_owned());
    }
    let providers = yaml(DASHBOARD_PROVIDERS);
    let provider_path = providers["providers"][0]["options"]["path"].as_str().expect("a provider path").to_owned();
    match host_file(grafana, &format!("{provider_path}/ingest-pipeline.json")) {
        Some(file) if file == root().join(DASHBOARD) => {}
        other => problems
            .push(format!("the provider reads {provider_path}, where compose mounts {other:?}, not {DASHBOARD}")),
    }
    let home = environment(grafana).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH").cloned().unwrap_or_default();
    if host_file(grafana, &home) != Some(root().join(DASHBOARD)) {
        problems.push(format!("the home dashboard {home} is not {DASHBOARD}"));
    }

    // Every panel queries that data source, by its uid.
    let dashboard = dashboard();
    assert!(dashboard["uid"].as_str().is_some_and(|u| !u.is_empty()), "the dashboard has a uid");
    let mut ids = BTreeSet::new();
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        if !ids.insert(panel["id"].as_u64()) {
            problems.push(format!("panel `{title}`: id {} is not unique", panel["id"]));
        }
        if panel["datasource"]["uid"] != uid.as_str() {
            problems.push(format!("panel `{title}`: data source {} is not the uid `{uid}`", panel["datasource"]));
        }
        let targets = panel["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("panel `{title}` has no targets"));
        }
        let mut ref_ids = BTreeSet::new();
        for target in targets {
            if target["expr"].as_str().is_none_or(|expr| expr.trim().is_empty()) {
                problems.push(format!("panel `{title}`: a target without expr"));
            }
            if target["datasource"]["uid"] != uid.as_str() {
                problems
                    .push(format!("panel `{title}`: a target's data source {} is not `{uid}`", target["datasource"]));
            }
            if !ref_ids.insert(target["refId"].as_str()) {
                problems.push(format!("panel `{title}`: refId {} twice", target["refId"]));
            }
        }
    }
    assert!(problems.is_empty(), "the observability files are out of step:\n- {}", problems.join("\n- "));
}

#[test]
fn the_local_configuration_points_each_job_at_its_address() {
    let targets: BTreeMap<String, String> =
        [("prometheus", "127.0.0.1:3"), ("scraper", "127.0.0.1:1"), ("inserter", "127.0.0.1:2")]
            .map(|(job, address)| (job.to_owned(), address.to_owned()))
            .into();
    let config = local_config(&root().join(PROMETHEUS_CONFIG), &targets, Some("1s")).unwrap();
    assert!(config.dropped_jobs.is_empty(), "{:?}", config.dropped_jobs);
    let rewritten: Value = serde_norway::from_str(&config.yaml).unwrap();
    assert_eq!(rewritten["global"]["scrape_interval"].as_str(), Some("1s"));
    assert_eq!(rewritten["global"]["evaluation_interval"].as_str(), Some("1s"));
    let rule_files: Vec<&str> =
        rewritten["rule_files"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(rule_files, [root().join(ALERTS).to_str().unwrap()], "absolute, so the file can be written anywhere");
    let jobs: BTreeMap<String, Vec<String>> = rewritten["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|job| (job["job_name"].as_str().unwrap().to_owned(), static_targets(job)))
        .collect();
    let expected: BTreeMap<String, Vec<String>> =
        targets.into_iter().map(|(job, address)| (job, vec![address])).collect();
    assert_eq!(jobs, expected);

    let only_scraper = BTreeMap::from([("scraper".to_owned(), "127.0.0.1:1".to_owned())]);
    let config = local_config(&root().join(PROMETHEUS_CONFIG), &only_scraper, None).unwrap();
    assert_eq!(config.dropped_jobs, ["prometheus", "inserter"], "a job without a local address is left out");
    let unknown = BTreeMap::from([("scrapper".to_owned(), "127.0.0.1:1".to_owned())]);
    let error = local_config(&root().join(PROMETHEUS_CONFIG), &unknown, None).unwrap_err();
    assert!(format!("{error:#}").contains("no job `scrapper`"), "{error:#}");
}

/// Only what the binary needs from the environment: no `.env`, no token or SSE URL of the developer's.
fn isolated(mut command: Command, dir: &Path) -> Command {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kept: Vec<(String, String)> =
        command.get_envs().filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned()))).collect();
    command.env_clear().envs(kept).env("PATH", path).env("RUST_LOG", "info,librdkafka=warn,rdkafka=warn");
    command.current_dir(dir);
    command
}

/// The address a binary serves /metrics on, from its start-up line (it binds port 0).
async fn metrics_address(process: &mut Process) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = process.log();
        let line = log.lines().find(|line| line.contains("serving /metrics and /healthz"));
        if let Some(address) = line.and_then(|line| line.split("address=").nth(1)) {
            return address.split_whitespace().next().unwrap().to_owned();
        }
        if let Some(status) = process.try_wait().unwrap() {
            panic!("exited with {status} before serving /metrics:\n{log}");
        }
        assert!(Instant::now() < deadline, "no /metrics address after 60 s:\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `promql` returns a series, or fails with `what` and `context()` after `timeout`.
async fn wait_for_series(client: &Client, promql: &str, what: &str, timeout: Duration, context: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    loop {
        let answer = client.query(promql).await;
        if answer.as_ref().is_ok_and(|series| !series.is_empty()) {
            return;
        }
        assert!(Instant::now() < deadline, "{what} after {timeout:?} (`{promql}`: {answer:?})\n{}", context());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The names of the alerting rules Prometheus loaded, with each one's health and last error.
async fn loaded_alerts(client: &Client) -> BTreeMap<String, (String, String)> {
    let data = client.api("/api/v1/rules", &[]).await.unwrap();
    let mut alerts = BTreeMap::new();
    for group in data["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap().iter().filter(|rule| rule["type"] == "alerting") {
            let text = |key: &str| rule[key].as_str().unwrap_or_default().to_owned();
            alerts.insert(text("name"), (text("health"), text("lastError")));
        }
    }
    alerts
}

#[tokio::test]
async fn prometheus_finds_a_series_for_every_panel_and_every_alert() {
    // Before the services: without Debian's Prometheus there is nothing to test, and the message says why.
    program("prometheus", "PROMETHEUS_BIN");
    let stack = Stack::start(&StackOptions::new().unwrap()).await.unwrap();
    stack.migrate().unwrap();
    let dir = tempfile::tempdir().unwrap();

    let mut command = isolated(stack.scraper(), dir.path());
    command.env("REPLAY_RATE", "50").env("TOPIC_PARTITIONS", "3").env("SCRAPER_METRICS_ADDR", "127.0.0.1:0");
    let mut scraper = Process::spawn(command, &dir.path().join("scraper.log")).unwrap();
    let mut command = isolated(stack.inserter(), dir.path());
    command.env("INSERTER_METRICS_ADDR", "127.0.0.1:0").env("BATCH_TIMEOUT", "100ms");
    let mut inserter = Process::spawn(command, &dir.path().join("inserter.log")).unwrap();
    let targets = BTreeMap::from([
        ("scraper".to_owned(), metrics_address(&mut scraper).await),
        ("inserter".to_owned(), metrics_address(&mut inserter).await),
    ]);

    let mut options = PrometheusOptions::new(targets);
    options.interval = Some("1s".to_owned());
    let prometheus = Prometheus::start(&options).await.unwrap();
    let client = prometheus.client();
    let logs = || {
        format!(
            "--- scraper:\n{}\n--- inserter:\n{}\n--- prometheus:\n{}",
            scraper.log(),
            inserter.log(),
            prometheus.log()
        )
    };

    // Every target up, with more samples than a rate window holds, and rows landing.
    for job in ["prometheus", "scraper", "inserter"] {
        let promql = format!(r#"count_over_time(up{{job="{job}"}}[30s]) >= 20 and up{{job="{job}"}} == 1"#);
        wait_for_series(
            &client,
            &promql,
            &format!("job {job} is not up with 20 samples"),
            Duration::from_secs(90),
            &logs,
        )
        .await;
    }
    let promql = format!("sum(increase(inserter_rows_written_total[{RATE_INTERVAL}])) > 0");
    wait_for_series(&client, &promql, "no rows written", Duration::from_secs(60), &logs).await;

    let mut failures = Vec::new();
    let queries = panel_queries(&dashboard());
    assert!(!queries.is_empty());
    for (panel, expr) in queries {
        let promql = expr.replace("$__rate_interval", RATE_INTERVAL);
        if promql.contains('$') {
            failures.push(format!("panel `{panel}`: `{expr}` has a variable this test does not fill in"));
            continue;
        }
        match client.query(&promql).await {
            Ok(series) if !series.is_empty() => {}
            Ok(_) => failures.push(format!("panel `{panel}`: `{promql}` returns no series")),
            Err(e) => failures.push(format!("panel `{panel}`: `{promql}`: {e:#}")),
        }
    }
    let defined = alerts();
    for (alert, expr) in &defined {
        let condition = match bool_form(expr) {
            Ok(condition) => condition,
            Err(why) => {
                failures.push(format!("alert {alert}: `{expr}` is not `<query> <op> <number>`: {why}"));
                continue;
            }
        };
        match client.query(&condition).await {
            Ok(series) if !series.is_empty() => {}
            Ok(_) => failures.push(format!("alert {alert}: `{condition}` returns no series")),
            Err(e) => failures.push(format!("alert {alert}: `{condition}`: {e:#}")),
        }
    }

    // The rules compose's Prometheus would load, loaded and evaluated without error.
    let loaded = loaded_alerts(&client).await;
    let names: BTreeSet<&String> = defined.iter().map(|(name, _)| name).collect();
    assert_eq!(loaded.keys().collect::<BTreeSet<_>>(), names, "the alerts Prometheus loaded from {ALERTS}");
    for (alert, (health, error)) in &loaded {
        if health != "ok" {
            failures.push(format!("alert {alert}: rule health `{health}` {error}"));
        }
    }
    assert!(
        failures.is_empty(),
        "against the running pipeline (`$__rate_interval` = {RATE_INTERVAL}):\n- {}\n{}",
        failures.join("\n- "),
        logs()
    );
}

/// The first line that starts with `prefix` (indentation aside).
fn line_starting<'a>(log: &'a str, prefix: &str) -> &'a str {
    let line = log.lines().map(str::trim).find(|line| line.starts_with(prefix));
    line.unwrap_or_else(|| panic!("no `{prefix}` line:\n{log}"))
}

/// `host:port` of the first `http://host:port` in `text`.
fn address_in(text: &str) -> String {
    let start = text.find("http://").unwrap_or_else(|| panic!("no URL in `{text}`")) + "http://".len();
    text[start..].split(['/', ' ']).next().unwrap().to_owned()
}

#[tokio::test]
async fn local_pipeline_runs_prometheus_beside_the_pipeline_and_stops_it_with_the_rest() {
    program("prometheus", "PROMETHEUS_BIN");
    let dir = tempfile::tempdir().unwrap();
    let mut command = crate::local_pipeline::runner(&dir);
    command.arg("--prometheus").env("REPLAY_RATE", "20");
    let mut process = Process::spawn(command, &dir.path().join("runner.log")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !process.log().contains("the pipeline is running") {
        assert!(Instant::now() < deadline, "not running after 90 s:\n{}", process.log());
        assert!(process.try_wait().unwrap().is_none(), "exited:\n{}", process.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = process.log();
    let client = Client::new(&address_in(line_starting(&log, "prometheus:")));
    assert!(line_starting(&log, "dashboard:").contains(DASHBOARD), "{log}");
    let scraper = address_in(line_starting(&log, "metrics:"));
    let inserter = address_in(line_starting(&log, "inserter http://"));

    // Scraping the printed addresses (its first scrape comes within one 15 s interval), with the rules loaded.
    for (job, address) in [("scraper", &scraper), ("inserter", &inserter)] {
        let promql = format!(r#"up{{job="{job}", instance="{address}"}} == 1"#);
        wait_for_series(&client, &promql, &format!("{job} not scraped"), Duration::from_secs(60), || process.log())
            .await;
    }
    let loaded = loaded_alerts(&client).await;
    let defined: BTreeSet<String> = alerts().into_iter().map(|(name, _)| name).collect();
    assert_eq!(loaded.into_keys().collect::<BTreeSet<_>>(), defined);

    process.signal(libc::SIGTERM);
    let status = process.wait(Duration::from_secs(120)).await.unwrap();
    let log = process.log();
    assert!(status.success(), "{log}");
    let inserter_stopped = log.find("inserter exited").unwrap_or_else(|| panic!("{log}"));
    let prometheus_stopped = log.find("stopping Prometheus").unwrap_or_else(|| panic!("{log}"));
    let services_stopped =
        log.find("stopping Kafka Connect, the broker and Postgres").unwrap_or_else(|| panic!("{log}"));
    assert!(inserter_stopped < prometheus_stopped && prometheus_stopped < services_stopped, "{log}");
    assert!(client.api("/api/v1/status/buildinfo", &[]).await.is_err(), "Prometheus is stopped");
    let prometheus_log = std::fs::read_to_string(dir.path().join("logs/prometheus.log")).unwrap();
    assert!(!prometheus_log.is_empty(), "its log is beside the others");
}
