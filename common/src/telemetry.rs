//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`), human-readable or JSON lines.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per event, for log shippers.
    Json,
}

/// Installs the global subscriber. Call once, first thing in `main`. A `RUST_LOG` that does not parse is
/// reported in the first log line, and logging goes on at `info`.
pub fn init(format: LogFormat) {
    let (filter, problem) = filter(std::env::var("RUST_LOG").ok().as_deref());
    // Colour codes only for a person at a terminal, never in files or log shippers.
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
    }
    if let Some(problem) = problem {
        tracing::warn!(%problem, "RUST_LOG is invalid: logging at info");
    }
}

/// The filter `rust_log` gives (`info` when unset or empty), and why it was not taken, if it was not.
fn filter(rust_log: Option<&str>) -> (EnvFilter, Option<String>) {
    match rust_log.filter(|text| !text.trim().is_empty()) {
        None => (EnvFilter::new("info"), None),
        Some(text) => match EnvFilter::try_new(text) {
            Ok(filter) => (filter, None),
            Err(e) => (EnvFilter::new("info"), Some(format!("`{text}`: {e}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::filter;

    #[test]
    fn a_bad_rust_log_is_reported_and_logging_goes_on_at_info() {
        let (filter_, problem) = filter(Some("inserter=loud"));
        assert_eq!(filter_.to_string(), "info");
        assert!(problem.as_deref().is_some_and(|p| p.contains("inserter=loud")), "{problem:?}");
        assert_eq!(filter(Some("debug,librdkafka=warn")).1, None);
        assert_eq!(filter(Some("debug,librdkafka=warn")).0.to_string(), "librdkafka=warn,debug");
        assert_eq!(filter(None).0.to_string(), "info");
        assert_eq!(filter(Some("")).1, None);
    }
}
