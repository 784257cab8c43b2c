#!/usr/bin/env bash
# The framework integrations (integrations/, a workspace of its own): lints, then
# each program's test against the real framework, files rotating under load.
# Debug profile: the frameworks are large, and the tests measure no speed.
set -euo pipefail
cd "$(dirname "$0")/.."

# cmake: pingora-core builds zlib-ng (flate2's zlib-ng feature) with it.
ci/apt.sh cmake
# pingora-openssl turns on openssl-sys's `vendored` feature, which Cargo then
# unifies across every member built with it: each would link an OpenSSL built
# from source. The product is about the system's OpenSSL, so link that one.
export OPENSSL_NO_VENDOR=1

printf '\n=== integrations: README snippets match the programs\n'
python3 ci/readme-snippets.py --min 5

cd integrations
printf '\n=== integrations: cargo fmt --check\n'
cargo fmt --all -- --check

printf '\n=== integrations: cargo clippy\n'
cargo clippy --locked --workspace --all-targets -- -D warnings
printf '\n=== integrations: cargo test\n'
cargo test --locked --workspace -- --nocapture
