//! The variables the binaries read, taken from their clap definitions.

use clap::CommandFactory;

/// One variable a binary reads.
#[derive(Clone, Debug)]
pub struct Setting {
    pub env: String,
    /// The flags that set it too, as `--name` (and `-x`); `None` for a variable read outside clap.
    pub flags: Option<String>,
    pub default: Option<String>,
    pub required: bool,
    /// A credential, or a value that may carry one: never given a value in the example.
    pub secret: bool,
    /// The one-line help (`-h`).
    pub help: String,
    /// The whole help (`--help`): the one line, what follows it, and the values it takes.
    pub long_help: String,
    pub heading: Option<String>,
}

/// A binary and the variables it reads, in the order of its `--help`.
pub struct Binary {
    pub name: &'static str,
    pub settings: Vec<Setting>,
}

/// The log filter, read by `tracing`'s `EnvFilter` in the scraper and the inserter rather than by a flag.
fn rust_log() -> Setting {
    let help = "The tracing filter, e.g. `info,inserter=debug`; one that does not parse is reported in the first \
                log line, and logging goes on at `info`";
    Setting {
        env: "RUST_LOG".into(),
        flags: None,
        default: Some("info".into()),
        required: false,
        secret: false,
        help: help.into(),
        long_help: help.into(),
        heading: Some("Logging".into()),
    }
}

/// The binaries whose settings the generated files list.
pub fn binaries() -> Vec<Binary> {
    let with_log = |mut settings: Vec<Setting>| {
        settings.push(rust_log());
        settings
    };
    vec![
        Binary { name: "scraper", settings: with_log(settings(&scraper::settings::Settings::command())) },
        Binary { name: "inserter", settings: with_log(settings(&inserter::settings::Settings::command())) },
        Binary { name: "migration retention", settings: settings(&migration::retention::Args::command()) },
    ]
}

/// The variables `command`'s flags (and its subcommands') read.
pub fn settings(command: &clap::Command) -> Vec<Setting> {
    let mut found = Vec::new();
    collect(command, &mut found);
    found
}

fn collect(command: &clap::Command, out: &mut Vec<Setting>) {
    for arg in command.get_arguments() {
        let Some(env) = arg.get_env() else { continue };
        let env = env.to_string_lossy().into_owned();
        if out.iter().any(|s: &Setting| s.env == env) {
            continue;
        }
        let default: Vec<String> = arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        let mut long_help = arg.get_long_help().map_or_else(|| help.clone(), ToString::to_string);
        let values: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|value| !value.is_hide_set())
            .filter_map(|value| Some(format!("`{}`: {}", value.get_name(), value.get_help()?)))
            .collect();
        // Values without a help (a flag's true and false) say nothing the help does not.
        if !values.is_empty() {
            long_help = format!("{long_help}. {}", values.join("; "));
        }
        let flags = arg.get_short().map(|s| format!("`-{s}`, ")).unwrap_or_default()
            + &arg.get_long().map(|l| format!("`--{l}`")).unwrap_or_default();
        out.push(Setting {
            env,
            flags: Some(flags),
            default: (!default.is_empty()).then(|| default.join(",")),
            required: arg.is_required_set(),
            secret: arg.is_hide_env_values_set(),
            help,
            long_help,
            heading: arg.get_help_heading().map(str::to_owned),
        });
    }
    for sub in command.get_subcommands() {
        collect(sub, out);
    }
}
