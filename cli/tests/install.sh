#!/usr/bin/env bash
# cli/install.sh as a user runs it, into a temporary prefix: on x86-64 Linux the installed
# command is the static musl build, it runs, and its manual pages and completions are there.
#   cli/tests/install.sh
# (tools/test-all.sh runs it). Every step is bounded by timeout(1).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
script=install.sh
# shellcheck source=support/script.sh
. "$here/support/script.sh"

timeout 900 "$here/../install.sh" "$work/prefix" >/dev/null || fail "cli/install.sh failed"
nm="$work/prefix/bin/namedmutex"
[ -x "$nm" ] || fail "no bin/namedmutex"
if [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ]; then
    # ldd says so for static and static-pie binaries alike; a glibc build lists libc.
    linked=$(ldd "$nm" 2>&1 || true)
    case "$linked" in
        *"statically linked"* | *"not a dynamic executable"*) ;;
        *) fail "the installed command is not the static build: $linked" ;;
    esac
fi
out=$(NAMEDMUTEX_ROOT="$work" t "$nm" run "install-$$" -- echo ran) || fail "the installed command failed"
[ "$out" = ran ] || fail "run printed '$out'"
for page in namedmutex namedmutex-run namedmutex-hold namedmutex-wait namedmutex-list namedmutex-info; do
    grep -q '^\.TH' "$work/prefix/share/man/man1/$page.1" || fail "$page.1 is not a manual page"
done
grep -q namedmutex "$work/prefix/share/bash-completion/completions/namedmutex" || fail "no bash completion"
grep -q namedmutex "$work/prefix/share/zsh/site-functions/_namedmutex" || fail "no zsh completion"
grep -q namedmutex "$work/prefix/share/fish/vendor_completions.d/namedmutex.fish" || fail "no fish completion"
echo "install.sh: ok ($("$nm" --version), $(ls "$work/prefix/share/man/man1" | wc -l) manual pages, 3 completions)"
