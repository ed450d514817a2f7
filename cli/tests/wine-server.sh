#!/usr/bin/env bash
# The Windows command (cross-compiled, run under Wine) against a PostgreSQL server, beside
# the Linux command: one named mutex shared by a Windows and a Linux process.
#   cli/tests/wine-server.sh URL PGDIR WINDOWS-EXE [LINUX-BINARY]
# URL is the server tools/pg-server.sh started in PGDIR (its log and CA are read there);
# .ci/windows.sh runs it. Every step is bounded by timeout(1), every holder is waited for
# through a pipe, never a sleep, and the end of sessions is polled, for at most 10 s.
#   1. run over TLS (verify-full, with the server's CA) passes the output and status
#      through, and its exit ends its sessions: the server logs no connection reset
#      (src/sys/pg/at_exit.rs: the C runtime's atexit);
#   2. a Linux holder makes the Windows command's run -n give up (75), and the reverse;
#   3. the Windows holder SIGKILLed: the Linux command's next run is told it died holding.
set -euo pipefail
url=${1:?usage: wine-server.sh URL PGDIR WINDOWS-EXE [LINUX-BINARY]}
pgdir=${2:?usage: wine-server.sh URL PGDIR WINDOWS-EXE [LINUX-BINARY]}
exe=${3:?usage: wine-server.sh URL PGDIR WINDOWS-EXE [LINUX-BINARY]}
nm=${4:-target/debug/namedmutex}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
name="Global\\cli-wine-$$"
script=wine-server.sh
# shellcheck source=support/script.sh
. "$(dirname "${BASH_SOURCE[0]}")/support/script.sh"
# The Windows command, under Wine (as cargo runs the Windows tests).
win=("$repo/tools/wine/run.sh" "$exe")
# The certificate names localhost, not 127.0.0.1.
tls_url="${url/127.0.0.1/localhost}?sslmode=verify-full&sslrootcert=$pgdir/ca.crt"
plain_url="$url?sslmode=disable"

# 1. run over TLS, three times; once their sessions are gone, none of them (the server's
# log names each line's application_name: tools/pg-server.sh) logged a connection reset.
app="wine-exit-$$"
for i in 1 2 3; do
    out=$(t "${win[@]}" --server "$tls_url&application_name=$app" run "$name" -- cmd /c "echo inside&exit 3") \
        && rc=0 || rc=$?
    out=${out%$'\r'}
    [ "$out" = inside ] && [ "$rc" = 3 ] || fail "run $i over TLS: output '$out', status $rc"
done
for _ in $(seq 100); do
    left=$(t psql "$plain_url" -Atc "SELECT count(*) FROM pg_stat_activity WHERE application_name = '$app'")
    [ "$left" = 0 ] && break
    sleep 0.1
done
[ "$left" = 0 ] || fail "the Windows command's sessions outlived it by 10 s ($left left)"
resets=$(grep "app=$app " "$pgdir/log" | grep -c "could not receive data from client" || true)
[ "$resets" = 0 ] || fail "the server logged $resets connection resets from the Windows command"

# 2. A Linux holder: the Windows command gives up at once with 75, naming it.
mkfifo "$work/in" "$work/out"
NAMEDMUTEX_SERVER=$plain_url "$nm" hold "$name" <"$work/in" >"$work/out" 2>&1 &
holder=$!
exec 7>"$work/in"
read -r -t 20 line <"$work/out" || fail "the Linux holder said nothing"
[ "$line" = "held $name" ] || fail "the Linux holder said '$line'"
msg=$(t "${win[@]}" --server "$tls_url" run -n "$name" -- cmd /c exit 0 2>&1) && rc=0 || rc=$?
[ "$rc" = 75 ] || fail "Windows run -n while Linux holds: status $rc ($msg)"
case "$msg" in *"held by pid $holder"*) ;; *) fail "Windows run -n did not name the Linux holder: $msg" ;; esac
exec 7>&-
wait "$holder" || fail "the Linux holder failed"
holder=

# 3. A Windows holder: the Linux command gives up; then it is SIGKILLed, and the Linux
# command's next run is told.
mkfifo "$work/win-in" "$work/win-out"
"${win[@]}" --server "$tls_url" hold "$name" <"$work/win-in" >"$work/win-out" 2>&1 &
holder=$!
exec 7>"$work/win-in"
read -r -t 60 line <"$work/win-out" || fail "the Windows holder said nothing"
line=${line%$'\r'}
[ "$line" = "held $name" ] || fail "the Windows holder said '$line'"
msg=$(t "$nm" --server "$plain_url" run -n "$name" -- true 2>&1) && rc=0 || rc=$?
[ "$rc" = 75 ] || fail "Linux run -n while Windows holds: status $rc ($msg)"
case "$msg" in *"held by pid"*) ;; *) fail "Linux run -n did not name the Windows holder: $msg" ;; esac
kill -9 "$holder"
wait "$holder" 2>/dev/null || true
holder=
exec 7>&-
msg=$(t "$nm" --server "$plain_url" run "$name" -- echo ran 2>&1) && rc=0 || rc=$?
[ "$rc" = 0 ] || fail "Linux run after the Windows holder was killed: status $rc ($msg)"
case "$msg" in *"died without releasing"*ran*) ;; *) fail "Linux run was not told the Windows holder died: $msg" ;; esac
echo "wine-server.sh: the Windows command against $url: all checks passed"
