#!/usr/bin/env bash
# Instructions per measured command of Engine::apply on the ringex-perf core
# stream, counted by callgrind (docs/performance.md, section 1).
#
# usage: scripts/callgrind-per-command.sh [on|off] [commands] [keep|new]
#
# (the last: which client order id the stream's moves carry, as
# `ringex-perf core --move-ids`; default keep)
#
# profile_engine applies the stream's setup and then `commands` measured
# commands to five fresh engines. Collection is switched on only inside the
# Engine::apply it calls (not the one the stream generator uses to track its
# book), once with `commands` and once with 0; the difference divided by
# 5 x commands is the cost of one measured command, setup excluded.
# Build first: cargo build --release -p ringex-perf --example profile_engine
set -euo pipefail
mode=${1:-off}
commands=${2:-200000}
move_ids=${3:-keep}
bin=${CARGO_TARGET_DIR:-target}/release/examples/profile_engine
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The mangled name of the Engine::apply that main calls: read from the raw
# profile (uncompressed names), the calls (`cfn=`) made inside main's
# blocks (`fn=`). callgrind_annotate's caller tree does not always list main
# as a caller once inlining spreads apply over several source files.
valgrind --tool=callgrind --demangle=no --compress-strings=no \
    --callgrind-out-file="$tmp/probe" "$bin" "$mode" 2000 "$move_ids" >/dev/null 2>&1
symbol=$(awk '
    /^fn=/ { in_main = /profile_engine4main/ }
    /^cfn=/ && in_main && /Engine5apply/ && !found {
        match($0, /_ZN11ringex_core6engine6Engine5apply17h[0-9a-f]*E/)
        print substr($0, RSTART, RLENGTH); found = 1
    }' "$tmp/probe")
[ -n "$symbol" ] || { echo "could not find Engine::apply called from main" >&2; exit 1; }

collected() {
    valgrind --tool=callgrind --demangle=no --collect-atstart=no \
        --toggle-collect="$symbol" --callgrind-out-file="$tmp/out" \
        "$bin" "$mode" "$1" "$move_ids" 2>&1 | awk '/Collected/ { gsub(",", "", $4); print $4 }'
}
full=$(collected "$commands")
setup=$(collected 0)
echo "risk $mode, moves $move_ids ids: Engine::apply $full Ir with $commands commands x 5, $setup Ir setup only"
echo "instructions per measured command: $(( (full - setup) / (5 * commands) ))"
