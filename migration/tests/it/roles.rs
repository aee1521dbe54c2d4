//! The pipeline's roles as compose makes them: `docker/postgres/roles.sql` run as the superuser, each role's
//! password its initial.

use testkit::Postgres;

/// The role's password that [`apply`] sets.
pub fn password(role: &str) -> &'static str {
    match role {
        "ingest_owner" => "o",
        "inserter" => "i",
        "debezium" => "d",
        "analyst" => "a",
        "redriver" => "r",
        other => panic!("roles.sql makes no role {other}"),
    }
}

/// Runs roles.sql on `database`; a failure fails the test with psql's error.
pub fn apply(pg: &Postgres, database: &str) {
    let output = pg
        .psql(database)
        .args(["-v", "owner_password=o", "-v", "inserter_password=i", "-v", "debezium_password=d"])
        .args(["-v", "analyst_password=a", "-v", "redriver_password=r", "-f"])
        .arg(testkit::stack::repository_root().join("docker/postgres/roles.sql"))
        .output()
        .unwrap();
    assert!(output.status.success(), "roles.sql: {}", String::from_utf8_lossy(&output.stderr));
}

/// `postgres://role:password@.../database`.
pub fn url(pg: &Postgres, role: &str, database: &str) -> String {
    pg.url_as(role, password(role), database)
}
