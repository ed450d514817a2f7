#!/usr/bin/env bash
# The whole test suite, as the README's second command: Linux (unit, backend, behavioural,
# CLI and doc tests), then the Windows backend under Wine and the type checks for macOS and
# FreeBSD (.ci/windows.sh installs Wine, mingw-w64 and the rustup targets when missing).
#
# Some Linux tests need root (PID namespaces with unshare, files of other users); run as a
# normal user they say "skipped" and why.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "==> cargo test --workspace (Linux)"
cargo test --workspace

# Reliability (RELIABILITY.md): the workspace run above already ran tests/reliability
# (chaos for 30 s, exhaustion, hostile users, bad files); the crash points need the
# fault-injection build. Then a short fuzz run (tools/fuzz.sh installs cargo-fuzz if missing).
echo "==> cargo test --features fault-injection --test reliability -- fault::"
cargo test --features fault-injection --test reliability -- fault::
echo "==> tools/fuzz.sh 20"
./tools/fuzz.sh 20

echo "==> Windows backend under Wine, and cross-platform type checks"
bash .ci/windows.sh
