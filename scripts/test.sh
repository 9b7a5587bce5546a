#!/usr/bin/env bash
# scripts/test.sh — THE ringex test command (README "Quick start", .ci/run).
#
# On a fresh Debian machine with only the Rust toolchain it installs what
# the tests need, then runs every check in order and stops at the first
# failure, naming the step that failed.
#
#   bash scripts/test.sh            # set-up, then every step
#   bash scripts/test.sh clippy     # set-up, then only the named step(s)
#   bash scripts/test.sh --list     # list the steps
#
# To add a step: write a `step_<name>` function (and, if it needs tools, a
# `setup_<name>` function) below, then append <name> to STEPS (or SETUPS).
# Planned: setup_python_venv (FIX interop tests), setup_chromium (web UI).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [[ "${CI:-}" == "true" ]]; then
    export CARGO_TERM_COLOR=never
fi

# Set-up functions run first, in this order; each must be idempotent.
SETUPS=(rust_components)
# WebSocket gateway tests: a Python `websockets` client and headless Chromium.
SETUPS+=(python_websockets chromium)
# FIX interop tests: the official QuickFIX engine (Python `quickfix`) as initiator.
SETUPS+=(quickfix)
# Checks, in this order.
STEPS=(fmt clippy doc test fuzz)

CURRENT_STEP=""
PASSED=()
START_TIME=$SECONDS

section() {
    printf '\n==== %s ====\n' "$*"
}

die() {
    printf 'test.sh: %s\n' "$*" >&2
    exit 1
}

on_exit() {
    local status=$?
    [[ -n "$CURRENT_STEP" ]] || return 0
    if [[ $status -ne 0 ]]; then
        printf '\ntest.sh: FAILED in step "%s" (exit status %d)\n' "$CURRENT_STEP" "$status" >&2
    else
        printf '\ntest.sh: passed (%s) in %ds\n' "${PASSED[*]}" "$((SECONDS - START_TIME))"
    fi
}
trap on_exit EXIT

# ---------------------------------------------------------------- set-up

