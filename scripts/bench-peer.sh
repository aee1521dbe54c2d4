#!/usr/bin/env bash
# Installs what the drain bench's peers need (`cargo bench -p inserter --bench drain`):
#   - for the Python peer (`--peer PATH`): confluent-kafka (the Kafka consumer, with its bundled librdkafka) and
#     psycopg with its binary libpq (`psycopg[binary]`), for COPY into Postgres, into the user's site-packages
#     with pip, and nothing that is already importable;
#   - Debezium's JDBC sink connector, from Maven Central (`scripts/install-kafka.sh --jdbc-sink`).
# A second run does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-kafka.sh --jdbc-sink

PYTHON=${PYTHON:-python3}

log() { printf '[bench-peer] %s\n' "$*" >&2; }

command -v "$PYTHON" >/dev/null || { log "missing $PYTHON: apt-get install python3 python3-pip"; exit 1; }

if "$PYTHON" -c 'import confluent_kafka, psycopg' 2>/dev/null; then
    log "already installed: nothing to do"
else
    "$PYTHON" -m pip --version >/dev/null 2>&1 || { log "missing pip: apt-get install python3-pip"; exit 1; }
    log "installing confluent-kafka and psycopg[binary] with pip (--user)"
    pip_args=(install --user --quiet 'confluent-kafka' 'psycopg[binary]')
    # Debian's externally managed Python refuses --user installs without this flag (pip >= 23.0).
    if "$PYTHON" -m pip install --help 2>/dev/null | grep -q -- '--break-system-packages' \
        && [ -e "$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')/EXTERNALLY-MANAGED" ]; then
        pip_args+=(--break-system-packages)
    fi
    # Root on a CI machine: the warning about running pip as root says nothing here.
    PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 "$PYTHON" -m pip "${pip_args[@]}"
    "$PYTHON" -c 'import confluent_kafka, psycopg' || { log "installed, but still not importable by $PYTHON"; exit 1; }
fi

log "ready: $("$PYTHON" -c 'import confluent_kafka, psycopg
print(f"confluent-kafka {confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]}), psycopg {psycopg.__version__} ({psycopg.pq.__impl__} libpq)")')"
