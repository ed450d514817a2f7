#!/usr/bin/env bash
# Checks `sslnegotiation=direct` against a real PostgreSQL 17 (the tests use a stand-in,
# tools/direct-tls-proxy.py, because Debian 12 ships PostgreSQL 15): builds a Debian 13
# (trixie) root with debootstrap in ROOT (kept for the next run), installs postgresql-17
# there, starts it with TLS on 127.0.0.1 (port NAMEDMUTEX_TEST_PG17_PORT, else the first free
# one from 54332), and runs the command through it:
#   1. the server refuses direct TLS without ALPN (openssl s_client), so a direct connection
#      that works proves the client offered `postgresql`;
#   2. `run` and `list` with sslnegotiation=direct, with sslmode=require and verify-full;
#   3. sslnegotiation=direct with sslmode=prefer is refused with a message that says why.
# Needs root and Debian's mirror (tools/test-all.sh runs it; the first run downloads a
# minimal Debian 13, about a minute here). Usage: tools/pg17-direct-tls.sh [ROOT] (default
# /var/tmp/namedmutex-pg17).
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-/var/tmp/namedmutex-pg17}
port=${NAMEDMUTEX_TEST_PG17_PORT:-54332}
bin=/usr/lib/postgresql/17/bin
fail() { echo "FAIL: $*" >&2; exit 1; }
. tools/pg-port.sh

missing=()
for tool in debootstrap openssl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >&2
fi
# One run at a time uses ROOT (it is made once, and its /proc is mounted while a server
# runs): another run waits here for it.
mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
flock -w 1800 9 || fail "another run held $root.lock for 30 minutes"
if [ ! -x "$root$bin/postgres" ]; then
    # A root left half-made by an interrupted run is made again.
    umount "$root/proc" 2>/dev/null || true
    rm -rf --one-file-system "${root:?}"
    echo "==> debootstrap trixie $root" >&2
    timeout 900 debootstrap --variant=minbase trixie "$root" http://deb.debian.org/debian >"$root.log" 2>&1 \
        || { tail -20 "$root.log" >&2; exit 1; }
    # No service may start inside the root while packages install.
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod +x "$root/usr/sbin/policy-rc.d"
    echo "==> apt-get install postgresql-17 (in $root)" >&2
    timeout 900 chroot "$root" /bin/sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends postgresql-17" >>"$root.log" 2>&1 \
        || { tail -20 "$root.log" >&2; exit 1; }
fi

# A fresh cluster under ROOT/tmp, served from the root; stopped and removed at exit.
data=/tmp/namedmutex-pg17.$$
mkdir -p "$root$data"
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
cleanup() {
    chroot "$root" su postgres -s /bin/sh -c "$bin/pg_ctl -D $data/data -m immediate -w stop" \
        >/dev/null 2>&1 || true
    umount "$root/proc" 2>/dev/null || true
    rm -rf "${root:?}$data"
}
trap cleanup EXIT
chroot "$root" chown postgres "$data"
chroot "$root" su postgres -s /bin/sh -c "$bin/initdb -N -A trust -U postgres -D $data/data" \
    >"$root$data/initdb.log" 2>&1 || { cat "$root$data/initdb.log" >&2; exit 1; }
dir=$root$data
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$dir/ca.key" -out "$dir/ca.crt" -days 1 \
    -subj "/CN=namedmutex PG17 test CA" 2>/dev/null
openssl req "${ec[@]}" -keyout "$dir/server.key" -out "$dir/server.csr" -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$dir/server.ext"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -out "$dir/data/server.crt" -days 1 -extfile "$dir/server.ext" 2>/dev/null
cp "$dir/server.key" "$dir/data/server.key"
chmod 600 "$dir/data/server.key"
chroot "$root" chown postgres "$data/data/server.crt" "$data/data/server.key"
cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$data'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
log_connections = on
EOF
# The port: NAMEDMUTEX_TEST_PG17_PORT if set, else the first free one from 54332.
pg_start() {
    chroot "$root" chown postgres "$data/log"
    chroot "$root" su postgres -s /bin/sh -c "$bin/pg_ctl -D $data/data -l $data/log -o '-p $1' -w start" >/dev/null
}
pg_stop() { chroot "$root" su postgres -s /bin/sh -c "$bin/pg_ctl -D $data/data -m immediate -w stop" >/dev/null; }
start_on_a_free_port "$dir/log" "${NAMEDMUTEX_TEST_PG17_PORT:-}" pg_start pg_stop || exit 1
version=$(chroot "$root" su postgres -s /bin/sh -c "$bin/postgres --version")
echo "==> $version on 127.0.0.1:$port" >&2

# 1. Direct TLS without ALPN is refused by this server.
timeout 20 openssl s_client -connect "127.0.0.1:$port" -servername localhost </dev/null >/dev/null 2>&1 || true
grep -q "direct SSL connection request without ALPN" "$dir/log" \
    || fail "the server did not refuse direct TLS without ALPN; its log: $(tail -5 "$dir/log")"
echo "ok: direct TLS without ALPN is refused by the server" >&2

# 2. The command with direct negotiation.
cargo build -q -p namedmutex-cli
nm=target/debug/namedmutex
url="postgresql://postgres@localhost:$port/postgres"
for params in "sslmode=require&sslnegotiation=direct" \
    "sslmode=verify-full&sslrootcert=$dir/ca.crt&sslnegotiation=direct"; do
    out=$(timeout 60 "$nm" --server "$url?$params" run 'Global\pg17-direct' -- echo inside) \
        || fail "run with $params"
    [ "$out" = inside ] || fail "run with $params printed $out"
    timeout 60 "$nm" --server "$url?$params" list >/dev/null || fail "list with $params"
    echo "ok: run and list with $params" >&2
done
resets=$(grep -c "could not receive data from client" "$dir/log" || true)
[ "$resets" = 0 ] || fail "the server logged $resets connection resets"

# 3. Direct negotiation cannot fall back to no TLS.
if err=$(timeout 60 "$nm" --server "$url?sslmode=prefer&sslnegotiation=direct" run x -- true 2>&1); then
    fail "sslmode=prefer with sslnegotiation=direct was accepted"
fi
case "$err" in
*"sslnegotiation=direct needs sslmode=require"*) ;;
*) fail "the refusal of prefer with direct said: $err" ;;
esac
echo "ok: prefer with direct is refused: ${err#*: }" >&2
echo "PASS ($version)"
