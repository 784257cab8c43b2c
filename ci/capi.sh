#!/usr/bin/env bash
# The C interface (capi/): the committed header matches what cbindgen makes of
# the code, it compiles as C11 and as C++17, and a C program linked against
# libopenssl_reload.so runs clean under valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."

CBINDGEN_VERSION=0.29.2
if ! cbindgen --version 2>/dev/null | grep -qx "cbindgen $CBINDGEN_VERSION"; then
  cargo install cbindgen --version "$CBINDGEN_VERSION" --locked
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "--- ci/capi.sh: the header matches the code (cbindgen $CBINDGEN_VERSION)"
cbindgen --quiet --config capi/cbindgen.toml --output "$out/openssl_reload.h" capi
if ! diff -u capi/include/openssl_reload.h "$out/openssl_reload.h"; then
  echo "capi/include/openssl_reload.h is out of date: run" >&2
  echo "  cbindgen --config capi/cbindgen.toml --output capi/include/openssl_reload.h capi" >&2
  exit 1
fi

echo "--- ci/capi.sh: the header compiles as C++"
g++ -std=c++17 -Wall -Wextra -Werror -Icapi/include -fsyntax-only tests/c/header.cpp

echo "--- ci/capi.sh: a C program against libopenssl_reload.so, under valgrind"
cargo build --locked -p openssl-reload-capi
lib=target/debug
readelf -d "$lib/libopenssl_reload.so" | grep -q 'SONAME.*libopenssl_reload.so.0' ||
  { echo "libopenssl_reload.so lacks the SONAME libopenssl_reload.so.0" >&2; exit 1; }
# The installed layout: the file under its SONAME, the link-time name beside it.
mkdir "$out/lib"
cp "$lib/libopenssl_reload.so" "$out/lib/libopenssl_reload.so.0"
ln -s libopenssl_reload.so.0 "$out/lib/libopenssl_reload.so"
gcc -std=c11 -Wall -Wextra -Werror -pedantic -Icapi/include tests/c/smoke.c \
  -L"$out/lib" -lopenssl_reload -o "$out/smoke"
LD_LIBRARY_PATH="$out/lib" valgrind --quiet --error-exitcode=99 --leak-check=full \
  --errors-for-leak-kinds=definite "$out/smoke" "$out/missing.pem"
