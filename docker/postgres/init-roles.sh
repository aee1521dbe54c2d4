#!/bin/sh
# Mounted into /docker-entrypoint-initdb.d/ of the postgres image: runs once, when the data volume is first
# initialised, against the temporary server the entrypoint starts (unix socket, as POSTGRES_USER, in
# POSTGRES_DB). Creates the pipeline's roles with roles.sql, which compose mounts outside the init directory
# so that the entrypoint does not also run it on its own, without its variables.
#
# The passwords come from the container's environment (INGEST_OWNER_PASSWORD, INSERTER_DB_PASSWORD,
# DEBEZIUM_DB_PASSWORD, ANALYST_DB_PASSWORD, and REDRIVER_DB_PASSWORD if set) into psql variables through
# psql's \getenv, so they never appear on a command line.
#
# Changing a password later: roles.sql is idempotent; run it again, e.g.
#   docker compose exec postgres sh /docker-entrypoint-initdb.d/10-init-roles.sh
# after changing the variables and recreating the container (`docker compose up -d postgres`).
#
# Works both executed and sourced (the entrypoint sources .sh files that are not executable): no `exit`,
# no shell options changed; a missing password or a psql error fails the entrypoint either way.

: "${INGEST_OWNER_PASSWORD:?init-roles: INGEST_OWNER_PASSWORD must be set and non-empty}"
: "${INSERTER_DB_PASSWORD:?init-roles: INSERTER_DB_PASSWORD must be set and non-empty}"
: "${DEBEZIUM_DB_PASSWORD:?init-roles: DEBEZIUM_DB_PASSWORD must be set and non-empty}"
: "${ANALYST_DB_PASSWORD:?init-roles: ANALYST_DB_PASSWORD must be set and non-empty}"

ingest_roles_sql="${INGEST_ROLES_SQL:-/etc/ingest/roles.sql}"
echo "init-roles: applying $ingest_roles_sql to database ${POSTGRES_DB:-postgres}"

psql -v ON_ERROR_STOP=1 --no-psqlrc \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    -c '\getenv owner_password INGEST_OWNER_PASSWORD' \
    -c '\getenv inserter_password INSERTER_DB_PASSWORD' \
    -c '\getenv debezium_password DEBEZIUM_DB_PASSWORD' \
    -c '\getenv analyst_password ANALYST_DB_PASSWORD' \
    -c '\getenv redriver_password REDRIVER_DB_PASSWORD' \
    -f "$ingest_roles_sql"
