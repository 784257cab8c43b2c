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
# the real clients the binary is tested with; util-linux: `script` for the pty test.
ci/apt.sh libssl-dev pkg-config openssl curl util-linux ca-certificates valgrind

# Every feature but `vendored`, which would build OpenSSL 3.x from source and link
# it instead of the system library that the tests are about (build.md).
FEATURES=cli,fips

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --locked --all-targets --features "$FEATURES" -- -D warnings
cargo clippy --locked --lib --no-default-features -- -D warnings

step "cargo test"
cargo test --locked --features "$FEATURES"

step "cargo doc"
RUSTDOCFLAGS=-Dwarnings cargo doc --locked --no-deps --features "$FEATURES"

# valgrind: 200 reload cycles under memcheck, 0 bytes definitely lost (~25 s).
# ci/fuzz.sh (cargo-fuzz) is not run here: building the instrumented target takes
# minutes; the proptest properties in tests/it/props.rs run instead.
for suite in valgrind fips package; do
  if [ -x "ci/$suite.sh" ]; then
    step "ci/$suite.sh"
    "ci/$suite.sh"
  fi
done

step "all suites passed"
