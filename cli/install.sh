#!/usr/bin/env bash
# Builds the command (release) and installs it under PREFIX (default /usr/local):
# bin/namedmutex, the manual pages share/man/man1/namedmutex{,-run,-hold,-wait,-list,-info}.1,
# and completions for bash, zsh and fish under share/.
#   cli/install.sh [PREFIX]
# On x86-64 and aarch64 Linux with musl-gcc (Debian: musl-tools, which ring, the TLS code,
# needs) it builds the static musl binary (cli/README.md: it starts faster than the
# dynamically linked glibc one), adding the rustup target when missing;
# NAMEDMUTEX_INSTALL_GLIBC=1, other systems, or a machine without rustup or musl-gcc build
# the default.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prefix=${1:-/usr/local}
cd "$here/.."
target_dir=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

musl=
if [ "$(uname -s)" = Linux ] && [ "${NAMEDMUTEX_INSTALL_GLIBC:-0}" != 1 ] \
    && command -v rustup >/dev/null && command -v musl-gcc >/dev/null; then
    case "$(uname -m)" in
        x86_64 | aarch64) musl="$(uname -m)-unknown-linux-musl" ;;
    esac
fi
if [ -n "$musl" ]; then
    rustup target list --installed | grep -qx "$musl" || rustup target add "$musl" >&2
    cargo build --release -q -p namedmutex-cli --target "$musl"
    binary="$target_dir/$musl/release/namedmutex"
else
    cargo build --release -q -p namedmutex-cli
    binary="$target_dir/release/namedmutex"
fi

mkdir -p "$prefix/bin" "$prefix/share/man/man1" "$prefix/share/bash-completion/completions" \
    "$prefix/share/zsh/site-functions" "$prefix/share/fish/vendor_completions.d"
install -m 0755 "$binary" "$prefix/bin/namedmutex"
nm="$prefix/bin/namedmutex"
"$nm" manpage > "$prefix/share/man/man1/namedmutex.1"
for sub in run hold wait list info; do
    "$nm" manpage "$sub" > "$prefix/share/man/man1/namedmutex-$sub.1"
done
"$nm" completions bash > "$prefix/share/bash-completion/completions/namedmutex"
"$nm" completions zsh > "$prefix/share/zsh/site-functions/_namedmutex"
"$nm" completions fish > "$prefix/share/fish/vendor_completions.d/namedmutex.fish"
echo "installed $("$nm" --version) (${musl:-default build}) under $prefix"
