#!/usr/bin/env bash
# Where the time of an uncontended acquire + release on PostgreSQL goes (bench/README.md,
# "PostgreSQL: 1.5x the bare pair"). pgbench, one connection, prepared statements,
# synchronous_commit off, runs the two calls the library makes (try_acquire, then release)
# with the functions as shipped, with the calls cut to one single-row UPDATE each
# (pg_floor/minimal_write.sql), with no write at all (pg_floor/no_write.sql), and the bare
# advisory-lock pair; rounds interleaved, 5 s each. Then the server's own time in each
# shipped function (track_functions). A scratch server (tools/pg-server.sh, fsync on) is
# started for it and stopped at the end.
#
# Usage (as root, from anywhere): bench/profile/pg_floor.sh [ROUNDS]
# Needs the command built (cargo build -p namedmutex-cli): its first use installs the
# schema, and again after the variants, to put the shipped functions back.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
here=bench/profile/pg_floor
cli=${NAMEDMUTEX_CLI:-target/debug/namedmutex}
[ -x "$cli" ] || { echo "pg_floor.sh: build the command first (cargo build -p namedmutex-cli)" >&2; exit 1; }
dir=$(mktemp -d /tmp/nm-pg-floor.XXXXXX)
chmod 755 "$dir"
url=$(NAMEDMUTEX_TEST_PG_FSYNC=on tools/pg-server.sh start "$dir/pg")
trap 'tools/pg-server.sh stop "$dir/pg"; rm -rf "$dir"' EXIT
port=${url##*:}
port=${port%%/*}
sql() { psql -h 127.0.0.1 -p "$port" -U postgres -qAt -v ON_ERROR_STOP=1 "$@" postgres; }
"$cli" --server "$url" run pg-floor -- true
id=$(sql -c "SELECT id FROM namedmutex.mutex WHERE name = 'pg-floor'")

run() { # variant label: install the variant, then one pgbench run; prints the latency
    case $1 in
        shipped) sql -c "DROP FUNCTION namedmutex.revision()" && "$cli" --server "$url" run pg-floor -- true ;;
        minimal_write | no_write) sql -f "$here/$1.sql" ;;
    esac
    local script=$here/calls.sql
    [ "$1" = bare ] && script=$here/bare.sql
    PGOPTIONS="-c synchronous_commit=off" pgbench -h 127.0.0.1 -p "$port" -U postgres -n -M prepared \
        -D id="$id" -f "$script" -T 5 postgres 2>/dev/null |
        sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p'
}

declare -A seen
variants=(shipped minimal_write no_write bare)
for r in $(seq "$rounds"); do
    for v in "${variants[@]}"; do
        ms=$(run "$v")
        seen[$v]="${seen[$v]:-} $(awk -v ms="$ms" 'BEGIN { printf "%.0f", ms * 1000 }')"
    done
done
echo "acquire + release, µs per pair (pgbench latency average; $rounds rounds, interleaved):"
for v in "${variants[@]}"; do printf '  %-14s %s\n' "$v" "${seen[$v]}"; done

# The server's own time in each shipped function (track_functions, one more 5 s run): what
# the functions add to the round trips, without the client's and the network's share.
sql -c "DROP FUNCTION namedmutex.revision()" && "$cli" --server "$url" run pg-floor -- true
sql -c "SELECT pg_stat_reset()" >/dev/null
PGOPTIONS="-c synchronous_commit=off -c track_functions=all" pgbench -h 127.0.0.1 -p "$port" \
    -U postgres -n -M prepared -D id="$id" -f "$here/calls.sql" -T 5 postgres >/dev/null 2>&1
sleep 1 # the statistics collector's report
echo "server time per call of the shipped functions, µs (total, of which in the function itself):"
sql -F ' ' -c "SELECT '  ' || rpad(funcname, 14), round((total_time * 1000 / calls)::numeric, 1),
                      round((self_time * 1000 / calls)::numeric, 1)
               FROM pg_stat_user_functions WHERE calls > 0 ORDER BY total_time DESC"
