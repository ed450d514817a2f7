#!/usr/bin/env bash
# The lock protocol's in-process tests (src/protocol/heap/: real threads on heap memory)
# under Miri, which reports data races and undefined behaviour, for Linux and for the
# targets of the portable backend (macOS on aarch64, FreeBSD), and that backend's wait/wake
# shims. Several scheduling seeds per target. Installs the nightly toolchain, Miri and the standard library's sources if missing.
#
#     ./tools/miri.sh            # about 3 minutes
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. tools/step.sh

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
rustup component add --toolchain nightly miri rust-src
for t in x86_64-unknown-linux-gnu aarch64-apple-darwin x86_64-unknown-freebsd; do
    step "Miri: cargo +nightly miri test --lib --target $t protocol::heap (8 seeds)"
    MIRIFLAGS="-Zmiri-many-seeds=0..8" \
        cargo +nightly miri test -q -p namedmutex --lib --target "$t" protocol::heap
done
# The portable backend's wait/wake shims on a heap word with threads: macOS's os_sync calls
# (looked up with dlsym) and FreeBSD's _umtx_op, as Miri emulates them.
for t in aarch64-apple-darwin x86_64-unknown-freebsd; do
    step "Miri: cargo +nightly miri test --lib --target $t portable::shim (4 seeds)"
    MIRIFLAGS="-Zmiri-many-seeds=0..4" \
        cargo +nightly miri test -q -p namedmutex --lib --target "$t" portable::shim
done
