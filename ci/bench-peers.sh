# Sourced by ci/bench-nginx.sh and ci/bench-latency.sh: Debian's nginx and the
# demo binary on loopback with the same ECDSA P-256 certificate, started and
# stopped the same way for every comparison. Expects $target, $out, $nginx_port
# and $demo_port (and OPENSSL_RELOAD_BENCH_DEMO_BIN, another demo binary to
# measure); sets $work (removed on exit), $nginx_bin, $nginx_body and
# the functions start_nginx N, start_demo N, stop_servers, server_pids
# nginx|demo, wait_port PORT, cpu_ns PID..., nginx_conf, launch_nginx (for other
# nginx instances) and run_h2load (with $h2_seconds).

# nginx and h2load: Debian's packages (policy-rc.d, where present, keeps nginx's service from starting).
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  ci/apt.sh nginx
fi
command -v h2load >/dev/null 2>&1 || ci/apt.sh nghttp2-client
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --locked --release --bin openssl-reload
# Another build of the demo to measure, e.g. one before a change.
demo_bin=${OPENSSL_RELOAD_BENCH_DEMO_BIN:-$target/release/openssl-reload}
cargo bench --locked --bench handshake --no-run

work=$(mktemp -d)
nginx_pid=
demo_pid=
stop_servers() {
  for pid in "$nginx_pid" "$demo_pid"; do
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  done
  for pid in "$nginx_pid" "$demo_pid"; do
    if [ -n "$pid" ]; then wait "$pid" 2>/dev/null || true; fi
  done
  nginx_pid= demo_pid=
}
cleanup() {
  stop_servers
  rm -rf "$work"
}
trap cleanup EXIT

wait_port() {
  # $wait_port_tries: more for a server under valgrind.
  for _ in $(seq "${wait_port_tries:-200}"); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "bench-nginx: nothing listens on 127.0.0.1:$1" >&2
  cat "$work"/*-error.log "$work/demo.log" >&2 || true
  return 1
}

cargo bench --locked --bench handshake -- --write-cert "$work" >/dev/null
mkdir -p "$work/nginx-tmp"

# The demo's GET / body, whose length nginx's static body copies.
start_demo() {
  "$demo_bin" serve --workers "$1" \
    --cert "$work/cert.pem" --key "$work/key.pem" \
    --listen "127.0.0.1:$demo_port" --log warn 2>"$work/demo.log" &
  demo_pid=$!
  wait_port "$demo_port"
}
start_demo 1
body_len=$(curl -sk --http1.1 "https://127.0.0.1:$demo_port/" | wc -c)
stop_servers
nginx_body=$(head -c "$((body_len - 1))" /dev/zero | tr '\0' 'x')

# nginx's configuration with $1 workers on port $2, named $3 (its pid file and
# error log), with the lines $4 before `events` and $5 in the server block.
nginx_conf() {
  cat <<EOF
${4:-}
worker_processes $1;
daemon off;
pid $work/$3.pid;
error_log $work/$3-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx-tmp/body;
  proxy_temp_path $work/nginx-tmp/proxy;
  fastcgi_temp_path $work/nginx-tmp/fastcgi;
  uwsgi_temp_path $work/nginx-tmp/uwsgi;
  scgi_temp_path $work/nginx-tmp/scgi;
  server {
    listen 127.0.0.1:$2 ssl http2;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    http2_max_requests 1000000;
    location / { return 200 "$nginx_body\n"; }
    ${5:-}
  }
}
EOF
}

# Starts nginx on $work/$1.conf (written by nginx_conf), listening on port $2,
# in the background, prefixed by the command $3... (e.g. valgrind); its pid in
# $launched_pid.
launch_nginx() {
  local name=$1 port=$2
  shift 2
  # The key must be readable by the master process only, which is root here.
  "$@" "$nginx_bin" -e "$work/$name-error.log" -p "$work" -c "$work/$name.conf" &
  launched_pid=$!
  wait_port "$port"
}

start_nginx() {
  nginx_conf "$1" "$nginx_port" nginx >"$work/nginx.conf"
  launch_nginx nginx "$nginx_port"
  nginx_pid=$launched_pid
}

# The server processes: nginx's master and workers, or the demo.
server_pids() {
  if [ "$1" = nginx ]; then
    echo "$nginx_pid" $(pgrep -P "$nginx_pid")
  else
    echo "$demo_pid"
  fi
}

# h2load against $1 (port), protocol $2 (h1|h2), into $3 (prefix of its
# files), with the CPU time so far of the server's processes $4... at the end
# of the 1 s warm-up in $3.cpu0 and at the end in $3.cpu1.
run_h2load() {
  local port=$1 proto=$2 prefix=$3 flags=() sampler
  shift 3
  if [ "$proto" = h1 ]; then flags=(--h1 -m 1); else flags=(-m 10); fi
  (sleep 1; cpu_ns "$@" >"$prefix.cpu0") &
  sampler=$!
  h2load -t 1 -c 32 "${flags[@]}" -D "$h2_seconds" --warm-up-time=1 \
    --log-file="$prefix.log" "https://127.0.0.1:$port/" >"$prefix.txt" 2>&1 || {
    cat "$prefix.txt" >&2
    return 1
  }
  cpu_ns "$@" >"$prefix.cpu1"
  wait "$sampler"
}

# CPU time so far of every thread of the processes $@, in nanoseconds.
cpu_ns() {
  local total=0 pid task ns rest
  for pid in "$@"; do
    for task in /proc/"$pid"/task/*; do
      read -r ns rest <"$task/schedstat" 2>/dev/null || continue
      total=$((total + ns))
    done
  done
  echo "$total"
}

