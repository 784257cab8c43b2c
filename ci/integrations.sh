#!/usr/bin/env bash
# The framework integrations (integrations/, a workspace of its own): lints, then
# each program's test against the real framework, files rotating under load.
# Debug profile: the frameworks are large, and the tests measure no speed.
set -euo pipefail
cd "$(dirname "$0")/../integrations"

printf '\n=== integrations: cargo clippy\n'
cargo clippy --locked --workspace --all-targets -- -D warnings
printf '\n=== integrations: cargo test\n'
cargo test --locked --workspace -- --nocapture
