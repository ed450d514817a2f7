#!/usr/bin/env bash
# The main job, from a shell: one process holds a named mutex and is killed with SIGKILL
# while holding it; the next `namedmutex run` is told who died, and proceeds.
# Usage: tools/demo.sh   (builds target/release/namedmutex if needed)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
nm=target/release/namedmutex
[ -x "$nm" ] || cargo build --release -q -p namedmutex-cli
name="demo-$$"

echo "\$ namedmutex hold $name &        # a process takes the lock and keeps it"
coproc HOLDER { exec "$nm" hold "$name"; }
read -r -t 20 line <&"${HOLDER[0]}" \
    || { echo "demo: the holder did not take the lock within 20 s" >&2; exit 1; }  # "held NAME"
echo "$line (pid $HOLDER_PID)"

echo
echo "\$ namedmutex run --timeout 200ms $name -- echo hello"
"$nm" run --timeout 200ms "$name" -- echo hello || echo "(exit status $?: still held)"

echo
echo "\$ namedmutex list"
"$nm" list

echo
echo "\$ namedmutex run --timeout 10s $name -- echo 'hello: the lock is mine' &   # waits"
"$nm" run --timeout 10s "$name" -- echo "hello: the lock is mine" &
waiter=$!
# Let it start waiting (it only matters for the show: if it came later, it would find the
# object gone with its last holder, and simply create a new one).
for _ in $(seq 100); do
    "$nm" info --json "$name" | grep -q '"waiters": *[1-9]' && break
    sleep 0.05
done

echo
echo "\$ kill -KILL $HOLDER_PID             # the holder dies without releasing"
kill -KILL "$HOLDER_PID"; wait "$HOLDER_PID" 2>/dev/null || true
wait "$waiter"
echo
echo "\$ namedmutex info $name"
"$nm" info "$name" || true
