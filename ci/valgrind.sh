#!/usr/bin/env bash
# Runs a reload workload under valgrind memcheck and fails on any definite leak
# or memory error.
#
# The workload is examples/reload_cycle.rs: CYCLES reloads (default 200) that
# alternate two certificates through reload_now while the poller races it, with
# a TLS handshake every fifth cycle; everything is dropped before exit.
# It takes about 25 s on two cores (plus the example's debug build); whether CI
# runs it is ci/test.sh's choice.
#
# Usage: ci/valgrind.sh [CYCLES]
# Needs: valgrind (apt-get install valgrind).
set -euo pipefail

cd "$(dirname "$0")/.."
cycles="${1:-200}"

if ! command -v valgrind >/dev/null; then
    echo "valgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2
    exit 2
fi

cargo build --locked --example reload_cycle
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

start=$SECONDS
status=0
valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite \
    --error-exitcode=1 --log-file="$log" \
    target/debug/examples/reload_cycle "$cycles" || status=$?
cat "$log"
echo "valgrind.sh: ${cycles} cycles in $((SECONDS - start)) s under memcheck"

definitely_lost="$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tr -d ,)"
if [ "$status" -ne 0 ]; then
    echo "valgrind.sh: FAILED: memcheck reported errors (exit $status)" >&2
    exit 1
fi
if [ -n "$definitely_lost" ] && [ "$definitely_lost" != 0 ]; then
    echo "valgrind.sh: FAILED: ${definitely_lost} bytes definitely lost" >&2
    exit 1
fi
if ! grep -q "ERROR SUMMARY: 0 errors" "$log"; then
    echo "valgrind.sh: FAILED: no clean error summary" >&2
    exit 1
fi
echo "valgrind.sh: OK, definitely lost: ${definitely_lost:-0} bytes"
