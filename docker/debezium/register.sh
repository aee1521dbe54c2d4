#!/bin/sh
# Registers (or updates) the Debezium connector `ingest-postgres` with Kafka Connect, then waits until the
# connector and its task run and prints their status. Idempotent: PUT /connectors/NAME/config creates the
# connector (201) or replaces its configuration (200), so it can run on every `docker compose up`.
#
# POSIX sh (the curlimages/curl image has busybox, no bash and no jq). Settings from the environment:
#   CONNECT_URL       Kafka Connect's REST API          (default http://connect:8083)
#   CONNECTOR_NAME    the connector's name              (default ingest-postgres)
#   CONNECTOR_CONFIG  the JSON configuration to PUT     (default: ingest-postgres.json next to this script)
#   REGISTER_ATTEMPTS attempts of the PUT, 5 s apart    (default 12)
#   RUNNING_TIMEOUT   seconds to wait for RUNNING       (default 120)
#
# The configuration holds `${env:DEBEZIUM_DB_PASSWORD}`, which Connect's EnvVarConfigProvider resolves
# inside the worker: the password is in neither this file, the request, nor Connect's REST responses.
set -eu

CONNECT_URL="${CONNECT_URL:-http://connect:8083}"
CONNECTOR_NAME="${CONNECTOR_NAME:-ingest-postgres}"
CONNECTOR_CONFIG="${CONNECTOR_CONFIG:-$(dirname "$0")/ingest-postgres.json}"
REGISTER_ATTEMPTS="${REGISTER_ATTEMPTS:-12}"
RUNNING_TIMEOUT="${RUNNING_TIMEOUT:-120}"

if [ ! -r "$CONNECTOR_CONFIG" ]; then
    echo "register: cannot read $CONNECTOR_CONFIG" >&2
    exit 1
fi

# PUT the configuration; retry on connection errors and non-2xx answers (Connect answers 409 while its
# workers rebalance, and 400 when validation cannot reach Postgres yet).
attempt=1
while :; do
    # The body, then the status code on a line of its own.
    if response=$(curl -sS -X PUT -H 'Content-Type: application/json' -H 'Accept: application/json' \
        --data-binary "@$CONNECTOR_CONFIG" -w '\n%{http_code}' \
        "$CONNECT_URL/connectors/$CONNECTOR_NAME/config"); then
        code=$(printf '%s\n' "$response" | tail -n 1)
        body=$(printf '%s\n' "$response" | sed '$d')
    else
        code=000
        body="(no answer from $CONNECT_URL)"
    fi
    case "$code" in
        200) echo "register: updated the configuration of connector $CONNECTOR_NAME"; break ;;
        201) echo "register: created connector $CONNECTOR_NAME"; break ;;
        2??) echo "register: PUT answered HTTP $code"; break ;;
    esac
    echo "register: PUT $CONNECT_URL/connectors/$CONNECTOR_NAME/config answered HTTP $code" \
        "(attempt $attempt of $REGISTER_ATTEMPTS): $body" >&2
    if [ "$attempt" -ge "$REGISTER_ATTEMPTS" ]; then
        echo "register: giving up" >&2
        exit 1
    fi
    attempt=$((attempt + 1))
    sleep 5
done

# Wait until the connector and its task are RUNNING; fail if either FAILED (the status then carries the
# worker's stack trace: a wrong password, a missing publication, wal_level not logical...).
waited=0
while :; do
    status=$(curl -sS "$CONNECT_URL/connectors/$CONNECTOR_NAME/status" || true)
    compact=$(printf '%s' "$status" | tr -d ' \n\t')
    running=$(printf '%s' "$compact" | grep -o '"state":"RUNNING"' | wc -l | tr -d ' ')
    case "$compact" in
        *'"state":"FAILED"'*)
            echo "register: connector $CONNECTOR_NAME failed: $status" >&2
            exit 1 ;;
    esac
    # One state for the connector, one for its task.
    if [ "$running" -ge 2 ]; then
        echo "register: connector $CONNECTOR_NAME is running: $status"
        exit 0
    fi
    if [ "$waited" -ge "$RUNNING_TIMEOUT" ]; then
        echo "register: connector $CONNECTOR_NAME not running after ${RUNNING_TIMEOUT}s: $status" >&2
        exit 1
    fi
    sleep 2
    waited=$((waited + 2))
done
