#!/usr/bin/env bash
# The namedmutex command against a PostgreSQL server, as a shell script uses it:
#   cli/tests/server.sh URL [NAMEDMUTEX-BINARY]
# (tools/test-all.sh runs it with the server it started). Every step is bounded by timeout(1)
# and every holder is waited for through a pipe, never a sleep.
set -euo pipefail
url=${1:?usage: server.sh URL [BINARY]}
nm=${2:-target/debug/namedmutex}
name="cli-server-$$"
script=server.sh
# shellcheck source=support/script.sh
. "$(dirname "${BASH_SOURCE[0]}")/support/script.sh"

# 1. run passes the command's output and status through.
out=$(t "$nm" --server "$url" run "$name" -- sh -c 'echo inside; exit 3') && rc=0 || rc=$?
[ "$out" = inside ] && [ "$rc" = 3 ] || fail "run: output '$out', status $rc"

# 2. A holder (through NAMEDMUTEX_SERVER): run -n gives up at once with 75, naming it.
mkfifo "$work/in" "$work/out"
NAMEDMUTEX_SERVER=$url "$nm" hold "$name" <"$work/in" >"$work/out" 2>&1 &
holder=$!
exec 7>"$work/in"          # keeps the holder's stdin open
read -r -t 20 line <"$work/out" || fail "the holder said nothing"
[ "$line" = "held $name" ] || fail "holder said '$line'"
msg=$(t "$nm" --server "$url" run -n "$name" -- true 2>&1) && rc=0 || rc=$?
[ "$rc" = 75 ] || fail "run -n on a held lock: status $rc ($msg)"
case "$msg" in *"held by pid $holder"*) ;; *) fail "run -n did not name the holder: $msg" ;; esac

# 3. list --json shows the holder's pid; info -q says it is held (status 1).
t "$nm" --server "$url" list --json | grep -q "\"pid\": *$holder" || fail "list --json lacks pid $holder"
t "$nm" --server "$url" info -q "$name" && rc=0 || rc=$?
[ "$rc" = 1 ] || fail "info -q of a held lock: status $rc"

# 4. SIGKILL the holder: the next run is told (warning) and runs; --on-abandoned fail
# would have exited 79, but the report is given once only.
dead=$holder
kill -9 "$holder"
wait "$holder" 2>/dev/null || true
holder=
exec 7>&-
t "$nm" --server "$url" info -q "$name" && rc=0 || rc=$?
[ "$rc" = 3 ] || fail "info -q after the holder was killed: status $rc, not 3 (abandoned)"
msg=$(t "$nm" --server "$url" run "$name" -- echo ran 2>&1) && rc=0 || rc=$?
[ "$rc" = 0 ] || fail "run after the kill: status $rc ($msg)"
case "$msg" in *"pid $dead"*"died without releasing"*) ;; *) fail "run after the kill was not told who died: $msg" ;; esac
msg=$(t "$nm" --server "$url" run --on-abandoned fail "$name" -- true 2>&1) && rc=0 || rc=$?
[ "$rc" = 0 ] || fail "the abandonment was reported twice: status $rc ($msg)"

# 5. A server that is down: 69 (unavailable), naming the server.
msg=$(t "$nm" --server postgresql://nobody@127.0.0.1:1/none list 2>&1) && rc=0 || rc=$?
[ "$rc" = 69 ] || fail "server down: status $rc ($msg)"
case "$msg" in *"cannot connect to PostgreSQL at postgresql://nobody@127.0.0.1:1/none"*) ;; *) fail "server down: $msg" ;; esac

# 6. --server and --root together are a usage error.
t "$nm" --server "$url" --root "$work" list >/dev/null 2>&1 && rc=0 || rc=$?
[ "$rc" = 64 ] || fail "--server with --root: status $rc"

# 7. server-setup installs (or finds) the schema: 0; without --server it is a usage error.
t "$nm" --server "$url" server-setup >/dev/null || fail "server-setup failed"
t env -u NAMEDMUTEX_SERVER "$nm" server-setup >/dev/null 2>&1 && rc=0 || rc=$?
[ "$rc" = 64 ] || fail "server-setup without --server: status $rc"

