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
    let variables = [
        ("owner_password", password("ingest_owner")),
        ("inserter_password", password("inserter")),
        ("debezium_password", password("debezium")),
        ("analyst_password", password("analyst")),
        ("redriver_password", password("redriver")),
    ];
    let roles_sql = testkit::stack::repository_root().join("docker/postgres/roles.sql");
    testkit::stack::apply_roles_sql(pg, database, &roles_sql, &variables).unwrap();
}

/// `postgres://role:password@.../database`.
pub fn url(pg: &Postgres, role: &str, database: &str) -> String {
    pg.url_as(role, password(role), database)
}
