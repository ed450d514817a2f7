#!/usr/bin/env bash
# Cargo runner for x86_64-pc-windows-gnu: runs a Windows executable under Wine.
#
#   CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=tools/wine/run.sh \
#       cargo test --target x86_64-pc-windows-gnu --lib --tests
#
# Cargo calls it as `run.sh <exe> <args>...`. It
#   1. builds bcryptprimitives.dll from tools/wine/bcryptprimitives.c with mingw-w64 when
#      missing or stale (Wine 8 lacks that DLL, which Rust's std imports: see the .c file),
#      puts a copy beside the executable, in its deps/ directory and in the profile directory
#      above deps/, and adds the DLL's own directory to WINEPATH for any other program;
#   2. uses a Wine prefix of its own under the target directory (initialised once, quietly);
#   3. runs the executable with `wine`, and exits with its exit code.
#
# Environment: NAMEDMUTEX_WINEPREFIX overrides the prefix; CARGO_TARGET_DIR (if set) says
# where the target directory is, as it does for cargo. The program gets
# NAMEDMUTEX_UNDER_WINE=1 (read by tests/behaviour).
set -euo pipefail

if [ "$#" -lt 1 ]; then
    echo "usage: $0 <windows-exe> [args...]" >&2
    exit 2
fi
exe=$1
shift

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
case "$target_dir" in /*) ;; *) target_dir=$repo/$target_dir ;; esac
state=$target_dir/wine
mkdir -p "$state"

# Serialise the one-time work (building the DLL, initialising the prefix) between runners
# that cargo or a user starts at the same time.
exec 9>"$state/.lock"
flock 9

# 1. The ProcessPrng shim.
dll=$state/bcryptprimitives.dll
src=$here/bcryptprimitives.c
if [ ! -f "$dll" ] || [ "$src" -nt "$dll" ]; then
    x86_64-w64-mingw32-gcc -O2 -shared -s -Wall -o "$dll.tmp" "$src" -ladvapi32
    mv -f "$dll.tmp" "$dll"
fi
exe_dir=$(cd "$(dirname "$exe")" && pwd)
place_dll() {
    local dir=$1
    [ -d "$dir" ] || return 0
    if ! cmp -s "$dll" "$dir/bcryptprimitives.dll"; then
        cp -f "$dll" "$dir/bcryptprimitives.dll.tmp.$$"
        mv -f "$dir/bcryptprimitives.dll.tmp.$$" "$dir/bcryptprimitives.dll"
    fi
}
place_dll "$exe_dir"
place_dll "$exe_dir/deps"
case "$(basename "$exe_dir")" in
    # Tests in deps/ may start binaries of the same build (target/<triple>/debug/).
    deps | examples) place_dll "$(dirname "$exe_dir")" ;;
esac

# Programs started from anywhere else (a test's child in another directory) find the DLL on
# the Windows PATH: Wine maps Z: to /.
export WINEPATH="Z:${state//\//\\}${WINEPATH:+;$WINEPATH}"

# 2. The prefix.
export WINEPREFIX=${NAMEDMUTEX_WINEPREFIX:-$state/prefix}
export WINEDEBUG=${WINEDEBUG:--all}
# No Mono or Gecko: nothing here needs them, and their installers would try the network.
export WINEDLLOVERRIDES=${WINEDLLOVERRIDES:-mscoree=;mshtml=}
if [ ! -f "$WINEPREFIX/system.reg" ]; then
    echo "run.sh: initialising the Wine prefix $WINEPREFIX (once)" >&2
    mkdir -p "$WINEPREFIX"
    wineboot -i >/dev/null 2>&1 || true
    wineserver -w || true
    if [ ! -f "$WINEPREFIX/system.reg" ]; then
        echo "run.sh: wineboot did not create $WINEPREFIX" >&2
        exit 1
    fi
fi
flock -u 9
exec 9>&-

# 3. Run it; `exec` hands the exit code straight back to cargo. The behavioural suite
# (tests/behaviour) expects Wine's answers, where semantics.md lists them, when told so.
export NAMEDMUTEX_UNDER_WINE=1
exec wine "$exe" "$@"
