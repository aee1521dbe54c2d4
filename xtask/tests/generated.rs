//! The generated files are current: a flag added, renamed or given another default without
//! `cargo xtask settings` fails here, and so in CI.

use std::path::PathBuf;

#[test]
fn the_files_generated_from_the_flags_are_current() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let stale = xtask::out_of_date(&root).unwrap();
    assert!(stale.is_empty(), "out of date: {} (run `cargo xtask settings` and commit the result)", stale.join(", "));
}

#[test]
fn a_variable_two_binaries_read_with_other_defaults_is_refused() {
    let setting = |default: &str| xtask::Setting {
        env: "PROGRESS_INTERVAL".into(),
        flags: Some("`--progress-interval`".into()),
        default: Some(default.into()),
        required: false,
        secret: false,
        help: "How often".into(),
        long_help: "How often".into(),
        heading: None,
    };
    let binaries = [
        xtask::Binary { name: "a", settings: vec![setting("30s")] },
        xtask::Binary { name: "b", settings: vec![setting("10s")] },
    ];
    let error = xtask::env_example(&binaries, "").unwrap_err().to_string();
    assert!(error.contains("PROGRESS_INTERVAL has different defaults"), "{error}");
}

#[test]
fn compose_keeps_what_it_sets_and_lists_every_other_variable_bare() {
    let compose = "services:\n  scraper:\n    image: x\n    environment:\n      # why\n      KAFKA_BOOTSTRAP_SERVERS: kafka:29092\n      # dropped\n      OLD_NAME:\n    networks: [a]\n  other:\n    environment:\n      A: b\n";
    let names = ["KAFKA_BOOTSTRAP_SERVERS".to_owned(), "NEW_NAME".to_owned()];
    let out = xtask::compose_environment(compose, "scraper", &names).unwrap();
    assert_eq!(
        out,
        "services:\n  scraper:\n    image: x\n    environment:\n      # why\n      KAFKA_BOOTSTRAP_SERVERS: kafka:29092\n      NEW_NAME:\n    networks: [a]\n  other:\n    environment:\n      A: b\n"
    );
}

#[test]
fn every_repository_path_a_file_cites_exists() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let missing = xtask::missing_paths(&root).unwrap();
    let lines: Vec<String> = missing.iter().map(|(file, path)| format!("{file} cites {path}")).collect();
    assert!(missing.is_empty(), "paths that do not exist:\n- {}", lines.join("\n- "));
}
