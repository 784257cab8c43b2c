#!/usr/bin/env bash
# Generates the man pages of openssl-reload from its clap definition
# (server/src/cli/) with clap_mangen, through the separate crate pkg/mangen, so
# that clap_mangen never becomes a dependency of the library or the server.
#
#   pkg/man.sh [OUT_DIR]     (default: target/man)
#
# Writes openssl-reload.1, openssl-reload-serve.1 and openssl-reload-check.1,
# plus a `gzip -9n` copy of each (*.1.gz), which is what the .deb and .rpm
# install (see [package.metadata.deb] and [package.metadata.generate-rpm] in
# server/Cargo.toml). SOURCE_DATE_EPOCH, if set, dates the pages; otherwise the date
# of the last commit is used, so that rebuilding gives identical pages.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/target/man}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

if [[ -z "${SOURCE_DATE_EPOCH:-}" ]]; then
    SOURCE_DATE_EPOCH="$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)"
fi
export SOURCE_DATE_EPOCH

# The version every package of the workspace shares ([workspace.package]).
version="$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
[[ -n "$version" ]] || { echo "man.sh: no [workspace.package] version in $root/Cargo.toml" >&2; exit 1; }

# A debug build in the main target dir: clap, with the same version and
# features as the server's, is then usually compiled already.
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}" \
    cargo run --quiet --locked \
    --manifest-path "$root/pkg/mangen/Cargo.toml" -- "$out" "$version"

for page in "$out"/*.1; do
    gzip -9n --force --keep "$page"
done
ls "$out"/*.1.gz
