#!/usr/bin/env bash
# The whole test suite, as the README's second command: Linux (unit, model, backend,
# behavioural, CLI and doc tests; on x86-64 also the static musl build, whose rustup target
# is added when missing), the lock protocol under Miri for Linux, macOS and FreeBSD
# (tools/miri.sh installs the nightly toolchain and Miri when missing), then the Windows
# backend under Wine and the type checks for macOS and FreeBSD (.ci/windows.sh installs Wine,
# mingw-w64 and the rustup targets when missing).
#
# Some Linux tests need root (PID namespaces with unshare, files of other users); run as a
# normal user they say "skipped" and why.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. tools/step.sh

# The suite builds the crates in many configurations (features, targets, Miri, fuzzing), each
# with its own copy of every dependency. Debug info as line tables only (backtraces still name
# files and lines) and no incremental caches keep the target directory a fraction of its
# default size, and link faster. Set either variable to choose otherwise.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"

# Tools the tests call, installed when missing (Debian package names): unshare and setpriv
# (PID namespaces, other users), mount (a tiny tmpfs for the full-disk test), useradd (test
# users), a C++ compiler (libFuzzer, built by cargo-fuzz), bindfs (a FUSE root, which must be
# refused), python3 (a process that holds a file lock and stops itself) and jq (the CLI
# README's examples, which cli/tests/readme.rs runs) and pgbouncer (a transaction pooler,
# which the PostgreSQL backend must refuse) and ip (iproute2: the partition test's veth
# pair) and musl-gcc (the static musl command builds ring, for TLS to PostgreSQL, with it)
# and debootstrap and openssl (tools/pg17-direct-tls.sh: a Debian 13 root for PostgreSQL
# 17, and its certificates). tools/pg-server.sh installs PostgreSQL (and with it psql, which
# cli/tests/server.sh uses).
need=()
for pair in unshare:util-linux setpriv:util-linux mount:mount useradd:passwd c++:g++ bindfs:bindfs python3:python3 jq:jq pgbouncer:pgbouncer ip:iproute2 musl-gcc:musl-tools debootstrap:debootstrap openssl:openssl; do
    command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    step "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The benchmark harness's own tests run in the release build it is used in (further down),
# which spares a debug build of its dependencies (sqlx, criterion).
step "cargo test --workspace --exclude namedmutex-bench (Linux; the model tests next)"
cargo test --workspace --exclude namedmutex-bench -- --skip protocol::model
# The loom model tests one at a time: each runs thousands of executions whose threads map
# and unmap their stacks, and two at once in one process contend in the kernel (here 206 s
# together against 121 s one at a time). The same build as above (same features).
step "cargo test --workspace --exclude namedmutex-bench --lib -- protocol::model --test-threads 1"
cargo test --workspace --exclude namedmutex-bench --lib -- protocol::model --test-threads 1
# The `serde` feature: its unit tests and doc examples.
step "cargo test --features serde --lib, --doc"
cargo test --features serde --lib -- --skip protocol::model  # the model tests ran above
cargo test --features serde,postgres --doc

# Biased locking (src/protocol/bias.rs): by default a multi-threaded process such as a test
# harness starts biasing a few milliseconds after its first mutex, so the run above mixes
# biased and ordinary mutexes. Run the shared behaviour suite and the Linux backend tests
# again with every mutex biased to its first acquirer, and with biasing off.
for mode in 1 0; do
    step "NAMEDMUTEX_BIAS=$mode: behaviour and Linux backend tests"
    NAMEDMUTEX_BIAS=$mode cargo test --test behaviour --test linux
done

# Reliability (RELIABILITY.md): the workspace run above already ran tests/reliability
# (chaos for 30 s, exhaustion, hostile users, bad files); the crash points need the
# fault-injection build. Then a short fuzz run (tools/fuzz.sh installs cargo-fuzz if missing).
step "cargo test --features fault-injection --test reliability -- fault::"
cargo test --features fault-injection --test reliability -- fault::
for filter in bias:: polling::; do
    step "cargo test --features fault-injection --test linux -- $filter"
    cargo test --features fault-injection --test linux -- "$filter"
