# What the CLI's shell-script tests share (sourced, never run): a scratch directory, a
# holder process killed on exit, fail, and t (every step bounded by timeout(1)).
# The sourcing script sets `script` (its name, for messages) first.
work=$(mktemp -d)
holder=
cleanup() {
    if [ -n "$holder" ]; then kill -9 "$holder" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "$script: FAIL: $*" >&2; exit 1; }
t() { timeout 20 "$@"; }
