#!/usr/bin/env bash
# Installs the C library as a distribution lays it out, from a cargo build of
# openssl-reload-capi:
#
#   $libdir/libopenssl_reload.so.VERSION     the library (SONAME libopenssl_reload.so.0)
#   $libdir/libopenssl_reload.so.0           -> .so.VERSION (runtime package)
#   $libdir/libopenssl_reload.so             -> .so.0 (development package)
#   $libdir/libopenssl_reload.a
#   $libdir/pkgconfig/openssl-reload.pc         links the shared library
#   $libdir/pkgconfig/openssl-reload-static.pc  links libopenssl_reload.a
#   $includedir/openssl_reload.h
#
# Usage: capi/install.sh [--destdir DIR] [--prefix /usr/local] [--libdir DIR]
#                        [--includedir DIR] [--from target/release]
# --libdir and --includedir default to $prefix/lib and $prefix/include; the
# .pc file names them without --destdir, as installed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

destdir="" prefix=/usr/local libdir="" includedir="" from="$root/target/release"
while (($#)); do
  case "$1" in
    --destdir) destdir="$2" ;;
    --prefix) prefix="$2" ;;
    --libdir) libdir="$2" ;;
    --includedir) includedir="$2" ;;
    --from) from="$2" ;;
    *) echo "capi/install.sh: unknown argument $1" >&2; exit 64 ;;
  esac
  shift 2
done
libdir="${libdir:-$prefix/lib}"
includedir="${includedir:-$prefix/include}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)"
abi="$(sed -n 's/^const ABI: u32 = \([0-9]*\);/\1/p' "$root/capi/build.rs")"
[[ -n $version && -n $abi ]] || { echo "capi/install.sh: no version or ABI found" >&2; exit 1; }
for f in libopenssl_reload.so libopenssl_reload.a; do
  [[ -f $from/$f ]] || { echo "capi/install.sh: $from/$f missing: cargo build --release -p openssl-reload-capi" >&2; exit 1; }
done

install -d "$destdir$libdir/pkgconfig" "$destdir$includedir"
install -m 0644 "$from/libopenssl_reload.so" "$destdir$libdir/libopenssl_reload.so.$version"
ln -sfn "libopenssl_reload.so.$version" "$destdir$libdir/libopenssl_reload.so.$abi"
ln -sfn "libopenssl_reload.so.$abi" "$destdir$libdir/libopenssl_reload.so"
install -m 0644 "$from/libopenssl_reload.a" "$destdir$libdir/libopenssl_reload.a"
install -m 0644 "$root/capi/include/openssl_reload.h" "$destdir$includedir/openssl_reload.h"
for pc in openssl-reload openssl-reload-static; do
  sed -e "s|@PREFIX@|$prefix|" -e "s|@LIBDIR@|$libdir|" -e "s|@INCLUDEDIR@|$includedir|" \
    -e "s|@VERSION@|$version|" "$root/capi/$pc.pc.in" >"$destdir$libdir/pkgconfig/$pc.pc"
  chmod 0644 "$destdir$libdir/pkgconfig/$pc.pc"
done
