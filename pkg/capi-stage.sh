#!/usr/bin/env bash
# Stages the C library for its packages (capi/Cargo.toml, docs/packaging.md):
# capi/install.sh into target/pkg-capi/FLAVOUR with the distribution's paths,
# then strips the libraries as dh_strip would.
#
#   pkg/capi-stage.sh deb|rpm [FROM]     (FROM: default target/release)
#
# deb: --libdir /usr/lib/x86_64-linux-gnu, the layout of install.sh
#      (.so.VERSION, .so.0 and .so links), for cargo deb.
# rpm: --libdir /usr/lib64; the library is renamed to its SONAME, .so.0, and
#      the .so link removed, since cargo-generate-rpm 0.21.1 cannot package
#      symlinks (the devel package ships pkg/rpm/libopenssl_reload.so instead).
#      Mode 0755, as RHEL installs shared libraries (auto-req reads it then).
# Run `cargo build --release --locked -p openssl-reload-capi` first.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
flavour="${1:-}"
from="${2:-$root/target/release}"
case "$flavour" in
  deb) libdir=/usr/lib/x86_64-linux-gnu ;;
  rpm) libdir=/usr/lib64 ;;
  *) echo "usage: pkg/capi-stage.sh deb|rpm [FROM]" >&2; exit 64 ;;
esac
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)"
dest="$root/target/pkg-capi/$flavour"
lib="$dest$libdir"

rm -rf "$dest"
"$root/capi/install.sh" --destdir "$dest" --prefix /usr --libdir "$libdir" --from "$from"
# dh_strip's options for a shared and a static library.
strip --remove-section=.comment --remove-section=.note --strip-unneeded "$lib/libopenssl_reload.so.$version"
strip --strip-debug --remove-section=.comment --remove-section=.note \
  --enable-deterministic-archives "$lib/libopenssl_reload.a"
if [[ $flavour == rpm ]]; then
  mv -f "$lib/libopenssl_reload.so.$version" "$lib/libopenssl_reload.so.0"
  rm -f "$lib/libopenssl_reload.so"
  chmod 0755 "$lib/libopenssl_reload.so.0"
fi
echo "staged in ${dest#"$root"/}:"
(cd "$dest" && find . -mindepth 1 ! -type d -printf '  %M %10s %P -> %l\n' | sed 's/ -> $//' | sort -k3)
