#!/usr/bin/env bash
# Peer comparison: Debian's nginx (1 worker process) against the demo binary
# `openssl-reload serve` (1 tokio worker thread: TOKIO_WORKER_THREADS=1), both on
# 127.0.0.1 with the same ECDSA P-256 certificate, measured by the same client
# (the handshake benchmark in client-only mode: 2 threads, full TLS 1.3
# handshakes, interleaved rounds). Reports both handshake rates and their ratio.
#
# Writes $OUT/nginx.md and $OUT/peers.{md,json} (OUT defaults to target/bench).
# Installs nginx when missing (root; apt-get update first). Environment:
# OPENSSL_RELOAD_BENCH_QUICK=1, OPENSSL_RELOAD_BENCH_SEGMENT_MS/_ROUNDS,
# OPENSSL_RELOAD_BENCH_NGINX_PORT (18443), OPENSSL_RELOAD_BENCH_DEMO_PORT (18444).
set -euo pipefail
cd "$(dirname "$0")/.."

out=${OPENSSL_RELOAD_BENCH_OUT:-${CARGO_TARGET_DIR:-$PWD/target}/bench}
target=${CARGO_TARGET_DIR:-$PWD/target}
nginx_port=${OPENSSL_RELOAD_BENCH_NGINX_PORT:-18443}
demo_port=${OPENSSL_RELOAD_BENCH_DEMO_PORT:-18444}
mkdir -p "$out"

# nginx: Debian's package (policy-rc.d, where present, keeps its service from starting).
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  ci/apt.sh nginx
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --locked --release --bin openssl-reload
cargo bench --locked --bench handshake --no-run

work=$(mktemp -d)
nginx_pid=
demo_pid=
cleanup() {
  for pid in "$nginx_pid" "$demo_pid"; do
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  done
  for pid in "$nginx_pid" "$demo_pid"; do
    if [ -n "$pid" ]; then wait "$pid" 2>/dev/null || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

cargo bench --locked --bench handshake -- --write-cert "$work" >/dev/null
mkdir -p "$work/nginx-tmp"
cat >"$work/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx-tmp/body;
  proxy_temp_path $work/nginx-tmp/proxy;
  fastcgi_temp_path $work/nginx-tmp/fastcgi;
  uwsgi_temp_path $work/nginx-tmp/uwsgi;
  scgi_temp_path $work/nginx-tmp/scgi;
  server {
    listen 127.0.0.1:$nginx_port ssl;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { return 200 "ok\n"; }
  }
}
EOF
# The key must be readable by the master process only, which is root here.
"$nginx_bin" -e "$work/nginx-error.log" -p "$work" -c "$work/nginx.conf" &
nginx_pid=$!

TOKIO_WORKER_THREADS=1 "$target/release/openssl-reload" serve \
  --cert "$work/cert.pem" --key "$work/key.pem" \
  --listen "127.0.0.1:$demo_port" --log warn 2>"$work/demo.log" &
demo_pid=$!

wait_port() {
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "bench-nginx: nothing listens on 127.0.0.1:$1" >&2
  cat "$work/nginx-error.log" "$work/demo.log" >&2 || true
  return 1
}
wait_port "$nginx_port"
wait_port "$demo_port"

nginx_version=$("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //')
demo_version=$("$target/release/openssl-reload" --version)
cargo bench --locked --bench handshake -- \
  --peers "nginx=127.0.0.1:$nginx_port,openssl-reload=127.0.0.1:$demo_port"

{
  printf '### Peer: %s (1 worker process) vs %s serve (TOKIO_WORKER_THREADS=1)\n\n' "$nginx_version" "$demo_version"
  printf 'Same ECDSA P-256 certificate, same client (2 threads, full TLS 1.3 handshakes, then close), interleaved rounds.\n\n'
  cat "$out/peers.md"
} >"$out/nginx.md"
echo
cat "$out/nginx.md"
