#!/usr/bin/env bash
# The nginx module's cost (issue #28, "Speed"): Debian's nginx as shipped
# ("stock") against the same nginx with the module loaded and `openssl_reload
# on;` in the server block ("module"), everything else the same (the
# configuration of ci/bench-peers.sh, one ECDSA P-256 certificate), both
# running at once on 127.0.0.1, 1 and then 2 workers each, in interleaved
# rounds (which instance goes first alternates):
#   - full TLS 1.3 handshakes: `openssl s_time -new` alone (sequential) and 4
#     of them at once (concurrent); the rate is connections / wall-clock time
#     of the run, measured around the clients (s_time's own real seconds are
#     whole seconds);
#   - requests over keep-alive connections, HTTP/1.1 and HTTP/2: h2load as in
#     ci/bench-nginx.sh (run_h2load in ci/bench-peers.sh);
#   - beside each rate, the server's CPU time per handshake or request.
# Then instructions under callgrind: each instance with `master_process off;`
# (one process; ci/bench-peers.sh's config has `daemon off;`) under
# `valgrind --tool=callgrind`, started and stopped three times: at once, after
# N seconds idle, after N seconds serving `s_time -new`; (Ir serving − Ir
# idle) / connections is the cost of one connection's handshake, start-up,
# shutdown and timers cancelled.
#
# Writes $OUT/nginx-module.md and $OUT/nginx-module.json (OUT defaults to
# target/bench), keeps the callgrind files as $OUT/nginx-module-callgrind.*, and prints the table: ratios are module / stock (goals: ≥ 0.99
# on the clock, ≤ 1.01 in instructions). Builds the module (ci/nginx.sh
# --build). Environment: OPENSSL_RELOAD_BENCH_QUICK=1 (1 round of 1 s, 1
# worker), OPENSSL_RELOAD_BENCH_MODULE_ROUNDS (5), OPENSSL_RELOAD_BENCH_MODULE_SECONDS
# (3, per client run), OPENSSL_RELOAD_BENCH_MODULE_WORKERS ("1 2"),
# OPENSSL_RELOAD_BENCH_CALLGRIND_SECONDS (15), OPENSSL_RELOAD_BENCH_NGINX_PORT
# (18443, stock), OPENSSL_RELOAD_BENCH_MODULE_PORT (18445).
set -euo pipefail
cd "$(dirname "$0")/.."

out=${OPENSSL_RELOAD_BENCH_OUT:-${CARGO_TARGET_DIR:-$PWD/target}/bench}
target=${CARGO_TARGET_DIR:-$PWD/target}
nginx_port=${OPENSSL_RELOAD_BENCH_NGINX_PORT:-18443}
module_port=${OPENSSL_RELOAD_BENCH_MODULE_PORT:-18445}
demo_port=${OPENSSL_RELOAD_BENCH_DEMO_PORT:-18444}
rounds=${OPENSSL_RELOAD_BENCH_MODULE_ROUNDS:-5}
seconds=${OPENSSL_RELOAD_BENCH_MODULE_SECONDS:-3}
workers_list=${OPENSSL_RELOAD_BENCH_MODULE_WORKERS:-1 2}
cg_seconds=${OPENSSL_RELOAD_BENCH_CALLGRIND_SECONDS:-15}
quick=${OPENSSL_RELOAD_BENCH_QUICK:-0}
if [ "$quick" = 1 ]; then rounds=1 seconds=1 workers_list=1 cg_seconds=3; fi
h2_seconds=$seconds
concurrent=4
mkdir -p "$out"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

command -v valgrind >/dev/null 2>&1 || ci/apt.sh valgrind
echo "--- bench-nginx-module: the module (ci/nginx.sh --build)" >&2
module=$(ci/nginx.sh --build | tee /dev/stderr | sed -n 's/^built //p' | tail -n 1)
[ -f "$module" ] || { echo "bench-nginx-module: ci/nginx.sh --build named no module" >&2; exit 1; }

. ci/bench-peers.sh

stock_pid= module_pid=
port_of() { if [ "$1" = stock ]; then echo "$nginx_port"; else echo "$module_port"; fi; }
pids_of() {
  local pid=$stock_pid
  [ "$1" = module ] && pid=$module_pid
  echo "$pid" $(pgrep -P "$pid")
}

