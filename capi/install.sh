#!/usr/bin/env bash
# Builds the C library (release) and installs it under PREFIX (default /usr/local):
# lib/libnamedmutex.{so,a}, include/namedmutex.h, lib/pkgconfig/namedmutex.pc.
#   capi/install.sh [PREFIX]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prefix=${1:-/usr/local}
cd "$here/.."
cargo build --release -q -p namedmutex-capi
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -1)
mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
install -m 0644 "$target/release/libnamedmutex_capi.a" "$prefix/lib/libnamedmutex.a"
install -m 0755 "$target/release/libnamedmutex_capi.so" "$prefix/lib/libnamedmutex.so"
install -m 0644 "$here/include/namedmutex.h" "$prefix/include/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" "$here/namedmutex.pc.in" \
    > "$prefix/lib/pkgconfig/namedmutex.pc"
echo "installed namedmutex $version under $prefix"
