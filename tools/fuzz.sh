#!/usr/bin/env bash
# Fuzzes every target in fuzz/ (cargo-fuzz, libFuzzer) for SECONDS each (default 20):
#
#   tools/fuzz.sh [SECONDS]
#
# Targets: name_parse (namedmutex::Name::parse) and validate_object (the checks an open
# applies to an object file). Seeds are in fuzz/seeds/<target>/ (committed); what the fuzzer
# finds goes to fuzz/corpus/ and crashes to fuzz/artifacts/ (both ignored by git). Installs
# cargo-fuzz from crates.io if missing (about a minute). Uses the nightly toolchain if there
# is one (or one can be installed); otherwise the stable one with RUSTC_BOOTSTRAP=1, which
# enables the unstable compiler flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. tools/step.sh
secs=${1:-20}
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$PWD/fuzz/target}

if ! cargo fuzz --version >/dev/null 2>&1; then
    step "cargo install cargo-fuzz --locked"
    cargo install cargo-fuzz --locked
fi
toolchain=()
if rustup run nightly rustc --version >/dev/null 2>&1; then
    toolchain=(+nightly)
elif timeout 180 rustup toolchain install nightly --profile minimal >/dev/null 2>&1; then
    toolchain=(+nightly)
else
    echo "(no nightly toolchain: using stable with RUSTC_BOOTSTRAP=1)"
    export RUSTC_BOOTSTRAP=1
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in name_parse validate_object; do
    step "fuzz $target for ${secs}s"
    mkdir -p "fuzz/corpus/$target"
    # New inputs go to the first directory (corpus/), never to the committed seeds.
    if ! cargo "${toolchain[@]}" fuzz run -O "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" \
        -- -max_total_time="$secs" >"$log" 2>&1; then
        tail -40 "$log"
        echo "fuzz.sh: $target failed (the crashing input is in fuzz/artifacts/$target/)" >&2
        exit 1
    fi
    grep -E '^Done [0-9]+ runs' "$log" || tail -3 "$log"
done
step "fuzz.sh: no crash in ${secs}s per target"
