#!/usr/bin/env bash
# Fuzzes the material loader with cargo-fuzz (libFuzzer + AddressSanitizer) for a
# bounded time and fails if a crash (panic or sanitizer report) is found.
#
# The target, fuzz/fuzz_targets/load_material.rs, feeds certificate, key,
# PKCS#12 and CA bytes plus an optional passphrase through the public API
# (`ReloadingAcceptor::builder(..).check()`). Seeds are made here with the
# openssl CLI in the target's input layout (mode byte, passphrase, 2-byte
# certificate length, certificate bytes, key bytes); the corpus grows in
# fuzz/corpus/load_material and crashes land in fuzz/artifacts/load_material
# (both git-ignored).
#
# This machine has a stable toolchain only: RUSTC_BOOTSTRAP=1 lets cargo-fuzz
# pass the nightly flags it needs (-Zsanitizer). The first run builds the fuzz
# workspace in release mode (about 4 minutes on two cores); later runs reuse it.
#
# Usage: ci/fuzz.sh [SECONDS]       (default 60, or $FUZZ_SECONDS)
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${1:-${FUZZ_SECONDS:-60}}"
target=load_material

if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

seeds="$(mktemp -d)"
work="$(mktemp -d)"
scratch="$(mktemp -d)" # the target's files, one directory per fuzzing process
trap 'rm -rf "$seeds" "$work" "$scratch"' EXIT

# seed NAME MODE PASS CERT KEY: PASS "-" means no passphrase.
seed() {
    local name=$1 mode=$2 pass=$3 cert=$4 key=$5 n
    n=$(stat -c %s "$cert")
    {
        printf "\\x$(printf %02x "$mode")"
        if [ "$pass" = - ]; then
            printf '\xff'
        else
            printf "\\x$(printf %02x ${#pass})%s" "$pass"
        fi
        printf "\\x$(printf %02x $((n >> 8 & 255)))\\x$(printf %02x $((n & 255)))"
        cat "$cert" "$key"
    } >"$seeds/$name"
}

(
    cd "$work"
    pass=fuzz-pass
    q() { "$@" >/dev/null 2>&1; }
    q openssl ecparam -name prime256v1 -genkey -noout -out ca.key
    q openssl req -x509 -new -key ca.key -subj /CN=fuzz-ca -days 30 -out ca.pem
    q openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out leaf.key
    q openssl req -new -key leaf.key -subj /CN=localhost -out leaf.csr
    q openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -out leaf.pem
    q openssl x509 -in leaf.pem -outform DER -out leaf.der
    q openssl pkcs8 -topk8 -nocrypt -in leaf.key -outform DER -out leaf.key.der
    q openssl pkcs8 -topk8 -v2 aes-256-cbc -passout "pass:$pass" -in leaf.key -out leaf.key.enc.pem
    q openssl pkcs8 -topk8 -v2 aes-256-cbc -passout "pass:$pass" -in leaf.key -outform DER -out leaf.key.enc.der
    q openssl ec -in ca.key -aes256 -passout "pass:$pass" -out ca.key.enc.pem
    q openssl genrsa -traditional -out rsa.key 2048
    q openssl req -x509 -new -key rsa.key -subj /CN=rsa -days 30 -out rsa.pem
    q openssl genpkey -algorithm ED25519 -out ed.key
    q openssl req -x509 -new -key ed.key -subj /CN=ed25519 -days 30 -out ed.pem
    q openssl pkcs12 -export -in leaf.pem -inkey leaf.key -certfile ca.pem -passout "pass:$pass" -out leaf.p12
    q openssl pkcs12 -export -in leaf.pem -inkey leaf.key -passout pass: -out leaf-nopass.p12
    cat leaf.pem ca.pem >chain.pem
)
w="$work"
seed pem-pair 0 - "$w/leaf.pem" "$w/leaf.key"
seed der-pair 0 - "$w/leaf.der" "$w/leaf.key.der"
seed encrypted-pem 0 fuzz-pass "$w/leaf.pem" "$w/leaf.key.enc.pem"
seed encrypted-der 0 fuzz-pass "$w/leaf.pem" "$w/leaf.key.enc.der"
seed encrypted-no-pass 0 - "$w/leaf.pem" "$w/leaf.key.enc.pem"
seed encrypted-wrong-pass 0 wrong "$w/leaf.pem" "$w/leaf.key.enc.pem"
seed traditional-encrypted 0 fuzz-pass "$w/ca.pem" "$w/ca.key.enc.pem"
seed rsa-pkcs1 0 - "$w/rsa.pem" "$w/rsa.key"
seed ed25519 0 - "$w/ed.pem" "$w/ed.key"
seed one-file 1 - "$w/leaf.pem" "$w/leaf.key"
seed pkcs12 2 fuzz-pass "$w/leaf.p12" /dev/null
seed pkcs12-empty-pass 2 - "$w/leaf-nopass.p12" /dev/null
seed chain-and-ca 3 - "$w/chain.pem" "$w/leaf.key"
seed validity-warn 4 - "$w/leaf.pem" "$w/leaf.key"
echo "fuzz.sh: $(ls "$seeds" | wc -l) seeds"

corpus="fuzz/corpus/$target"
artifacts="fuzz/artifacts/$target"
mkdir -p "$corpus" "$artifacts"
crashes_before=$(find "$artifacts" -type f | wc -l)
log="$(mktemp)"
start=$SECONDS
status=0
(cd fuzz && TMPDIR="$scratch" cargo fuzz run "$target" "../$corpus" "$seeds" -- \
    -max_total_time="$seconds" -max_len=16384 -timeout=10 -print_final_stats=1) 2>&1 |
    tee "$log" | grep -E '^(#[0-9]+ +(INITED|DONE|pulse)|Done|==[0-9]+==|stat::|SUMMARY|thread .* panicked)' || status=$?
status=${PIPESTATUS[0]:-$status}
crashes=$(($(find "$artifacts" -type f | wc -l) - crashes_before))
runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n1)
echo "fuzz.sh: ${runs:-?} executions in $((SECONDS - start)) s (limit ${seconds} s), ${crashes} new crash artifacts, corpus $(ls "$corpus" | wc -l) inputs"
if [ "$crashes" -ne 0 ] || ! grep -q '^Done [0-9]* runs' "$log"; then
    tail -n 60 "$log" >&2
    echo "fuzz.sh: FAILED; see $artifacts" >&2
    exit 1
fi
