#!/usr/bin/env bash
# Builds everything and runs the whole test suite; exits non-zero when anything fails.
#
# Under CI (CI=true) insta refuses to write snapshots, so a changed output fails the run instead
# of being accepted silently.
set -euo pipefail

log() { printf 'test: %s\n' "$*" >&2; }

cd "$(dirname "$0")/.."

# rustup's cargo, when the calling shell has not put it on PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
    log "error: cargo not found; run ./scripts/setup.sh for what the machine needs"
    exit 1
fi

log "running: cargo build --workspace --all-targets --locked"
cargo build --workspace --all-targets --locked

log "running: cargo test --workspace --locked --no-fail-fast"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
set +e
cargo test --workspace --locked --no-fail-fast | tee "$out"
status=${PIPESTATUS[0]}
set -e

# cargo's last line is the doc-tests' own count (often 0), so close with the whole suite's total.
awk '/^test result:/ {
        for (i = 1; i <= NF; i++) {
            if ($(i) ~ /^passed/) p += $(i - 1)
            if ($(i) ~ /^failed/) f += $(i - 1)
            if ($(i) ~ /^ignored/) s += $(i - 1)
        }
    }
    END { printf "total: %d passed, %d failed, %d skipped\n", p, f, s }' "$out"
exit "$status"
