#!/usr/bin/env bash
# Instructions per measured command of Engine::apply on the ringex-perf core
# stream, counted by callgrind (docs/performance.md, section 1).
#
# usage: scripts/callgrind-per-command.sh [on|off] [commands]
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
bin=${CARGO_TARGET_DIR:-target}/release/examples/profile_engine
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The mangled name of the Engine::apply that main calls (its caller tree).
valgrind --tool=callgrind --demangle=no --callgrind-out-file="$tmp/probe" \
    "$bin" "$mode" 2000 >/dev/null 2>&1
symbol=$(callgrind_annotate --tree=caller "$tmp/probe" 2>/dev/null | awk '
    /^ *$/ { from_main = 0 }
    /< .*profile_engine4main/ { from_main = 1 }
    /\* .*Engine5apply/ && from_main && !found {
        # No early exit: that would cut callgrind_annotate off (SIGPIPE).
        match($0, /_ZN11ringex_core6engine6Engine5apply17h[0-9a-f]*E/)
        print substr($0, RSTART, RLENGTH); found = 1
    }')
[ -n "$symbol" ] || { echo "could not find Engine::apply called from main" >&2; exit 1; }

collected() {
    valgrind --tool=callgrind --demangle=no --collect-atstart=no \
        --toggle-collect="$symbol" --callgrind-out-file="$tmp/out" \
        "$bin" "$mode" "$1" 2>&1 | awk '/Collected/ { gsub(",", "", $4); print $4 }'
}
full=$(collected "$commands")
setup=$(collected 0)
echo "risk $mode: Engine::apply $full Ir with $commands commands x 5, $setup Ir setup only"
echo "instructions per measured command: $(( (full - setup) / (5 * commands) ))"
