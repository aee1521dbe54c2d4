#!/usr/bin/env bash
# cargo's target runner for scripts/test-time-travel.sh: runs a test binary ("$@") with the wall clock moved
# by $MOVED_CLOCK_OFFSET (libfaketime's syntax: +45d, +400d, +12h). The services a test starts (Postgres, the
# broker, the pipeline's binaries) inherit the preload and see the same clock. The monotonic clock is left as
# it is, so timeouts, intervals and backoffs keep their lengths. $MOVED_CLOCK_SHIM is cnd_timedwait.c built by
# scripts/test-time-travel.sh (see there why librdkafka needs it).
set -euo pipefail
: "${MOVED_CLOCK_OFFSET:?set by scripts/test-time-travel.sh}" "${MOVED_CLOCK_SHIM:?set by scripts/test-time-travel.sh}"
faketime=/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1
exec env LD_PRELOAD="$MOVED_CLOCK_SHIM:$faketime${LD_PRELOAD:+:$LD_PRELOAD}" FAKETIME="$MOVED_CLOCK_OFFSET" \
    FAKETIME_DONT_FAKE_MONOTONIC=1 "$@"
