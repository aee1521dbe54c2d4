#!/usr/bin/env bash
# Where each microsecond of a row goes while the inserter drains the topic: runs the drain bench
# (`cargo bench -p inserter --bench drain`, its arguments after --), and over SECONDS of the inserter's drain
# samples every process of the machine with `perf record -a` and, with call graphs, the busiest Postgres
# backend. Prints CPU by process and the backend's time by what it was doing, both as shares; the bench's own
# output gives the rows/s to turn them into microseconds a row.
#
#   scripts/profile-drain.sh [--seconds 5] [-- BENCH ARGS]       e.g.  scripts/profile-drain.sh -- --records 400000
#
# Needs perf (apt-get install linux-perf) and the rights to sample every process (root, or
# kernel.perf_event_paranoid <= -1). Writes perf's data to $PROFILE_DIR (default: a new temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=5
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) seconds=$2; shift 2 ;;
        --) shift; break ;;
        *) printf 'usage: %s [--seconds N] [-- BENCH ARGS]\n' "$0" >&2; exit 2 ;;
    esac
done
bench_args=("$@")
[ ${#bench_args[@]} -gt 0 ] || bench_args=(--records 400000)

log() { printf '[profile-drain] %s\n' "$*" >&2; }
command -v perf >/dev/null || { log "missing perf: apt-get install linux-perf"; exit 1; }

dir=${PROFILE_DIR:-$(mktemp -d)}
mkdir -p "$dir"
log "building the bench"
cargo bench -p inserter --bench drain --no-run >/dev/null 2>&1
log "running: cargo bench -p inserter --bench drain -- ${bench_args[*]} (output in $dir/bench.out)"
cargo bench -p inserter --bench drain -- "${bench_args[@]}" >"$dir/bench.out" 2>"$dir/bench.err" &
bench=$!

# The bench says "inserter..." when it starts the inserter; the group's join and the first batches take
# about two seconds more.
until grep -q '^inserter\.\.\.' "$dir/bench.err" 2>/dev/null; do
    kill -0 "$bench" 2>/dev/null || { cat "$dir/bench.err" >&2; log "the bench ended before the inserter ran"; exit 1; }
    sleep 0.2
done
sleep 2.5
backend=$(ps -eo pid,comm,args --sort=-pcpu | awk '$2 == "postgres" && $0 ~ /INSERT|idle in transaction|127\.0\.0\.1/ {print $1; exit}')
log "sampling every process for ${seconds}s, and Postgres backend $backend with call graphs"
perf record -q -a -o "$dir/machine.data" -- sleep "$seconds" 2>/dev/null &
machine=$!
perf record -q -F 499 --call-graph dwarf,16384 -p "$backend" -o "$dir/backend.data" -- sleep "$seconds" 2>/dev/null || true
wait "$machine" || true
wait "$bench"
cat "$dir/bench.out"

echo
echo "CPU by process over ${seconds}s of the inserter's drain (share of all samples of the 2 cores; swapper = idle):"
perf report -i "$dir/machine.data" --sort comm --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -12
echo
echo "The Postgres backend's time by what it was doing (share of its own samples, children included):"
perf report -i "$dir/backend.data" --children --sort sym --stdio 2>/dev/null \
    | grep -E '^ +[0-9.]+% +[0-9.]+% +\[' \
    | grep -E ' (exec_bind_message|array_recv|jsonb_recv|pg_parse_json|PortalRun|ExecInsertIndexTuples|btinsert|gininsert|heap_insert|ExecCheckIndexConstraints|XLogInsert|XLogFlush|__x64_sys_pwrite64|ExecScan|CommitTransaction|pq_getmessage)$' \
    | awk '!seen[$NF]++'
log "perf data in $dir (perf report -i $dir/machine.data / backend.data)"
