#!/usr/bin/env bash
# Runs the whole pipeline on this machine without a container engine: Postgres 15 (wal_level=logical) with
# compose's roles and the migrated `ingest` database, Apache Kafka (one KRaft node), Kafka Connect with the
# Debezium connector registered by docker/debezium/register.sh (its change topics are postgres.public.<table>),
# the scraper (replay by default) and the inserter; with --prometheus also Debian's Prometheus, with the compose
# stack's jobs and alert rules (docker/prometheus) pointed at the two binaries. Kafka and Connect run from the
# jars scripts/install-kafka.sh installs (compose's releases). Ctrl-C stops it in order; the data is thrown away.
#
#   scripts/run-local.sh                       # free ports; no source set: replay of the synthetic generator
#   REPLAY_RATE=200 scripts/run-local.sh --pg-port 5433 --kafka-port 9092 --connect-port 8083
#   SCRAPER_SOURCES=bluesky scripts/run-local.sh   # live Bluesky posts (Jetstream), no account needed
#   X_BEARER_TOKEN=... SSE_URL=https://mastodon.social/api/v1/streaming/public scripts/run-local.sh
#   scripts/run-local.sh --prometheus --prometheus-port 9090   # prints Prometheus's URL; the dashboard
#                                              # (docker/grafana/dashboards) imports into any Grafana
#
# Flags go to `local-pipeline` (see `scripts/run-local.sh --help`); the scraper and the inserter read the
# environment as documented in the README.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
cargo build --release -p scraper -p inserter -p migration -p testkit
exec "${CARGO_TARGET_DIR:-target}/release/local-pipeline" "$@"
