#!/usr/bin/env bash
# Processes of a glibc build and of the static musl build of namedmutex sharing mutexes, as
# happens when both are installed on one machine (their lifelines have different layouts,
# and each must read the other's):
#   cli/tests/cross-libc.sh GLIBC-BINARY MUSL-BINARY
# (tools/test-all.sh runs it). Every step is bounded by timeout(1), and every holder is
# waited for through a pipe, never a sleep.
set -euo pipefail
glibc=${1:?usage: cross-libc.sh GLIBC-BINARY MUSL-BINARY}
musl=${2:?usage: cross-libc.sh GLIBC-BINARY MUSL-BINARY}
script=cross-libc.sh
# shellcheck source=support/script.sh
. "$(dirname "${BASH_SOURCE[0]}")/support/script.sh"

# One build holds (hold prints "held NAME"); the other is refused at once (75) and sees the
# holder; the holder is SIGKILLed; the other build is told once that it died.
check() {
    local holds=$1 other=$2 what=$3 name="cross-libc-$$-$3"
    mkfifo "$work/$what.in" "$work/$what.out"
    "$holds" hold "$name" <"$work/$what.in" >"$work/$what.out" 2>&1 &
    holder=$!
    exec 7>"$work/$what.in"
    read -r -t 20 line <"$work/$what.out" || fail "$what: the holder said nothing"
    [ "$line" = "held $name" ] || fail "$what: the holder said '$line'"
    msg=$(t "$other" run -n "$name" -- true 2>&1) && rc=0 || rc=$?
    [ "$rc" = 75 ] || fail "$what: run -n on a held lock: status $rc ($msg)"
    case "$msg" in *"held by pid $holder"*) ;; *) fail "$what: the holder is not named: $msg" ;; esac
    local dead=$holder
    kill -9 "$holder"
    wait "$holder" 2>/dev/null || true
    holder=
    exec 7>&-
    msg=$(t "$other" run "$name" -- echo ran 2>&1) && rc=0 || rc=$?
    [ "$rc" = 0 ] || fail "$what: run after the kill: status $rc ($msg)"
    case "$msg" in
        *"pid $dead"*"died without releasing"*) ;;
        *) fail "$what: the run after the kill was not told who died: $msg" ;;
    esac
    msg=$(t "$holds" run --on-abandoned fail "$name" -- true 2>&1) && rc=0 || rc=$?
    [ "$rc" = 0 ] || fail "$what: the abandonment was reported twice: status $rc ($msg)"
}

check "$musl" "$glibc" musl-holds
check "$glibc" "$musl" glibc-holds
echo "cross-libc.sh: ok (glibc and musl processes exclude each other and report each other's deaths)"