done
# The portable backend (macOS's and FreeBSD's) built on Linux with Linux shims: the whole
# behavioural suite, the reliability suite with its crash points (including the watcher's,
# the thread destructor's and the process-slot claim's), its own tests, and the CLI's.
step "portable backend on Linux: behaviour, reliability (with fault injection), portable, CLI"
cargo test --features portable-backend,fault-injection --test behaviour --test reliability --test portable
cargo test -p namedmutex-cli --features portable-backend

if [ "$(uname -m)" = x86_64 ]; then
    # The static musl build (README: the fast-starting command): the same behavioural and
    # Linux-backend tests, the CLI's tests, and glibc and musl processes sharing mutexes.
    step "static musl build: behaviour, Linux backend, CLI, cli/tests/cross-libc.sh"
    musl=x86_64-unknown-linux-musl
    rustup target list --installed | grep -qx "$musl" || rustup target add "$musl"
    cargo test --target "$musl" --test behaviour --test linux
    cargo test --target "$musl" -p namedmutex-cli
    cargo build -q -p namedmutex-cli
    cargo build -q -p namedmutex-cli --target "$musl"
    cli/tests/cross-libc.sh target/debug/namedmutex "target/$musl/debug/namedmutex"
    step "cli/tests/install.sh (cli/install.sh into a temporary prefix)"
    cli/tests/install.sh
fi

step "cargo test --release -p namedmutex-bench (the benchmark harness's own tests)"
cargo test --release -p namedmutex-bench

# The C ABI from C (gcc, through pkg-config; shared and static) and Python (ctypes).
step "capi/tests/run-c-tests.sh"
./capi/tests/run-c-tests.sh

# The PostgreSQL backend against a real server started here (stopped on exit): its unit
# tests, the behavioural suite against it (in clear), and its own scenarios (kills, a
# terminated backend, a server restart, a network partition, bad input, TLS) built with TLS,
# one at a time because the restart and the partition disturb every session; then the TLS
# scenarios of a build without TLS (which must refuse what needs it).
pg_dir=$(mktemp -d)
trap 'tools/pg-server.sh stop "$pg_dir"' EXIT
pg_url=$(tools/pg-server.sh start "$pg_dir")
step "PostgreSQL backend, on $pg_url"
NAMEDMUTEX_REQUIRE_PG=1 NAMEDMUTEX_TEST_PG_URL=$pg_url cargo test --features postgres --lib sys::pg
NAMEDMUTEX_REQUIRE_PG=1 NAMEDMUTEX_TEST_PG_URL=$pg_url cargo test --features postgres-tls --lib sys::pg
NAMEDMUTEX_SERVER=$pg_url cargo test --features postgres --test behaviour
NAMEDMUTEX_REQUIRE_PG=1 NAMEDMUTEX_TEST_PG_URL=$pg_url NAMEDMUTEX_TEST_PG_DIR=$pg_dir \
    cargo test --features postgres-tls --test postgres -- --test-threads 1
NAMEDMUTEX_REQUIRE_PG=1 NAMEDMUTEX_TEST_PG_URL=$pg_url NAMEDMUTEX_TEST_PG_DIR=$pg_dir \
    cargo test --features postgres --test postgres -- tls::
cargo build -q -p namedmutex-cli
cli/tests/server.sh "$pg_url" target/debug/namedmutex
# sslnegotiation=direct against a real PostgreSQL 17 (the suite's server is Debian 12's 15):
# Debian 13's, in a root made with debootstrap and kept for the next run (about a minute
# the first time).
step "tools/pg17-direct-tls.sh (direct TLS against a real PostgreSQL 17)"
tools/pg17-direct-tls.sh

step "tools/fuzz.sh 20"
./tools/fuzz.sh 20

# The lock protocol with real threads under Miri, for Linux, macOS (aarch64) and FreeBSD.
./tools/miri.sh

# With the PostgreSQL server above (still running): the Windows build against it too.
step "Windows backend under Wine, and cross-platform type checks"
NAMEDMUTEX_TEST_PG_URL=$pg_url NAMEDMUTEX_TEST_PG_DIR=$pg_dir bash .ci/windows.sh
