#!/usr/bin/env bash
# The test command: formatting, lints, unit + integration tests + doctests (the
# README example among them), docs, then the FIPS and packaging suites.
#
# It installs what a fresh Debian 12 machine lacks. Under CI (CI=true) every suite
# must run; outside CI a suite whose prerequisites are missing is skipped with the
# reason printed.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

step "system packages"
# libssl-dev + pkg-config: openssl-sys links the system OpenSSL; curl and openssl:
# the real clients the binary is tested with; util-linux: `script` for the pty test;
# gcc, g++, binutils (readelf): the C interface's header and C tests (ci/capi.sh);
# faketime: an expired OCSP response from `openssl ocsp`, which cannot backdate.
ci/apt.sh libssl-dev pkg-config openssl curl util-linux ca-certificates valgrind gcc g++ binutils \
  faketime

# Every feature but `vendored`, which would build OpenSSL 3.x from source and link
# it instead of the system library that the tests are about (build.md): `fips` of
# both members of the workspace, the library and the server.
FEATURES=openssl-reload/fips,openssl-reload-server/fips

step "cargo fmt --check"
cargo fmt --all -- --check

step "no source file over 400 lines"
# One idea per file: a file that grows past this holds two (style.md).
too_long=$(git ls-files -z 'src/*.rs' 'server/src/*.rs' 'capi/src/*.rs' | xargs -0 wc -l |
  awk '$2 != "total" && $1 > 400')
if [ -n "$too_long" ]; then
  echo "source files over 400 lines; split them by idea:" >&2
  echo "$too_long" >&2
  exit 1
fi
echo "every file of src/, server/src/ and capi/src/ is 400 lines or fewer"

step "cargo clippy"
cargo clippy --locked --workspace --all-targets --features "$FEATURES" -- -D warnings
# The library alone, as a dependency with no features compiles it.
cargo clippy --locked -p openssl-reload --lib --no-default-features -- -D warnings

step "the library's dependencies: none of the server's"
# What a library user compiles: no command line, HTTP or JSON crates.
server_deps=$(cargo tree --locked -e normal -p openssl-reload --prefix none --format '{p}' |
  grep -E '^(clap|hyper|hyper-util|http-body-util|serde_json|tracing-subscriber) ' || true)
if [ -n "$server_deps" ]; then
  echo "openssl-reload depends on crates of the server:" $server_deps >&2
  exit 1
fi
echo "none of clap, hyper, hyper-util, http-body-util, serde_json, tracing-subscriber"

step "cargo test"
cargo test --locked --workspace --features "$FEATURES"

step "docs/design.md names tests that exist"
missing=0
for name in $(grep -o '(test `[a-z_0-9:]*`)' docs/design.md | sed 's/.*::\([a-z_0-9]*\)`)/\1/' | sort -u); do
  if ! grep -rqE "fn $name\b" tests src; then
    echo "docs/design.md names a test that does not exist: $name" >&2
    missing=1
  fi
done
[ "$missing" = 0 ] || exit 1
echo "every test docs/design.md names exists"

step "cargo doc"
RUSTDOCFLAGS=-Dwarnings cargo doc --locked --no-deps -p openssl-reload --features fips

# capi: the C header against cbindgen, as C and C++, a C program under valgrind.
# valgrind: 200 reload cycles under memcheck, 0 bytes definitely lost (~25 s), then
# a provider instance replaced and a standby libp11 engine (a SoftHSM2 token).
# ci/fuzz.sh (cargo-fuzz) is not run here: building the instrumented target takes
# minutes; the proptest properties in tests/it/props.rs run instead.
# nginx: the dynamic module (nginx/) built against Debian's nginx-dev and loaded
# into Debian's nginx, master and two workers.
# nginx-package: its .deb (pkg/nginx-module/debian) built, linted, installed and exercised.
# hardware-keys: the binary with keys in a SoftHSM2 token and a software TPM
# (ci/hsm-fixtures.sh provisions them).
# integrations: the framework programs (integrations/, a workspace of its own)
# against actix-web, axum-server, Pingora, tonic and hyper-openssl.
for suite in capi valgrind fips package nginx nginx-package hardware-keys integrations; do
  if [ -x "ci/$suite.sh" ]; then
    step "ci/$suite.sh"
    "ci/$suite.sh"
  fi
done

step "all suites passed"
