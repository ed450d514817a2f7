#!/usr/bin/env bash
# The Windows backend, built and tested from Linux: cross-compiled with mingw-w64 and run
# under Wine (tools/wine/README.md); with NAMEDMUTEX_TEST_PG_URL and NAMEDMUTEX_TEST_PG_DIR
# set (tools/test-all.sh sets them), the PostgreSQL backend on Windows too. Also
# type-checks the crate for macOS and FreeBSD, which compile the `unsupported` backend.
#
# Works on a fresh Debian 12 machine with rustup, gcc and python; installs what is missing
# (apt packages, rustup targets) and does nothing for what is there. Runs as root, or with
# sudo available for apt-get.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

. "$repo/tools/step.sh"

# --- Tools ---------------------------------------------------------------------------
apt_packages=(wine wine64 gcc-mingw-w64-x86-64 binutils-mingw-w64-x86-64)
if ! command -v wine >/dev/null || ! command -v wineboot >/dev/null \
    || ! command -v x86_64-w64-mingw32-gcc >/dev/null; then
    step "installing ${apt_packages[*]}"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi
for tool in wine wineboot wineserver x86_64-w64-mingw32-gcc flock cmp; do
    command -v "$tool" >/dev/null || { echo "windows.sh: $tool is missing" >&2; exit 1; }
done

targets=(x86_64-pc-windows-gnu x86_64-apple-darwin x86_64-unknown-freebsd)
installed=$(rustup target list --installed)
for t in "${targets[@]}"; do
    if ! grep -qx "$t" <<<"$installed"; then
        step "rustup target add $t"
        rustup target add "$t"
    fi
done

# --- Windows, under Wine ----------------------------------------------------------------
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$repo/tools/wine/run.sh"

step "cargo build --target x86_64-pc-windows-gnu"
cargo build --target x86_64-pc-windows-gnu

# Doctests are left out: rustdoc runs them without the runner.
step "cargo test --target x86_64-pc-windows-gnu --lib --tests (under Wine)"
timeout 1800 cargo test --target x86_64-pc-windows-gnu --lib --tests
step "cargo test --target x86_64-pc-windows-gnu -p namedmutex-cli --test windows (under Wine)"
timeout 600 cargo test --target x86_64-pc-windows-gnu -p namedmutex-cli --test windows

# --- The PostgreSQL backend on Windows, against the server tools/test-all.sh started ------
# (NAMEDMUTEX_TEST_PG_URL and NAMEDMUTEX_TEST_PG_DIR, as tools/pg-server.sh made them): the
# behavioural suite, and the Windows command beside the Linux one on one server.
if [ -n "${NAMEDMUTEX_TEST_PG_URL:-}" ] && [ -n "${NAMEDMUTEX_TEST_PG_DIR:-}" ]; then
    step "cargo test --target x86_64-pc-windows-gnu --features postgres --test behaviour, on PostgreSQL (under Wine)"
    NAMEDMUTEX_SERVER="$NAMEDMUTEX_TEST_PG_URL?sslmode=disable" timeout 900 \
        cargo test --target x86_64-pc-windows-gnu --features postgres --test behaviour
    step "cli/tests/wine-server.sh (the Windows command under Wine and the Linux one, on PostgreSQL)"
    cargo build -q --target x86_64-pc-windows-gnu -p namedmutex-cli
    cargo build -q -p namedmutex-cli
    target_dir=${CARGO_TARGET_DIR:-$repo/target}
    cli/tests/wine-server.sh "$NAMEDMUTEX_TEST_PG_URL" "$NAMEDMUTEX_TEST_PG_DIR" \
        "$target_dir/x86_64-pc-windows-gnu/debug/namedmutex.exe" "$target_dir/debug/namedmutex"
fi

# --- Platforms without a backend: must still compile ---------------------------------
for t in x86_64-apple-darwin x86_64-unknown-freebsd; do
    step "cargo check --target $t"
    cargo check --target "$t"
done

step "windows.sh: all passed"