# 8. A role that was not granted namedmutex_user: 77, naming the grant to ask for.
psql -q "$url" -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'nm_cli_stranger') THEN CREATE ROLE nm_cli_stranger LOGIN; END IF; END \$\$" \
    || fail "could not create a test role"
stranger=${url/postgres@/nm_cli_stranger@}
msg=$(t "$nm" --server "$stranger" run "$name" -- true 2>&1) && rc=0 || rc=$?
[ "$rc" = 77 ] || fail "a role without grants: status $rc ($msg)"
case "$msg" in *"GRANT namedmutex_user TO nm_cli_stranger"*) ;; *) fail "a role without grants: $msg" ;; esac

# 9. A password from libpq's places, never the URL: PGPASSWORD, then PGPASSFILE or
# ~/.pgpass (a private file only). The role pw_only needs its password (tools/pg-server.sh).
t psql -qAt "$url" -c "SELECT 1 FROM pg_roles WHERE rolname = 'pw_only'" | grep -q 1 \
    || fail "no role pw_only: run this against a server started by tools/pg-server.sh"
pw_url=${url/postgres@/pw_only@}
port=${url##*:}
port=${port%%/*}
mkdir -p "$work/home" "$work/nohome"
nopw() { t env -u PGPASSWORD -u PGPASSFILE HOME="$work/nohome" "$@"; }
msg=$(nopw "$nm" --server "$pw_url" list 2>&1) && rc=0 || rc=$?
[ "$rc" = 69 ] || fail "no password anywhere: status $rc ($msg)"
case "$msg" in *password*) ;; *) fail "no password anywhere: the error does not say so: $msg" ;; esac
printf '# for the test\nother:%s:postgres:pw_only:wrong\n127.0.0.1:%s:postgres:pw_only:pw-secret\\:1\n' \
    "$port" "$port" >"$work/pgpass"
chmod 600 "$work/pgpass"
msg=$(nopw env PGPASSFILE="$work/pgpass" "$nm" --server "$pw_url" run "$name" -- true 2>&1) \
    || fail "PGPASSFILE with the password: $msg"
chmod 644 "$work/pgpass"
msg=$(nopw env PGPASSFILE="$work/pgpass" "$nm" --server "$pw_url" list 2>&1) && rc=0 || rc=$?
[ "$rc" != 0 ] || fail "a password file others may read was used"
case "$msg" in *"$work/pgpass was not read"*"mode 644"*"chmod 600"*) ;; *) fail "a public password file: $msg" ;; esac
printf '*:*:*:pw_only:pw-secret\\:1\n' >"$work/home/.pgpass"
chmod 600 "$work/home/.pgpass"
msg=$(t env -u PGPASSWORD -u PGPASSFILE HOME="$work/home" "$nm" --server "$pw_url" run "$name" -- true 2>&1) \
    || fail "~/.pgpass with a wildcard line: $msg"
msg=$(nopw env PGPASSWORD='pw-secret:1' "$nm" --server "$pw_url" run "$name" -- true 2>&1) \
    || fail "PGPASSWORD: $msg"
msg=$(t env -u PGPASSFILE PGPASSWORD=wrong HOME="$work/home" "$nm" --server "$pw_url" list 2>&1) && rc=0 || rc=$?
[ "$rc" != 0 ] || fail "PGPASSWORD did not come before ~/.pgpass"
printf '*:*:*:pw_only:wrong\n' >"$work/home/.pgpass"
msg=$(t env -u PGPASSWORD -u PGPASSFILE HOME="$work/home" "$nm" --server "${pw_url/pw_only@/pw_only:pw-secret%3A1@}" run "$name" -- true 2>&1) \
    || fail "the URL's password did not come first: $msg"

# Several hosts: each gets its own line of the password file, as in libpq. The first host
# refuses connections (port 1); the second is the server, whose line alone has the password.
printf '127.0.0.1:1:postgres:pw_only:wrong\nlocalhost:%s:postgres:pw_only:pw-secret\\:1\n' "$port" >"$work/pgpass"
chmod 600 "$work/pgpass"
two_hosts="postgresql://pw_only@127.0.0.1:1,localhost:$port/postgres?sslmode=disable"
msg=$(nopw env PGPASSFILE="$work/pgpass" "$nm" --server "$two_hosts" run "$name" -- true 2>&1) \
    || fail "two hosts, a password-file line each: $msg"
printf 'localhost:%s:postgres:pw_only:wrong\n' "$port" >"$work/pgpass"
msg=$(nopw env PGPASSFILE="$work/pgpass" "$nm" --server "$two_hosts" list 2>&1) && rc=0 || rc=$?
[ "$rc" != 0 ] || fail "two hosts: a wrong password for the second was not used"
case "$msg" in *pw_only*) ;; *) fail "two hosts, a wrong password: $msg" ;; esac

# connect_timeout 0 is no bound, as in libpq (from the URL or the environment), not an error.
msg=$(t "$nm" --server "$url?connect_timeout=0" run "$name" -- true 2>&1) \
    || fail "connect_timeout=0: $msg"
msg=$(t env PGCONNECT_TIMEOUT=0 "$nm" --server "$url" run "$name" -- true 2>&1) \
    || fail "PGCONNECT_TIMEOUT=0: $msg"

# 10. What the URL leaves out, libpq's environment gives (PGHOST, PGPORT, PGUSER, PGDATABASE,
# PGSSLMODE, ...); what the URL says wins. The role tls_only may connect over TLS only.
bare="postgresql://127.0.0.1:$port/postgres"
msg=$(t env PGUSER=tls_only PGSSLMODE=disable "$nm" --server "$bare" list 2>&1) && rc=0 || rc=$?
[ "$rc" = 69 ] || fail "PGUSER=tls_only, PGSSLMODE=disable: status $rc, not refused ($msg)"
case "$msg" in *'user "tls_only"'*"no encryption"*) ;; *) fail "PGUSER/PGSSLMODE: $msg" ;; esac
msg=$(t env PGUSER=tls_only PGSSLMODE=require "$nm" --server "$bare" list 2>&1) \
    || fail "PGUSER=tls_only, PGSSLMODE=require: $msg"
msg=$(t env PGUSER=tls_only PGSSLMODE=disable "$nm" --server "$bare?sslmode=require" list 2>&1) \
    || fail "the URL's sslmode did not win over PGSSLMODE: $msg"
msg=$(t env PGSSLMODE=sometimes "$nm" --server "$url" list 2>&1) && rc=0 || rc=$?
case "$rc:$msg" in 70:*'"sometimes" (from PGSSLMODE)'*) ;; *) fail "a bad PGSSLMODE: status $rc ($msg)" ;; esac
msg=$(t env PGHOST=127.0.0.1 PGPORT="$port" "$nm" --server "postgresql://postgres@/postgres" list 2>&1) \
    || fail "PGHOST and PGPORT: $msg"
msg=$(t env PGHOST=127.0.0.1 PGPORT=1 "$nm" --server "postgresql://postgres@/postgres" list 2>&1) && rc=0 || rc=$?
[ "$rc" = 69 ] || fail "PGPORT=1 was not used: status $rc ($msg)"
msg=$(t env PGDATABASE=nm_no_such_db "$nm" --server "postgresql://postgres@127.0.0.1:$port" list 2>&1) && rc=0 || rc=$?
case "$rc:$msg" in 69:*'"nm_no_such_db" does not exist'*) ;; *) fail "PGDATABASE was not used: status $rc ($msg)" ;; esac

# 11. A service file (PGSERVICEFILE; `service=` in the URL, or PGSERVICE): it fills in what
# the URL leaves out, TLS settings included, before the environment does; a service defined
# nowhere, or a line namedmutex cannot use, is an error that names the file.
printf '# for the test\n[nm_svc]\nhost=127.0.0.1\nport=%s\nuser=postgres\ndbname=postgres\n[nm_tls]\nhost=localhost\nport=%s\nuser=tls_only\ndbname=postgres\nsslmode=disable\n[nm_bad]\nhost=127.0.0.1\ngssencmode=disable\n' \
    "$port" "$port" >"$work/services.conf"
svc() { t env -u PGSERVICE -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE -u PGSSLMODE PGSERVICEFILE="$work/services.conf" "$@"; }
msg=$(svc "$nm" --server "postgresql://?service=nm_svc" list 2>&1) || fail "service= in a URL: $msg"
msg=$(svc "$nm" --server "service=nm_svc" list 2>&1) || fail "service= in a key=value string: $msg"
msg=$(svc env PGSERVICE=nm_svc "$nm" --server "postgresql://" list 2>&1) || fail "PGSERVICE: $msg"
msg=$(svc env PGPORT=1 "$nm" --server "postgresql://?service=nm_svc" list 2>&1) \
    || fail "PGPORT came before the service's port: $msg"
msg=$(svc "$nm" --server "postgresql://?service=nm_tls" list 2>&1) && rc=0 || rc=$?
case "$rc:$msg" in 69:*'user "tls_only"'*"no encryption"*) ;; *) fail "the service's sslmode=disable: status $rc ($msg)" ;; esac
msg=$(svc "$nm" --server "postgresql://?service=nm_tls&sslmode=require" list 2>&1) \
    || fail "the URL's sslmode did not win over the service's: $msg"
msg=$(svc "$nm" --server "postgresql://?service=nm_nowhere" list 2>&1) && rc=0 || rc=$?
case "$rc:$msg" in 70:*'"nm_nowhere" is defined in no service file'*"$work/services.conf"*) ;; *) fail "a service defined nowhere: status $rc ($msg)" ;; esac
msg=$(svc "$nm" --server "postgresql://?service=nm_bad" list 2>&1) && rc=0 || rc=$?
case "$rc:$msg" in 70:*"$work/services.conf, line 15"*gssencmode*) ;; *) fail "a setting namedmutex does not use: status $rc ($msg)" ;; esac

# 12. Round trips: `run NAME -- true` makes 8 requests that the server answers before the
# next, on 2 connections made side by side (per connection: the startup packet, the check
# with the statement after it; then the handle's open and close, and the acquisition and
# the release), and `list`, `info` and `prune` 3 on one each (the startup, the check with
# the schema's look, their query: nothing is connected ahead for an acquisition). Counted
# by tools/pg-proxy.py --count, a proxy that reads the client's side of the protocol (TLS off).
# One more means a change added a round trip, which a server far away turns into latency.
python3 "$(dirname "${BASH_SOURCE[0]}")/../../tools/pg-proxy.py" --count 127.0.0.1 "$port" >"$work/requests" 2>&1 &
holder=$!
t sh -c "until grep -qs '^listening' '$work/requests'; do sleep 0.05; done" || fail "pg-proxy.py did not start"
via="postgresql://postgres@127.0.0.1:$(sed -n 's/^listening on 127.0.0.1://p' "$work/requests")/postgres?sslmode=disable"
# Runs the command through the proxy, then waits for its connections to end there:
# "N connections, M requests".
requests_of() {
    local before
    before=$(grep -c '^requests' "$work/requests" || true)
    # Its status is not the point (info of a name nobody holds open says it is missing):
    # its requests are.
    t "$nm" --server "$via" "$@" >/dev/null 2>&1 || true
    t sh -c "until [ \$(grep -c '^connection' '$work/requests') = \$(grep -c '^requests' '$work/requests') ]; do sleep 0.05; done" \
        || fail "the connections of $* did not end: $(cat "$work/requests")"
    awk -v skip="$before" '/^requests/ && ++seen > skip { n += $2; c++ } END { print c + 0 " connections, " n + 0 " requests" }' "$work/requests"
}
made=$(requests_of run "$name" -- true)
[ "$made" = "2 connections, 8 requests" ] || fail "run NAME -- true made $made (8 requests on 2 connections expected)"
for look in list "info $name" prune; do
    # shellcheck disable=SC2086 # the words of the command
    made=$(requests_of $look)
    [ "$made" = "1 connections, 3 requests" ] || fail "$look made $made (3 requests on 1 connection expected)"
done
kill "$holder"
wait "$holder" 2>/dev/null || true
holder=

echo "server.sh: the command against $url: all checks passed"
