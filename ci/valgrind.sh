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
# Then two library tests run alone under memcheck:
# - the one that replaces a provider instance (a fresh instance of OpenSSL's
#   legacy module, as after a TPM outage: dladdr, dlopen, dlsym and
#   OSSL_PROVIDER_add_builtin in src/ffi/provider.rs);
# - the one that makes standby instances of the libp11 engine from anonymous
#   copies, as after a token outage (memfd_create, dladdr, the dynamic engine
#   and restarts in src/ffi/engine.rs), with a SoftHSM2 token of its own.
#
# Usage: ci/valgrind.sh [CYCLES]
# Needs: valgrind; softhsm2 and libengine-pkcs11-openssl (installed by
# ci/apt.sh when run as root).
set -euo pipefail

cd "$(dirname "$0")/.."
cycles="${1:-200}"

if ! command -v valgrind >/dev/null; then
    echo "valgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2
    exit 2
fi

ci/apt.sh softhsm2 libengine-pkcs11-openssl
cargo build --locked --example reload_cycle
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

# memcheck LABEL COMMAND...: fails on a memory error or a definite leak.
memcheck() {
    local label="$1" status=0 definitely_lost
    shift
    valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite \
        --error-exitcode=1 --log-file="$log" "$@" || status=$?
    cat "$log"
    definitely_lost="$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tr -d ,)"
    if [ "$status" -ne 0 ]; then
        echo "valgrind.sh: FAILED: $label: memcheck reported errors (exit $status)" >&2
        exit 1
    fi
    if [ -n "$definitely_lost" ] && [ "$definitely_lost" != 0 ]; then
        echo "valgrind.sh: FAILED: $label: ${definitely_lost} bytes definitely lost" >&2
        exit 1
    fi
    if ! grep -q "ERROR SUMMARY: 0 errors" "$log"; then
        echo "valgrind.sh: FAILED: $label: no clean error summary" >&2
        exit 1
    fi
    echo "valgrind.sh: $label: OK, definitely lost: ${definitely_lost:-0} bytes"
}

start=$SECONDS
memcheck "reload_cycle" target/debug/examples/reload_cycle "$cycles"
echo "valgrind.sh: ${cycles} cycles in $((SECONDS - start)) s under memcheck"

tests="$(cargo test --locked --lib --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["lib"]:
        print(m["executable"])')"
[ -n "$tests" ] || { echo "valgrind.sh: FAILED: no library test binary" >&2; exit 1; }
memcheck "provider instance replaced" "$tests" --ignored --exact --test-threads 1 \
    material::hardware::providers::tests::a_module_provider_is_replaced_by_a_fresh_instance_that_serves
memcheck "engine standby from copies" "$tests" --ignored --exact --test-threads 1 \
    material::hardware::engine::tests::a_standby_from_copies_opens_the_key_restarts_and_goes_in_service
