//! Kafka client settings shared by producers and consumers: the bootstrap servers, plus any librdkafka
//! property passed through the environment as `KAFKA_<PROPERTY>` (e.g. `KAFKA_SECURITY_PROTOCOL=ssl`,
//! `KAFKA_SASL_PASSWORD=...`), so that TLS and SASL need no code.

use rdkafka::ClientConfig;

/// Environment variables that are ours, not librdkafka properties.
const NOT_PROPERTIES: &[&str] = &["KAFKA_BOOTSTRAP_SERVERS"];

/// A client config for `bootstrap_servers` with every `KAFKA_*` property from `vars` applied.
pub fn client_config(bootstrap_servers: &str, vars: impl IntoIterator<Item = (String, String)>) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap_servers);
    for (name, value) in vars {
        if let Some(property) = property_name(&name) {
            config.set(property, value);
        }
    }
    config
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
}
