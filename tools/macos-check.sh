#!/usr/bin/env bash
# Lints the workspace for macOS (Intel and Apple silicon) with its default features, the
# command's TLS included, on Linux: `tools/macos-check.sh [extra clippy args]`. ring's C
# is compiled by clang against the stand-in headers of tools/macos-headers (type-checking
# only: nothing is linked). Installs clang from Debian if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang >/dev/null; then
    echo "==> apt-get install clang (ring's C for macOS targets)" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang >&2
fi
headers=$PWD/tools/macos-headers
for t in x86_64-apple-darwin aarch64-apple-darwin; do
    rustup target list --installed | grep -qx "$t" || rustup target add "$t"
    u=${t//-/_}
    echo "==> cargo clippy --workspace --exclude namedmutex-bench --all-targets --target $t (TLS included) -- -D warnings"
    env "CC_$u=clang" "CFLAGS_$u=-nostdlibinc -isystem $headers" \
        cargo clippy -q --workspace --exclude namedmutex-bench --all-targets --target "$t" "$@" -- -D warnings
done
