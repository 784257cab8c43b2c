#!/usr/bin/env bash
# Keys that stay in hardware (docs/hardware-keys.md): provisions a SoftHSM2
# token and a software TPM with ci/hsm-fixtures.sh in a temp directory, then
# runs the binary, a forking C server (tests/c/forking.c) and Debian's nginx
# with the module (built by ci/nginx.sh --build) against them:
# server/tests/cli/hardware/ (`--ignored`, OPENSSL_RELOAD_HSM_DIR naming the
# fixtures). Everything it starts is stopped on exit, also on failure.
#
#   ci/hardware-keys.sh
#   KEEP=1 ci/hardware-keys.sh    keep the fixture directory (for a look after a failure)
#
# Under CI (CI=true) a missing prerequisite is an error; the fixture script
# installs the Debian packages it needs when run as root (ci/apt.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "ci/hardware-keys.sh: $*" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ] && [ "${CI:-}" != true ]; then
  for tool in softhsm2-util swtpm tpm2-abrmd; do
    if ! command -v "$tool" >/dev/null; then
      echo "ci/hardware-keys.sh: skipped: $tool is missing (as root, ci/hsm-fixtures.sh installs it)"
      exit 0
    fi
  done
fi

dir="$(mktemp -d "${TMPDIR:-/tmp}/openssl-reload-hsm.XXXXXX")"
cleanup() { ci/hsm-fixtures.sh down "$dir" >/dev/null 2>&1 || true; [ -n "${KEEP:-}" ] || rm -rf "$dir"; }
trap cleanup EXIT

echo "--- ci/hardware-keys.sh: a SoftHSM2 token and a software TPM in $dir"
ci/hsm-fixtures.sh softhsm "$dir" || die "the SoftHSM2 fixture failed"
ci/hsm-fixtures.sh tpm "$dir" || die "the TPM fixture failed"

echo "--- ci/hardware-keys.sh: the forking C server (tests/c/forking.c)"
# As ci/capi.sh builds it: the staged library, through pkg-config.
# shellcheck source=ci/c-programs.sh
. ci/c-programs.sh
stage_capi "$dir"
compile_c "$dir" tests/c/forking.c forking

echo "--- ci/hardware-keys.sh: the nginx module (ci/nginx.sh --build)"
module="$(ci/nginx.sh --build | tail -n 1)"
[[ $module == "built "* ]] || die "ci/nginx.sh --build did not build the module"
export OPENSSL_RELOAD_NGINX_MODULE="${module#built }"

echo "--- ci/hardware-keys.sh: the binary, the C server and nginx with keys in hardware"
# The C server finds the token as the binary does (the tests set these for it).
export SOFTHSM2_CONF="$dir/softhsm2.conf" PKCS11_MODULE_PATH=/usr/lib/softhsm/libsofthsm2.so
OPENSSL_RELOAD_HSM_DIR="$dir" OPENSSL_RELOAD_C_PROGRAMS="$dir/bin" cargo test --locked -p openssl-reload-server --test cli \
  -- --ignored --test-threads 1 --show-output hardware::
