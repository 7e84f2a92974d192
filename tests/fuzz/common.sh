# Shared by tests/fuzz/run and tests/fuzz/coverage (sourced, not executed).
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FUZZ_DIR=$ROOT/fuzz
OUT=$ROOT/build/fuzz
FIXTURES=${PLAT_FIXTURES:-$ROOT/../shared/fixtures}
ALL_TARGETS=(bootinfo dtb_structured bootmap rsi)

# A missing prerequisite fails under CI=true, else skips (exit 0).
skip() {
    if [ "${CI:-}" = true ]; then
        echo "FAILED: $1 (CI=true: prerequisites are required)" >&2
        exit 1
    fi
    echo "SKIPPED: $1"
    exit 0
}

check_prereqs() {
    command -v cargo >/dev/null || skip "cargo not found"
    rustup toolchain list 2>/dev/null | grep -q '^nightly' ||
        skip "no nightly toolchain (rustup toolchain install nightly)"
    command -v python3 >/dev/null || skip "python3 not found (needed to write seeds)"
    if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
        echo "cargo-fuzz not found: installing it (cargo install cargo-fuzz --locked, into ~/.cargo/bin)"
        cargo +nightly install cargo-fuzz --locked >&2 ||
            skip "cargo-fuzz is not installed and could not be installed"
    fi
    compgen -G "$FIXTURES/dtb/*/*.dtb" >/dev/null ||
        skip "no fixtures in $FIXTURES/dtb (set PLAT_FIXTURES)"
}

write_seeds() {
    python3 "$ROOT/tests/fuzz/seeds.py" "$FIXTURES" "$OUT/corpus"
}
