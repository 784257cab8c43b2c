#!/usr/bin/env bash
# The C interface (capi/, docs/c-api.md): the committed header matches what
# cbindgen makes of the code and compiles as C11 and as C++17; the library,
# installed into a staging directory by capi/install.sh, builds the programs of
# tests/c/ and the example of docs/c-api.md with the flags of
# `pkg-config openssl-reload` (the static library too); then the programs run
# under valgrind, the error paths alone and the server and client driven over
# real sockets by server/tests/cli/capi.rs (session resumption across contexts:
# capi/sessions.rs with tests/c/sessions.c; a forking server: capi/forking.rs
# with tests/c/forking.c).
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

# Lengths are size_t, as C declares them and docs/c-api.md's example passes
# them (cbindgen's default for usize, uintptr_t, is the same size but not the
# type a C caller writes).
if grep -n 'uintptr_t' capi/include/openssl_reload.h; then
  echo "capi/include/openssl_reload.h declares uintptr_t where C takes size_t (usize_is_size_t)" >&2
  exit 1
fi

echo "--- ci/capi.sh: the header compiles as C++"
g++ -std=c++17 -Wall -Wextra -Werror -Icapi/include -fsyntax-only tests/c/header.cpp

echo "--- ci/capi.sh: the library, installed as a distribution lays it out"
# shellcheck source=ci/c-programs.sh
. ci/c-programs.sh
stage_capi "$out"
readelf -d "${CARGO_TARGET_DIR:-target}/debug/libopenssl_reload.so" | grep -q 'SONAME.*libopenssl_reload.so.0' ||
  { echo "libopenssl_reload.so lacks the SONAME libopenssl_reload.so.0" >&2; exit 1; }
# As docs/c-api.md says for a staged install: the .pc files name the installed
# paths (/usr/...), and PKG_CONFIG_SYSROOT_DIR puts the staging directory in
# front of them.
export PKG_CONFIG_PATH="$out/stage/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$out/stage"
pkg-config --exists --print-errors openssl-reload openssl-reload-static
[[ $(pkg-config --cflags openssl-reload) == "-I$out/stage/usr/include"* ]] ||
  { echo "pkg-config --cflags openssl-reload does not name the staged headers" >&2; exit 1; }

echo "--- ci/capi.sh: the C programs, with the flags of pkg-config openssl-reload"
# The programs call OpenSSL themselves, hence libssl and libcrypto (which
# openssl-reload.pc lists as Requires.private: the library's own dependency).
for program in smoke server client sessions forking; do
  compile_c "$out" "tests/c/$program.c" "$program"
done
# The 40-line server of docs/c-api.md compiles as printed.
awk '/<!-- example: server.c -->/ {f = 1; next} f && /^```c/ {g = 1; next} g && /^```/ {exit} g' \
  docs/c-api.md >"$out/example.c"
[[ $(wc -l <"$out/example.c") -ge 30 ]] || { echo "no example found in docs/c-api.md" >&2; exit 1; }
compile_c "$out" "$out/example.c" example
# The static library, linked as docs/c-api.md says (openssl-reload-static: the
# archive and Rust's native libraries), makes a program that does not need the
# shared library: the .so beside the .a is not picked up.
# shellcheck disable=SC2046
gcc -std=c11 -Wall -Wextra -Werror tests/c/smoke.c \
  $(pkg-config --cflags --libs openssl-reload-static) -o "$out/bin/smoke-static"
if readelf -d "$out/bin/smoke-static" | grep 'NEEDED.*libopenssl_reload'; then
  echo "smoke-static, linked with pkg-config openssl-reload-static, needs the shared library" >&2
  exit 1
fi
env -u LD_LIBRARY_PATH "$out/bin/smoke-static" "$out/missing.pem" >/dev/null

echo "--- ci/capi.sh: error paths under valgrind"
valgrind --quiet --error-exitcode=99 --leak-check=full --show-possibly-lost=no \
  --errors-for-leak-kinds=definite "$out/bin/smoke" "$out/missing.pem"

echo "--- ci/capi.sh: the C server and client, driven over real sockets, under valgrind"
OPENSSL_RELOAD_C_PROGRAMS="$out/bin" cargo test --locked -p openssl-reload-server --test cli \
  -- --ignored --test-threads 2 capi::
