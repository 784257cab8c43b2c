#!/usr/bin/env bash
# The first flight, measured from the packets: Debian's nginx against the demo
# binary (`serve`), 1 and then 2 workers each, the same ECDSA P-256
# certificate (ci/bench-peers.sh), in interleaved rounds:
#   - tcpdump on lo times each connection from its ClientHello packet to the
#     server's ServerHello packet (the server's critical path: accept, read,
#     handshake, write), while a client runs: `openssl s_time -new`
#     (sequential: one connection at a time), then 4 of them at once
#     (concurrent);
#   - the handshake rate of each client run (connections / real seconds);
#   - in a round of its own, syscalls per connection: `strace -c -f` attached
#     to the server's processes during one `s_time -new` run (strace slows the
#     server, so no timing comes from that round).
# Medians over thousands of connections move far less than rates; each row
# shows the spread of the rounds' medians and rates too.
#
# Writes $OUT/latency.md and $OUT/latency.json (OUT defaults to target/bench).
# Installs nginx, tcpdump and strace when missing (root). Environment:
# OPENSSL_RELOAD_BENCH_QUICK=1 (1 round of 1 s), OPENSSL_RELOAD_BENCH_LATENCY_ROUNDS
# (5), OPENSSL_RELOAD_BENCH_LATENCY_SECONDS (3, per client run).
set -euo pipefail
cd "$(dirname "$0")/.."

out=${OPENSSL_RELOAD_BENCH_OUT:-${CARGO_TARGET_DIR:-$PWD/target}/bench}
target=${CARGO_TARGET_DIR:-$PWD/target}
nginx_port=${OPENSSL_RELOAD_BENCH_NGINX_PORT:-18443}
demo_port=${OPENSSL_RELOAD_BENCH_DEMO_PORT:-18444}
rounds=${OPENSSL_RELOAD_BENCH_LATENCY_ROUNDS:-5}
seconds=${OPENSSL_RELOAD_BENCH_LATENCY_SECONDS:-3}
if [ "${OPENSSL_RELOAD_BENCH_QUICK:-0}" = 1 ]; then rounds=1 seconds=1; fi
concurrent=4
mkdir -p "$out"

command -v tcpdump >/dev/null 2>&1 || ci/apt.sh tcpdump
command -v strace >/dev/null 2>&1 || ci/apt.sh strace
. ci/bench-peers.sh

# One client run against port $1 into $2.*: tcpdump around `s_time -new`,
# $3 clients at once.
timed_run() {
  local port=$1 prefix=$2 clients=$3 dump i pids=()
  tcpdump -i lo -nn -s 128 -B 16384 --time-stamp-precision=nano -w "$prefix.pcap" \
    "tcp port $port" 2>"$prefix.tcpdump" &
  dump=$!
  # tcpdump is capturing once it has said so.
  for _ in $(seq 200); do
    grep -q "listening on" "$prefix.tcpdump" 2>/dev/null && break
    sleep 0.01
  done
  for i in $(seq "$clients"); do
    openssl s_time -connect "127.0.0.1:$port" -new -time "$seconds" >"$prefix.stime$i" 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
  kill -INT "$dump"
  wait "$dump" || true
}

# Syscalls of the server's processes $2... during one sequential run against
# port $1, into $3.strace; the run's output in $3.stime1.
counted_run() {
  local port=$1 prefix=$2 tracer pid args=()
  shift 2
  for pid in "$@"; do args+=(-p "$pid"); done
  strace -c -f -o "$prefix.strace" "${args[@]}" &
  tracer=$!
  sleep 0.5
  openssl s_time -connect "127.0.0.1:$port" -new -time "$seconds" >"$prefix.stime1" 2>&1
  kill -INT "$tracer"
  wait "$tracer" || true
}

for workers in 1 2; do
  echo "=== $workers worker(s) each" >&2
  start_nginx "$workers"
  start_demo "$workers"
  for round in $(seq "$rounds"); do
    # Alternate which server goes first, so that drift cancels.
    if [ $((round % 2)) = 1 ]; then order="nginx demo"; else order="demo nginx"; fi
    for mode in seq conc; do
      clients=1
      [ "$mode" = conc ] && clients=$concurrent
      for server in $order; do
        port=$nginx_port
        [ "$server" = demo ] && port=$demo_port
        echo "latency $mode $server round $round" >&2
        timed_run "$port" "$work/lat-$workers-$mode-$server-$round" "$clients"
      done
    done
  done
  for server in nginx demo; do
    port=$nginx_port
    [ "$server" = demo ] && port=$demo_port
    echo "syscalls $server" >&2
    counted_run "$port" "$work/sys-$workers-$server" $(server_pids "$server")
  done
  stop_servers
done

export WORK=$work OUT=$out ROUNDS=$rounds SECONDS_PER_RUN=$seconds CONCURRENT=$concurrent
export NGINX_VERSION DEMO_VERSION OPENSSL_VERSION NGINX_PORT=$nginx_port DEMO_PORT=$demo_port
NGINX_VERSION=$("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //')
DEMO_VERSION=$("$demo_bin" --version)
OPENSSL_VERSION=$(openssl version)
python3 ci/bench-latency.py
