#!/usr/bin/env bash
# Keys that stay in hardware (docs/hardware-keys.md): provisions a SoftHSM2
# token and a software TPM with ci/hsm-fixtures.sh in a temp directory, then
# runs the binary against them: server/tests/cli/hardware/ (`--ignored`,
# OPENSSL_RELOAD_HSM_DIR naming the fixtures). Everything it starts is stopped
# on exit, also on failure.
#
#   ci/hardware-keys.sh
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
cleanup() { ci/hsm-fixtures.sh down "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT

echo "--- ci/hardware-keys.sh: a SoftHSM2 token and a software TPM in $dir"
ci/hsm-fixtures.sh softhsm "$dir" || die "the SoftHSM2 fixture failed"
ci/hsm-fixtures.sh tpm "$dir" || die "the TPM fixture failed"

echo "--- ci/hardware-keys.sh: the binary with keys in hardware"
OPENSSL_RELOAD_HSM_DIR="$dir" cargo test --locked -p openssl-reload-server --test cli \
  -- --ignored --test-threads 1 hardware::
