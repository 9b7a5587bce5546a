#!/usr/bin/env bash
# perf/device/many-core.sh — the measurements two cores cannot show, in one
# bounded run on a many-core machine (16 cores or more): the pipeline with
# the dedicated-server preset (stages pinned to cores 2, 3 and 4 and
# busy-spinning) at 1M, 2M and 5M commands/s, the FIX round trip and
# per-session throughput with the same preset and with its stages fused on
# one pinned core, WebSocket fan-out at 10,000 subscribers, and the
# single-thread engine on a quiet core.
#
# The machine may have no network (no crates.io), so build here and carry
# the binary:
#
#   cargo build --release -p ringex-perf
#   mkdir -p target/device && cp target/release/ringex-perf target/device/
#   strip target/device/ringex-perf          # fits the 64 MiB a copy may carry
#
# then run on the machine, from the repository root, with OUT set to a
# folder that comes back:
#
#   OUT=/some/folder bash perf/device/many-core.sh target/device/ringex-perf
#
# Every step has a time limit (STEP_LIMIT seconds, default 150); the whole
# run takes about 7 minutes. Results: one folder per step under $OUT, plus
# $OUT/summary.txt with every step's table and $OUT/machine.txt.
set -uo pipefail

BIN=${1:-target/device/ringex-perf}
OUT=${OUT:?set OUT to the folder for the results}
LIMIT=${STEP_LIMIT:-150}
[[ -x "$BIN" ]] || { echo "no executable $BIN (see the header of $0)" >&2; exit 2; }
mkdir -p "$OUT"
CPUS=$(nproc)
if (( CPUS < 8 )); then
    echo "this machine has $CPUS CPUs; the dedicated preset needs 3 spinning stages plus room for the load" >&2
    exit 2
fi

{
    echo "date: $(date -u +%FT%TZ)"
    echo "cpus: $CPUS"
    grep -m1 'model name' /proc/cpuinfo
    uname -r
    free -g | head -2
    cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null || echo "governor: not exposed"
} > "$OUT/machine.txt"

status=0
step() {
    local name=$1; shift
    echo "==== $name: $*" | tee -a "$OUT/summary.txt"
    local started=$SECONDS
    timeout --kill-after=10 "$LIMIT" "$BIN" "$@" --out "$OUT/$name" >"$OUT/$name.log" 2>&1
    local rc=$?
    # The table, without the JSON line.
    grep -v '^{' "$OUT/$name.log" | tail -40 >> "$OUT/summary.txt"
    echo "---- $name: exit $rc in $((SECONDS - started)) s" | tee -a "$OUT/summary.txt"
    (( rc == 0 )) || status=1
}

# The engine alone, one thread, on a quiet machine (issue: 10 M / 20 M cmds/s).
step core core --commands 3000000 --runs 5 --warmup 1 --json
# The pipeline pinned and spinning (issue: >= 5 M/s sustained, p99 < 10 us at 1 M/s).
step pipeline-write pipeline --config dedicated-server --durability write \
    --rate 1000000,2000000,5000000 --duration 5 --warmup 1 --max-commands 40000000 --json
step pipeline-none pipeline --config dedicated-server --durability none \
    --rate 1000000,5000000 --duration 5 --warmup 1 --max-commands 40000000 --json
# Journal append next to a raw sequential write (issue: >= 50%).
step journal journal --durability none,write,fsync-batch --duration 2 --warmup 0.5 --json
# FIX round trip vs TCP ping-pong, and orders/s per session (issue: p99 within
# 2x TCP, >= 200,000 orders/s through one session).
step fix fix --config dedicated-server --durability write \
    --rate 10000,50000,100000,200000 --sessions 1,10 --duration 2 --warmup 0.5 --json
# The same with the three stages fused on one pinned, spinning core (2):
# which of the two layouts wins once every thread has a core.
printf '[pipeline]\npreset = "dedicated-server"\nstage_threads = "fused"\n' > "$OUT/fused-pinned.toml"
step fix-fused fix --config "$OUT/fused-pinned.toml" --durability write \
    --rate 10000,50000,100000,200000 --sessions 1,10 --duration 2 --warmup 0.5 --json
# WebSocket fan-out at 1,000 and 10,000 subscribers, 100,000 updates/s.
step ws ws --config dedicated-server --subscribers 1000,10000 --rate 100000 \
    --duration 5 --warmup 1 --json

echo "results in $OUT (exit $status)"
exit $status
