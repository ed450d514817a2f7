#!/usr/bin/env bash
# The C ABI from C and Python: installs the library into a temporary prefix (capi/install.sh),
# builds tests/c/capi_test.c and examples/hello.c with gcc through pkg-config (the shared
# library, then the static one), runs them with a private NAMEDMUTEX_ROOT, and runs the
# Python ctypes example. Installs pkg-config with apt-get when missing.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if ! command -v pkg-config >/dev/null; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends pkg-config >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$here/install.sh" "$work/prefix" >/dev/null
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
export NAMEDMUTEX_ROOT="$work/root"
mkdir -m 0700 "$NAMEDMUTEX_ROOT"

echo "==> C test, shared library"
gcc -Wall -Wextra -Werror -o "$work/capi_test" "$here/tests/c/capi_test.c" \
    $(pkg-config --cflags --libs namedmutex) -lpthread
LD_LIBRARY_PATH="$work/prefix/lib" "$work/capi_test"

echo "==> C test, static library"
gcc -Wall -Wextra -Werror -o "$work/capi_test_static" "$here/tests/c/capi_test.c" \
    $(pkg-config --cflags namedmutex) "$work/prefix/lib/libnamedmutex.a" \
    $(pkg-config --libs-only-l --static namedmutex | sed 's/-lnamedmutex//') -lpthread
"$work/capi_test_static"

echo "==> README examples: C and Python"
gcc -Wall -Werror -o "$work/hello" "$here/examples/hello.c" $(pkg-config --cflags --libs namedmutex)
out=$(LD_LIBRARY_PATH="$work/prefix/lib" "$work/hello")
[ "$out" = "ours" ] || { echo "hello.c printed: $out" >&2; exit 1; }
out=$(python3 "$here/examples/hello.py" "$work/prefix/lib/libnamedmutex.so")
[ "$out" = "ours" ] || { echo "hello.py printed: $out" >&2; exit 1; }
echo "C ABI: all passed"
