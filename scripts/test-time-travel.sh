#!/usr/bin/env bash
# Runs the test suite (scripts/test.sh, with any nextest arguments after the offset) with the wall clock moved
# ahead, to show that no test depends on the day it runs: partitions, retention and windows follow the clock.
#   scripts/test-time-travel.sh +45d
#   scripts/test-time-travel.sh +400d -E 'package(migration)'
# Only the test processes and what they start see the moved clock (libfaketime, through cargo's target runner
# scripts/moved-clock/run.sh): cargo and nextest keep the real one. librdkafka needs a shim beside
# libfaketime (scripts/moved-clock/cnd_timedwait.c), built here. One test does not run with the clock moved
# (it says so): under libfaketime Postgres's statement timeout does not reliably fire, and that test is about
# the timeout, not about any date.
set -euo pipefail
cd "$(dirname "$0")/.."
offset=${1:?usage: scripts/test-time-travel.sh <offset, e.g. +45d> [nextest arguments]}
shift
scripts/install-test-deps.sh

shim=$PWD/target/moved-clock/cnd_timedwait.so
mkdir -p "$(dirname "$shim")"
cc -O2 -shared -fPIC -Wall -Wextra -Werror -o "$shim" scripts/moved-clock/cnd_timedwait.c -ldl

triple=$(rustc -vV | sed -n 's/^host: //p')
runner_var="CARGO_TARGET_$(printf '%s' "$triple" | tr 'a-z-' 'A-Z_')_RUNNER"
export "$runner_var=$PWD/scripts/moved-clock/run.sh" MOVED_CLOCK_OFFSET="$offset" MOVED_CLOCK_SHIM="$shim"
printf '[test-time-travel] the tests run on %s\n' "$(scripts/moved-clock/run.sh date -u '+%F %T UTC')" >&2
exec scripts/test.sh "$@"
