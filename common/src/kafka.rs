//! Kafka client settings shared by producers and consumers: the bootstrap servers, plus any librdkafka
//! property passed through the environment as `KAFKA_<PROPERTY>` (e.g. `KAFKA_SECURITY_PROTOCOL=ssl`,
//! `KAFKA_SASL_PASSWORD=...`), so that TLS and SASL need no code.

use std::ffi::CString;

use rdkafka::ClientConfig;
use rdkafka::bindings as rd;

/// Environment variables that are ours, not librdkafka properties: the bootstrap servers, and compose's Kafka
/// UI login, which `.env.example` carries beside the binaries' settings.
const NOT_PROPERTIES: &[&str] = &["KAFKA_BOOTSTRAP_SERVERS", "KAFKA_UI_PASSWORD"];

/// A client config for `bootstrap_servers` with every `KAFKA_*` property from `vars` applied. A `KAFKA_*`
/// variable that names no librdkafka property (Kubernetes sets `KAFKA_PORT`, `KAFKA_SERVICE_HOST`, ... for a
/// service named `kafka`) is skipped with a warning that names it, instead of stopping the client.
pub fn client_config(bootstrap_servers: &str, vars: impl IntoIterator<Item = (String, String)>) -> ClientConfig {
    let (config, skipped) = split_config(bootstrap_servers, vars);
    if !skipped.is_empty() {
        tracing::warn!(?skipped, "KAFKA_* variables that name no librdkafka property: skipped");
    }
    config
}

/// [`client_config`], and the variables it skipped.
fn split_config(
    bootstrap_servers: &str,
    vars: impl IntoIterator<Item = (String, String)>,
) -> (ClientConfig, Vec<String>) {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap_servers);
    let mut skipped = Vec::new();
    for (name, value) in vars {
        match property_name(&name) {
            Some(property) if is_property(&property) => {
                config.set(property, value);
            }
            Some(_) => skipped.push(name),
            None => {}
        }
    }
    skipped.sort();
    (config, skipped)
}

/// Whether librdkafka knows `property` (whatever the value: a bad value still fails where the client is made,
/// with librdkafka's message).
fn is_property(property: &str) -> bool {
    let Ok(name) = CString::new(property) else { return false };
    // The empty value is refused as invalid by some properties, never as unknown.
    let value = CString::default();
    let mut error = [0 as std::ffi::c_char; 512];
    // SAFETY: a fresh configuration, set once and destroyed; the strings and the buffer outlive the calls.
    unsafe {
        let conf = rd::rd_kafka_conf_new();
        let result = rd::rd_kafka_conf_set(conf, name.as_ptr(), value.as_ptr(), error.as_mut_ptr(), error.len());
        rd::rd_kafka_conf_destroy(conf);
        result != rd::rd_kafka_conf_res_t::RD_KAFKA_CONF_UNKNOWN
    }
}

/// `KAFKA_SASL_MECHANISMS` -> `sasl.mechanisms`.
fn property_name(var: &str) -> Option<String> {
    if NOT_PROPERTIES.contains(&var) {
        return None;
    }
    let rest = var.strip_prefix("KAFKA_")?;
    (!rest.is_empty()).then(|| rest.to_ascii_lowercase().replace('_', "."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_names_become_librdkafka_properties() {
        assert_eq!(property_name("KAFKA_SASL_MECHANISMS").as_deref(), Some("sasl.mechanisms"));
        assert_eq!(property_name("KAFKA_SECURITY_PROTOCOL").as_deref(), Some("security.protocol"));
        assert_eq!(property_name("KAFKA_BOOTSTRAP_SERVERS"), None);
        assert_eq!(property_name("KAFKA_UI_PASSWORD"), None);
        assert_eq!(property_name("KAFKA_"), None);
        assert_eq!(property_name("DATABASE_URL"), None);
    }

    #[test]
    fn bootstrap_servers_and_passed_properties_are_set() {
        let config = client_config(
            "broker:9092",
            [("KAFKA_CLIENT_ID".to_owned(), "x".to_owned()), ("HOME".to_owned(), "/root".to_owned())],
        );
        assert_eq!(config.get("bootstrap.servers"), Some("broker:9092"));
        assert_eq!(config.get("client.id"), Some("x"));
        assert_eq!(config.get("home"), None);
    }

    #[test]
    fn kubernetes_service_variables_are_skipped_by_name() {
        let vars = [
            ("KAFKA_PORT", "tcp://10.0.0.7:9092"),
            ("KAFKA_SERVICE_HOST", "10.0.0.7"),
            ("KAFKA_PORT_9092_TCP_ADDR", "10.0.0.7"),
            ("KAFKA_SECURITY_PROTOCOL", "plaintext"),
            ("KAFKA_LINGER_MS", "20"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let (config, skipped) = split_config("broker:9092", vars);
        assert_eq!(skipped, ["KAFKA_PORT", "KAFKA_PORT_9092_TCP_ADDR", "KAFKA_SERVICE_HOST"]);
        assert_eq!(config.get("security.protocol"), Some("plaintext"));
        assert_eq!(config.get("linger.ms"), Some("20"));
        assert_eq!(config.get("port"), None);
        // What stopped both binaries at start-up: the client is made.
        let producer: Result<rdkafka::producer::BaseProducer, _> = config.create();
        assert!(producer.is_ok(), "{:?}", producer.err());
    }
}
