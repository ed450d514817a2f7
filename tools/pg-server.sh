#!/usr/bin/env bash
# A private PostgreSQL server for the tests of the PostgreSQL backend: `start DIR` installs
# PostgreSQL from Debian if it is missing, runs initdb as the `postgres` user in DIR, starts
# the server on a private port (NAMEDMUTEX_TEST_PG_PORT, else the first free one from 54329)
# and socket, and prints its URL (trust authentication for
# loopback and the partition test's private 10.213.0.0/16 only); `stop DIR`
# stops it and removes DIR; `restart DIR` restarts it cleanly, and `crash DIR` as after a
# crash (stopped at once, then started, recovering from its WAL); `standby DIR PRIMARY`
# starts a hot standby of the server in PRIMARY (stop it with `stop DIR`; `stop PRIMARY`
# also stops those made in PRIMARY/standby-*). Nothing is written outside DIR.
#
# The server also speaks TLS, with a certificate for the name `localhost` (not for
# 127.0.0.1) signed by a CA made for it, DIR/ca.crt; the role `tls_only` may connect over
# TLS only, and the role `cert_only` only with a client certificate (DIR/client.crt and
# DIR/client.key, for that role, signed by the same CA; the key encrypted with the password
# key-secret in DIR/client-enc.key, PKCS#8, and DIR/client-trad.key), and revocation lists of that CA
# (DIR/nothing-revoked.crl; DIR/server-revoked.crl and DIR/crl-dir/, by hashed name, revoke
# the server's certificate). The TLS tests use them.
# The role `pw_only` needs its password (`pw-secret:1`, SCRAM), for the password-file tests.
#
#   dir=$(mktemp -d); url=$(tools/pg-server.sh start "$dir"); ...; tools/pg-server.sh stop "$dir"
set -euo pipefail
cmd=${1:?usage: pg-server.sh start|stop|restart|crash DIR, or standby DIR PRIMARY}
dir=${2:?usage: pg-server.sh start|stop|restart|crash DIR, or standby DIR PRIMARY}
port=${NAMEDMUTEX_TEST_PG_PORT:-54329}  # (start: the first free port from there)
# fsync off by default (tests); the benchmark turns it on to measure commits truthfully.
fsync=${NAMEDMUTEX_TEST_PG_FSYNC:-off}
. "$(dirname "$0")/pg-port.sh"

bindir() {
    local b
    b=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -n "$b" ] && [ -x "$b/initdb" ] && echo "$b"
}

# Starting and stopping the server in DIR: its data, log and socket there, on port $1.
pg_start() {
    chown postgres "$dir/log"
    su postgres -s /bin/sh -c "$bin/pg_ctl -D '$dir/data' -l '$dir/log' -w -o \"-k '$dir' -p $1 -c fsync=$fsync -c max_connections=300\" start" >&2
}
pg_stop() { su postgres -s /bin/sh -c "$bin/pg_ctl -D '$dir/data' -m immediate -w stop" >&2; }