setup_rust_components() {
    # rustup installs into ~/.cargo/bin, which a non-login shell may not have on PATH.
    if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
        export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found: install the Rust toolchain first (https://rustup.rs)"
    local missing=()
    cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
    cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
    if [[ ${#missing[@]} -gt 0 ]]; then
        command -v rustup >/dev/null 2>&1 ||
            die "missing Rust components (${missing[*]}) and no rustup to install them; install them with your toolchain's package manager"
        echo "installing Rust components: ${missing[*]}"
        rustup component add "${missing[@]}" ||
            die "'rustup component add ${missing[*]}' failed (no network to static.rust-lang.org?); install the components by hand and re-run"
    fi
    cargo --version
    cargo fmt --version
    cargo clippy --version
}

setup_python_websockets() {
    # gateways/tests/ws_python.rs drives the gateway with the `websockets` package.
    command -v python3 >/dev/null 2>&1 || {
        command -v apt-get >/dev/null 2>&1 || die "python3 is missing and there is no apt-get to install it"
        apt-get update -qq && apt-get install -y -qq python3 python3-pip >/dev/null
    }
    if ! python3 -c 'import websockets' >/dev/null 2>&1; then
        echo "installing the Python websockets package"
        python3 -m pip install --quiet 'websockets>=12' 2>/dev/null ||
            python3 -m pip install --quiet --break-system-packages 'websockets>=12' ||
            die "could not install the Python websockets package"
    fi
    python3 -c 'import websockets; print("python websockets", websockets.__version__)'
}

setup_chromium() {
    # gateways/tests/ws_browser.rs loads the monitor page in headless Chromium.
    if ! command -v chromium >/dev/null 2>&1; then
        command -v apt-get >/dev/null 2>&1 || die "chromium is missing and there is no apt-get to install it"
        echo "installing Debian's chromium"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null ||
            die "could not install chromium"
    fi
    chromium --version
}

setup_quickfix() {
    # gateways/tests/fix_interop.rs drives the FIX gateway with the QuickFIX
    # engine (Python `quickfix`). It builds from source (10-20 min), so its
    # virtual environment lives in a cache outside the checkout and is
    # rebuilt only when `import quickfix` fails there.
    local venv="${RINGEX_QUICKFIX_VENV:-$HOME/.cache/ringex/quickfix-venv}"
    if "$venv/bin/python" -c 'import quickfix' >/dev/null 2>&1; then
        echo "quickfix present in $venv"
        return 0
    fi
    local need=()
    command -v python3 >/dev/null 2>&1 || need+=(python3)
    command -v g++ >/dev/null 2>&1 || need+=(g++)
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
    local include
    include="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null || true)"
    [[ -n "$include" && -f "$include/Python.h" ]] || need+=(python3-dev)
    if [[ ${#need[@]} -gt 0 ]]; then
        command -v apt-get >/dev/null 2>&1 || die "missing ${need[*]} to build quickfix and no apt-get to install them"
        echo "installing Debian packages: ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
            die "could not install ${need[*]}"
    fi
    mkdir -p "$(dirname "$venv")"
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv" || die "could not create the venv $venv"
    echo "building the Python quickfix package into $venv (10-20 minutes; log: $venv.build.log)"
    "$venv/bin/python" -m pip install quickfix >"$venv.build.log" 2>&1 ||
        die "pip install quickfix failed; see $venv.build.log"
    "$venv/bin/python" -c 'import quickfix' || die "quickfix built but does not import"
}

# ---------------------------------------------------------------- steps

step_fmt() {
    cargo fmt --all --check
}

step_clippy() {
    cargo clippy --workspace --all-targets -- -D warnings
}

step_doc() {
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps
}

step_test() {
    # Optimised (the property tests and long command streams are CPU-heavy)
    # but without release's LTO: see [profile.ci] in Cargo.toml.
    cargo test --workspace --profile ci
}

step_fuzz() {
    # A short coverage-guided run of every fuzz target (fuzz/, outside the
    # workspace). cargo-fuzz comes from crates.io; libFuzzer's sanitizer
    # flags need RUSTC_BOOTSTRAP on the stable toolchain.
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "installing cargo-fuzz from crates.io"
        cargo install cargo-fuzz --locked
    fi
    local seconds=${FUZZ_SECONDS:-20} target
    # One build of every target first: they share the sanitized dependencies.
    (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build)
    for target in $(cd fuzz && cargo fuzz list); do
        echo "fuzzing ${target} for ${seconds}s"
        (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- \
            -max_total_time="$seconds" -max_len=8192 -print_final_stats=1)
    done
}

# ---------------------------------------------------------------- driver

run() {
    local kind=$1 name=$2
    CURRENT_STEP="$kind: $name"
    section "$kind: $name"
    local started=$SECONDS
    "${kind}_${name}"
    printf -- '---- %s: %s ok (%ds)\n' "$kind" "$name" "$((SECONDS - started))"
    if [[ $kind == step ]]; then
        PASSED+=("$name")
    fi
}

main() {
    local selected=()
    if [[ $# -gt 0 && "$1" == "--list" ]]; then
        printf 'setup: %s\nsteps: %s\n' "${SETUPS[*]}" "${STEPS[*]}"
        return 0
    fi
    if [[ $# -gt 0 ]]; then
        local name
        for name in "$@"; do
            declare -F "step_${name}" >/dev/null || die "unknown step '${name}' (steps: ${STEPS[*]})"
        done
        selected=("$@")
    else
        selected=("${STEPS[@]}")
    fi
    local s
    for s in "${SETUPS[@]}"; do
        run setup "$s"
    done
    for s in "${selected[@]}"; do
        run step "$s"
    done
    CURRENT_STEP="done"
}

main "$@"
