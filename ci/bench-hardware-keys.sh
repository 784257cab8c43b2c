#!/usr/bin/env bash
# Full handshakes per second with the server key in hardware, against the same
# kind of key from a file (docs/hardware-keys.md, BENCHMARKS.md "Keys in
# hardware"). Reports; never passes or fails on the clock.
#
#   ci/bench-hardware-keys.sh            3 interleaved rounds of 4 s each
#   OPENSSL_RELOAD_BENCH_QUICK=1 ...     1 round of 1 s (a smoke run)
#
# One EC P-256 key three ways: the SoftHSM2 token's `ec-key` through the libp11
# engine, the same key from its PKCS#8 file (ci/hsm-fixtures.sh keeps a copy),
# and a P-256 key made inside a software TPM, through tpm2-openssl. Each is
# served by the demo binary and, as the baseline of what the key itself costs,
# by `openssl s_server` holding the same key the same way. The client is
# `openssl s_time -new` (one TLS 1.3 handshake after another, no resumption).
# Figures land in $OPENSSL_RELOAD_BENCH_OUT (default target/bench)/hardware-keys.md.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${OPENSSL_RELOAD_BENCH_OUT:-${CARGO_TARGET_DIR:-$PWD/target}/bench}
mkdir -p "$out"
if [ "${OPENSSL_RELOAD_BENCH_QUICK:-0}" = 1 ]; then rounds=1 secs=1; else rounds=3 secs=4; fi

cargo build --locked --release --bin openssl-reload
bin="$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)/openssl-reload"
dir="$(mktemp -d "${TMPDIR:-/tmp}/openssl-reload-bench-hsm.XXXXXX")"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  ci/hsm-fixtures.sh down "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
ci/hsm-fixtures.sh softhsm "$dir" >/dev/null
ci/hsm-fixtures.sh tpm "$dir" >/dev/null
set -a
# shellcheck disable=SC1091 # made above
. "$dir/env"
# shellcheck disable=SC1091
. "$dir/tpm-env"
set +a
printf '%s' "$HSM_PIN" >"$dir/pin.txt"

port=$((20000 + RANDOM % 10000))
# setup NAME: the command that serves on $port for configuration NAME.
serve() {
  local name=$1 kind=$2
  case "$name/$kind" in
    file/ours) exec "$bin" serve --listen "127.0.0.1:$port" --cert "$HSM_EC_CERT" --key "$HSM_DIR/ec-key.pem" ;;
    softhsm/ours) exec "$bin" serve --listen "127.0.0.1:$port" --cert "$HSM_EC_CERT" --key "$HSM_EC_URI" \
      --key-passphrase-file "$dir/pin.txt" ;;
    tpm/ours) exec "$bin" --provider tpm2 serve --listen "127.0.0.1:$port" --cert "$TPM_EC_CERT" \
      --key "store:$TPM_EC_URI" ;;
    file/s_server) exec openssl s_server -quiet -accept "127.0.0.1:$port" -www -cert "$HSM_EC_CERT" \
      -key "$HSM_DIR/ec-key.pem" ;;
    softhsm/s_server) OPENSSL_CONF="$HSM_OPENSSL_CONF" exec openssl s_server -quiet -accept "127.0.0.1:$port" -www \
      -cert "$HSM_EC_CERT" -engine pkcs11 -keyform engine -key "$HSM_EC_URI" -pass "file:$dir/pin.txt" ;;
    tpm/s_server) OPENSSL_CONF="$TPM_OPENSSL_CONF" exec openssl s_server -quiet -accept "127.0.0.1:$port" -www \
      -cert "$TPM_EC_CERT" -key "$TPM_EC_URI" ;;
  esac
}

# rate NAME KIND: full handshakes per second, one s_time run.
rate() {
  serve "$1" "$2" >"$dir/server.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 200); do
    openssl s_client -connect "127.0.0.1:$port" -CAfile "$HSM_CA" </dev/null >/dev/null 2>&1 && break
    sleep 0.05
  done
  kill -0 "$pid" 2>/dev/null || { echo "ci/bench-hardware-keys.sh: $1 $2 did not start: $(cat "$dir/server.log")" >&2; exit 1; }
  # s_time's own "real seconds" are whole seconds: the wall clock is taken here.
  local t0 t1 n
  t0=$(date +%s.%N)
  n=$(openssl s_time -connect "127.0.0.1:$port" -new -time "$secs" -CAfile "$HSM_CA" 2>/dev/null |
    awk '/connections in .* real seconds/ {print $1; exit}')
  t1=$(date +%s.%N)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  awk -v n="${n:-0}" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", n / (b - a)}'
}

declare -A sum
configs=(file softhsm tpm)
for round in $(seq "$rounds"); do
  for name in "${configs[@]}"; do
    for kind in ours s_server; do
      r=$(rate "$name" "$kind")
      echo "round $round: $name $kind: $r handshakes/s"
      sum[$name/$kind]=$(awk -v a="${sum[$name/$kind]:-0}" -v b="$r" 'BEGIN {print a + b}')
    done
  done
done

{
  echo "| key | openssl-reload (handshakes/s) | openssl s_server (handshakes/s) | openssl-reload / s_server | against the file key (openssl-reload) |"
  echo "|---|---:|---:|---:|---:|"
  file=$(awk -v s="${sum[file/ours]}" -v n="$rounds" 'BEGIN {print s / n}')
  for name in "${configs[@]}"; do
    awk -v o="${sum[$name/ours]}" -v s="${sum[$name/s_server]}" -v n="$rounds" -v f="$file" -v name="$name" \
      'BEGIN {printf "| %s | %.1f | %.1f | %.2f | %.3f |\n", name, o / n, s / n, o / s, (o / n) / f}'
  done
  echo
  echo "EC P-256 throughout; one \`openssl s_time -new\` client (TLS 1.3, no resumption), $rounds interleaved round(s) of $secs s; $(nproc) cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)."
} | tee "$out/hardware-keys.md"
