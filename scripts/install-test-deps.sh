#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine, and nothing that is already there:
#   - the PostgreSQL 15 server binaries (the tests start throwaway clusters from them) and pg_partman 4.7
#     (postgresql-15-partman, which the partitioned tables need; the compose image installs the same version),
#   - Apache Kafka, Kafka Connect and the Debezium Postgres connector, at compose's versions, from Maven Central
#     (scripts/install-kafka.sh; OpenJDK 17 and Maven from Debian if missing): the tests start the broker and
#     Connect as JVM processes,
#   - cargo-nextest (the test runner: one process per test, so every test gets its own services),
#   - Debian's Prometheus (`promtool` checks the compose stack's Prometheus files; the observability test runs
#     `prometheus` itself against the pipeline),
#   - libfaketime (scripts/test-time-travel.sh runs the tests with the clock moved ahead).
# Idempotent: a second run on a warm machine takes a second.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
# Debian bookworm's; the compose image (docker/postgres/Dockerfile) pins the same one. The migrations need 4.x.
PARTMAN_PACKAGE=postgresql-15-partman=4.7.2-1

log() { printf '[install-test-deps] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if [ ! -x "$PG_BIN/postgres" ] || [ ! -x "$PG_BIN/initdb" ]; then
    log "installing the PostgreSQL 15 server (postgresql-15)"
    as_root apt-get update -qq
    # The tests start their own clusters; the package's default cluster is not needed.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15
fi

if [ ! -f /usr/share/postgresql/15/extension/pg_partman.control ]; then
    log "installing pg_partman ($PARTMAN_PACKAGE)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$PARTMAN_PACKAGE"
fi

if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    log "installing Prometheus (prometheus: promtool and the server)"
    as_root apt-get update -qq
    # The package's postinst starts its own server on :9090 through invoke-rc.d wherever there is no systemd
    # (a container, CI). The tests start theirs on free ports, so a policy-rc.d that refuses every start keeps
    # the package's from ever running; one that is already there is left as it is.
    policy=/usr/sbin/policy-rc.d
    added_policy=false
    if [ ! -e "$policy" ]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
        added_policy=true
    fi
    status=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus || status=$?
    if $added_policy; then as_root rm -f "$policy"; fi
    [ "$status" -eq 0 ] || exit "$status"
    # Under a policy that let it start, stop it: nothing of the package's may hold :9090.
    if [ -x /etc/init.d/prometheus ] && /etc/init.d/prometheus status >/dev/null 2>&1; then
        as_root /etc/init.d/prometheus stop >/dev/null || true
    fi
fi

if [ ! -f /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ]; then
    log "installing libfaketime (faketime)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends faketime
fi

# Building rdkafka's bundled librdkafka needs a C toolchain, make and perl; all are on this machine kind's
# image, so only say so if one is missing rather than reaching for apt.
for tool in cc make perl; do
    command -v "$tool" >/dev/null || { log "missing $tool: apt-get install build-essential perl"; exit 1; }
done

# librdkafka's TLS/SASL support (rdkafka's `ssl` feature) links the system's OpenSSL.
if ! dpkg -s libssl-dev pkg-config >/dev/null 2>&1; then
    log "installing libssl-dev and pkg-config (librdkafka's TLS support)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libssl-dev pkg-config
fi

if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
    log "installing OpenJDK 17 and Maven (openjdk-17-jdk-headless, maven)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless maven
fi
# The shared test broker's keeper locks with util-linux's flock.
command -v flock >/dev/null || { log "missing flock: apt-get install util-linux"; exit 1; }
"$(dirname "$0")/install-kafka.sh"

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

if ! cargo nextest --version >/dev/null 2>&1; then
    log "installing cargo-nextest"
    cargo install cargo-nextest --locked
fi

log "ready: $("$PG_BIN/postgres" --version), Kafka $(. "$(dirname "$0")/kafka-versions.env"; echo "$KAFKA_VERSION, Debezium $DEBEZIUM_VERSION"), $(cargo nextest --version | head -1), $(prometheus --version 2>&1 | head -1)"