case "$cmd" in
start)
    if ! bin=$(bindir); then
        echo "==> apt-get install postgresql (for the PostgreSQL backend's tests)" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
        bin=$(bindir)
    fi
    mkdir -p "$dir"
    chown postgres "$dir"
    # initdb refuses root: run the server as postgres, data and socket inside DIR.
    su postgres -s /bin/sh -c "$bin/initdb -N -A trust -U postgres -D '$dir/data'" >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    # The partition test's client connects from a network namespace over a veth pair.
    echo "host all all 10.213.0.0/16 trust" >>"$dir/data/pg_hba.conf"
    echo "listen_addresses = '*'" >>"$dir/data/postgresql.conf"
    # Each line says its session's application_name: a test finds its own sessions' lines.
    echo "log_line_prefix = '%m [%p] app=%a '" >>"$dir/data/postgresql.conf"
    # TLS: a CA, and a certificate it signs for localhost only (hence a name check fails
    # at 127.0.0.1). The role tls_only is refused without TLS (first matching line wins).
    if ! command -v openssl >/dev/null; then
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >&2
    fi
    ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -keyout "$dir/ca.key" -out "$dir/ca.crt" -days 7 \
        -subj "/CN=namedmutex test CA" 2>/dev/null
    openssl req "${ec[@]}" -keyout "$dir/server.key" -out "$dir/server.csr" \
        -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -out "$dir/server.crt" -days 7 -extfile "$dir/server.ext" 2>/dev/null
    openssl req "${ec[@]}" -keyout "$dir/client.key" -out "$dir/client.csr" \
        -subj "/CN=cert_only" 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' >"$dir/client.ext"
    openssl x509 -req -in "$dir/client.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -out "$dir/client.crt" -days 7 -extfile "$dir/client.ext" 2>/dev/null
    chmod 600 "$dir/client.key"
    # The same key encrypted with the password key-secret: as PKCS#8 (DIR/client-enc.key)
    # and in OpenSSL's traditional format (DIR/client-trad.key).
    openssl pkcs8 -topk8 -in "$dir/client.key" -out "$dir/client-enc.key" -passout pass:key-secret
    openssl ec -in "$dir/client.key" -aes256 -passout pass:key-secret -out "$dir/client-trad.key" 2>/dev/null
    chmod 600 "$dir/client-enc.key" "$dir/client-trad.key"
    # Revocation lists from the CA: DIR/nothing-revoked.crl, then (after revoking the
    # server's certificate) DIR/server-revoked.crl, and DIR/crl-dir/ holding the latter.
    mkdir -p "$dir/crl-db" "$dir/crl-dir"
    : >"$dir/crl-db/index.txt"
    echo 01 >"$dir/crl-db/crlnumber"
    printf '[ca]\ndefault_ca = test\n[test]\ndatabase = %s\ncrlnumber = %s\ndefault_md = sha256\ndefault_crl_days = 7\n' \
        "$dir/crl-db/index.txt" "$dir/crl-db/crlnumber" >"$dir/crl-db/ca.cnf"
    ca=(-config "$dir/crl-db/ca.cnf" -keyfile "$dir/ca.key" -cert "$dir/ca.crt")
    openssl ca "${ca[@]}" -gencrl -out "$dir/nothing-revoked.crl" 2>/dev/null
    openssl ca "${ca[@]}" -revoke "$dir/server.crt" 2>/dev/null
    openssl ca "${ca[@]}" -gencrl -out "$dir/server-revoked.crl" 2>/dev/null
    # Lists in a directory are read by hashed name (HASH.r0), as OpenSSL, and so libpq,
    # reads them; the README beside them is not a list and is not read.
    cp "$dir/server-revoked.crl" "$dir/crl-dir/"
    openssl rehash "$dir/crl-dir"
    echo "revocation lists, by issuer hash" >"$dir/crl-dir/README"
    chown postgres "$dir/server.key" "$dir/server.crt"
    chmod 600 "$dir/server.key"
    printf "ssl = on\nssl_cert_file = '%s'\nssl_key_file = '%s'\nssl_ca_file = '%s'\n" \
        "$dir/server.crt" "$dir/server.key" "$dir/ca.crt" >>"$dir/data/postgresql.conf"
    sed -i '1i hostnossl all tls_only all reject\nhostssl all tls_only all trust\nhostnossl all cert_only all reject\nhostssl all cert_only all cert\nhost all pw_only all scram-sha-256' \
        "$dir/data/pg_hba.conf"
    # The port: NAMEDMUTEX_TEST_PG_PORT if set, else the first free one from 54329.
    start_on_a_free_port "$dir/log" "${NAMEDMUTEX_TEST_PG_PORT:-}" pg_start pg_stop
    su postgres -s /bin/sh -c "$bin/psql -h '$dir' -p $port -qAtc 'CREATE ROLE tls_only LOGIN SUPERUSER; CREATE ROLE cert_only LOGIN SUPERUSER; CREATE ROLE pw_only LOGIN SUPERUSER PASSWORD '\''pw-secret:1'\'''" >&2
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
stop)
    bin=$(bindir)
    # Standbys made in DIR (the tests make theirs there) go first: a test stopped by its
    # watchdog never stops its own, and stopping the server must leave nothing running.
    for standby in "$dir"/standby-*/; do
        if [ -f "$standby/data/postmaster.pid" ]; then
            su postgres -s /bin/sh -c "$bin/pg_ctl -D '$standby/data' -m immediate -w stop" >&2 || true
        fi
    done
    if [ -f "$dir/data/postmaster.pid" ]; then
        su postgres -s /bin/sh -c "$bin/pg_ctl -D '$dir/data' -m fast -w stop" >&2 || true
    fi
    rm -rf "$dir"
    ;;
standby)
    # A hot standby of the server in PRIMARY (started by `start PRIMARY`), streaming from
    # it, on the first free port from the primary's next one: prints its URL. Read-only, as
    # every standby: the multi-host tests put it before the primary. (`-c fast`: the base
    # backup's checkpoint at once; a spread one, after a busy test run, took minutes.)
    primary=${3:?usage: pg-server.sh standby DIR PRIMARY}
    bin=$(bindir)
    primary_port=$(sed -n 4p "$primary/data/postmaster.pid")
    mkdir -p "$dir"
    chown postgres "$dir"
    timeout 120 su postgres -s /bin/sh -c "$bin/pg_basebackup -h '$primary' -p $primary_port -U postgres -D '$dir/data' -R -X stream -c fast" \
        >"$dir/basebackup.log" 2>&1 || { cat "$dir/basebackup.log" >&2; exit 1; }
    port=$((primary_port + 1))
    start_on_a_free_port "$dir/log" "" pg_start pg_stop
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
restart)
    bin=$(bindir)
    su postgres -s /bin/sh -c "$bin/pg_ctl -D '$dir/data' -l '$dir/log' -m fast -w restart" >&2 </dev/null
    ;;
crash)
    # A crash, as far as the data can tell: stopped at once, without a shutdown checkpoint
    # (WAL still in the server's memory is lost), then started again, recovering.
    bin=$(bindir)
    su postgres -s /bin/sh -c "$bin/pg_ctl -D '$dir/data' -l '$dir/log' -m immediate -w restart" >&2 </dev/null
    ;;
*)
    echo "usage: pg-server.sh start|stop|restart|crash DIR, or standby DIR PRIMARY" >&2
    exit 2
    ;;
esac
