# Sourced by ci/bench-nginx.sh and ci/bench-latency.sh: Debian's nginx and the
# demo binary on loopback with the same ECDSA P-256 certificate, started and
# stopped the same way for every comparison. Expects $target, $out, $nginx_port
# and $demo_port (and OPENSSL_RELOAD_BENCH_DEMO_BIN, another demo binary to
# measure); sets $work (removed on exit), $nginx_bin, $nginx_body and
# the functions start_nginx N, start_demo N, stop_servers, server_pids
# nginx|demo, wait_port PORT and cpu_ns PID....

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
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "bench-nginx: nothing listens on 127.0.0.1:$1" >&2
  cat "$work/nginx-error.log" "$work/demo.log" >&2 || true
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

start_nginx() {
  cat >"$work/nginx.conf" <<EOF
worker_processes $1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
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
    listen 127.0.0.1:$nginx_port ssl http2;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    http2_max_requests 1000000;
    location / { return 200 "$nginx_body\n"; }
  }
}
EOF
  # The key must be readable by the master process only, which is root here.
  "$nginx_bin" -e "$work/nginx-error.log" -p "$work" -c "$work/nginx.conf" &
  nginx_pid=$!
  wait_port "$nginx_port"
}

# The server processes: nginx's master and workers, or the demo.
server_pids() {
  if [ "$1" = nginx ]; then
    echo "$nginx_pid" $(pgrep -P "$nginx_pid")
  else
    echo "$demo_pid"
  fi
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

