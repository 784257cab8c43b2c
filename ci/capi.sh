#!/usr/bin/env bash
# The C interface (capi/, docs/c-api.md): the committed header matches what
# cbindgen makes of the code and compiles as C11 and as C++17; the library,
# installed into a staging directory by capi/install.sh, builds the programs of
# tests/c/ and the example of docs/c-api.md with the flags of
# `pkg-config openssl-reload` (the static library too); then the programs run
# under valgrind, the error paths alone and the server and client driven over
# real sockets by server/tests/cli/capi.rs (session resumption across contexts:
# capi/sessions.rs with tests/c/sessions.c).
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

echo "--- ci/capi.sh: the library, installed as a distribution lays it out"
cargo build --locked -p openssl-reload-capi
lib="${CARGO_TARGET_DIR:-target}/debug"
readelf -d "$lib/libopenssl_reload.so" | grep -q 'SONAME.*libopenssl_reload.so.0' ||
  { echo "libopenssl_reload.so lacks the SONAME libopenssl_reload.so.0" >&2; exit 1; }
capi/install.sh --destdir "$out/stage" --prefix /usr --from "$lib"
export PKG_CONFIG_PATH="$out/stage/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$out/stage"
pkg-config --exists --print-errors openssl-reload

echo "--- ci/capi.sh: the C programs, with the flags of pkg-config openssl-reload"
mkdir "$out/bin"
# The programs call OpenSSL themselves, hence libssl and libcrypto (which
# openssl-reload.pc lists as Requires.private: the library's own dependency).
cflags="$(pkg-config --cflags openssl-reload)"
libs="$(pkg-config --libs openssl-reload libssl libcrypto) -Wl,-rpath,$out/stage/usr/lib"
for program in smoke server client sessions; do
  # shellcheck disable=SC2086 # word splitting of the flags is intended
  gcc -std=c11 -Wall -Wextra -Werror -pedantic $cflags "tests/c/$program.c" $libs -o "$out/bin/$program"
done
# The 40-line server of docs/c-api.md compiles as printed.
awk '/<!-- example: server.c -->/ {f = 1; next} f && /^```c/ {g = 1; next} g && /^```/ {exit} g' \
  docs/c-api.md >"$out/example.c"
[[ $(wc -l <"$out/example.c") -ge 30 ]] || { echo "no example found in docs/c-api.md" >&2; exit 1; }
# shellcheck disable=SC2086
gcc -std=c11 -Wall -Wextra -Werror -pedantic $cflags "$out/example.c" $libs -o "$out/bin/example"
# The static library links too (pkg-config --static adds Rust's native libraries).
# shellcheck disable=SC2086
gcc -std=c11 $cflags tests/c/smoke.c "$out/stage/usr/lib/libopenssl_reload.a" \
  $(pkg-config --static --libs openssl-reload | sed "s/-lopenssl_reload//") \
  -o "$out/bin/smoke-static"
"$out/bin/smoke-static" "$out/missing.pem" >/dev/null

echo "--- ci/capi.sh: error paths under valgrind"
valgrind --quiet --error-exitcode=99 --leak-check=full --show-possibly-lost=no \
  --errors-for-leak-kinds=definite "$out/bin/smoke" "$out/missing.pem"

echo "--- ci/capi.sh: the C server and client, driven over real sockets, under valgrind"
OPENSSL_RELOAD_C_PROGRAMS="$out/bin" cargo test --locked -p openssl-reload-server --test cli \
  -- --ignored --test-threads 2 capi::