# Both instances' configurations, $1 workers, $2 more main-context lines:
# the module's is stock's plus load_module and `openssl_reload on;`.
write_confs() {
  nginx_conf "$1" "$nginx_port" stock "${2:-}" >"$work/stock.conf"
  nginx_conf "$1" "$module_port" module "load_module $module;
${2:-}" "openssl_reload on;" >"$work/module.conf"
}

stop_pair() {
  local pid
  for pid in $stock_pid $module_pid; do kill -QUIT "$pid" 2>/dev/null || true; done
  for pid in $stock_pid $module_pid; do wait "$pid" 2>/dev/null || true; done
  stock_pid= module_pid=
}
trap 'stop_pair; cleanup' EXIT

# $3 × `s_time -new` at once against port $1 into $2.*: each client's output in
# $2.stimeN, the run's wall-clock nanoseconds in $2.ns, the CPU time of the
# server's processes $4... before and after in $2.cpu0 and $2.cpu1.
stime_run() {
  local port=$1 prefix=$2 clients=$3 i start pids=()
  shift 3
  cpu_ns "$@" >"$prefix.cpu0"
  start=$(date +%s%N)
  for i in $(seq "$clients"); do
    openssl s_time -connect "127.0.0.1:$port" -new -time "$seconds" >"$prefix.stime$i" 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
  echo $(($(date +%s%N) - start)) >"$prefix.ns"
  cpu_ns "$@" >"$prefix.cpu1"
}

for workers in $workers_list; do
  echo "=== $workers worker(s) each" >&2
  write_confs "$workers"
  launch_nginx stock "$nginx_port"
  stock_pid=$launched_pid
  launch_nginx module "$module_port"
  module_pid=$launched_pid
  for round in $(seq "$rounds"); do
    # Alternate which instance goes first, so that drift cancels.
    if [ $((round % 2)) = 1 ]; then order="stock module"; else order="module stock"; fi
    for mode in seq conc h1 h2; do
      for server in $order; do
        echo "$mode $server round $round" >&2
        prefix="$work/run-$workers-$mode-$server-$round"
        case $mode in
          seq) stime_run "$(port_of "$server")" "$prefix" 1 $(pids_of "$server") ;;
          conc) stime_run "$(port_of "$server")" "$prefix" "$concurrent" $(pids_of "$server") ;;
          *) run_h2load "$(port_of "$server")" "$mode" "$prefix" $(pids_of "$server") ;;
        esac
      done
    done
  done
  stop_pair
done

# Callgrind: one process each, started, then $3: `start` stopped at once,
# `idle` for $cg_seconds with no connection, `serve` serving `s_time -new` for
# $cg_seconds; the module's polling thread ticks as often in `idle` as in
# `serve`, so serve − idle is the handshakes' alone.
write_confs 1 "master_process off;"
wait_port_tries=1200
callgrind_run() {
  local name=$1 port=$2 kind=$3 file="$work/cg-$1-$3"
  echo "callgrind $name $kind" >&2
  launch_nginx "$name" "$port" valgrind --tool=callgrind --callgrind-out-file="$file.out" --log-file="$file.vglog"
  case $kind in
    idle) sleep "$cg_seconds" ;;
    serve) openssl s_time -connect "127.0.0.1:$port" -new -time "$cg_seconds" >"$file.stime1" 2>&1 ;;
  esac
  kill -QUIT "$launched_pid"
  wait "$launched_pid" || true
}
for kind in start idle serve; do
  for name in stock module; do callgrind_run "$name" "$(port_of "$name")" "$kind"; done
done
# Kept for callgrind_annotate (which functions the difference is in).
for name in stock module; do
  for kind in idle serve; do cp "$work/cg-$name-$kind.out" "$out/nginx-module-callgrind.$name.$kind"; done
done

export WORK=$work OUT=$out ROUNDS=$rounds SECONDS_PER_RUN=$seconds CONCURRENT=$concurrent
export WORKERS=$workers_list CG_SECONDS=$cg_seconds QUICK=$quick
export NGINX_VERSION VALGRIND_VERSION H2LOAD_VERSION LOAD_BEFORE=$load_before LOAD_AFTER
NGINX_VERSION=$("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //')
VALGRIND_VERSION=$(valgrind --version)
H2LOAD_VERSION=$(h2load --version | head -n 1)
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
python3 ci/bench-nginx-module.py
