#!/usr/bin/env bash
# Peer comparison: Debian's nginx against the demo binary `openssl-reload
# serve`, with 1 and then 2 workers each (nginx `worker_processes N`, the demo
# --workers N), both on 127.0.0.1 with the same ECDSA P-256
# certificate, measured by the same clients:
#   - full TLS 1.3 handshakes: the handshake benchmark in client-only mode (2
#     threads, handshake then close, interleaved rounds);
#   - requests over keep-alive connections, HTTP/1.1 and HTTP/2: h2load
#     (Debian's nghttp2-client), GET / on both, nginx answering a static body
#     of the same length as the demo's (`return 200`), rounds alternating
#     between the servers; p50/p99 from h2load's per-request log.
# Beside each rate, the server's CPU time per handshake or request (all its
# processes and threads, from /proc/PID/task/*/schedstat): with 1 worker the
# client needs about as much CPU as the server, so the rate is bounded by the
# client as much as by the server, while the CPU time is the server's alone.
#
# Writes $OUT/nginx.md and $OUT/nginx.json (OUT defaults to target/bench).
# Installs nginx and nghttp2-client when missing (root; apt-get update first).
# Environment: OPENSSL_RELOAD_BENCH_QUICK=1, OPENSSL_RELOAD_BENCH_SEGMENT_MS/_ROUNDS
# (handshakes), OPENSSL_RELOAD_BENCH_H2LOAD_SECONDS (5) and _H2LOAD_ROUNDS (3),
# OPENSSL_RELOAD_BENCH_NGINX_PORT (18443), OPENSSL_RELOAD_BENCH_DEMO_PORT (18444).
set -euo pipefail
cd "$(dirname "$0")/.."

out=${OPENSSL_RELOAD_BENCH_OUT:-${CARGO_TARGET_DIR:-$PWD/target}/bench}
target=${CARGO_TARGET_DIR:-$PWD/target}
nginx_port=${OPENSSL_RELOAD_BENCH_NGINX_PORT:-18443}
demo_port=${OPENSSL_RELOAD_BENCH_DEMO_PORT:-18444}
h2_seconds=${OPENSSL_RELOAD_BENCH_H2LOAD_SECONDS:-5}
h2_rounds=${OPENSSL_RELOAD_BENCH_H2LOAD_ROUNDS:-3}
if [ "${OPENSSL_RELOAD_BENCH_QUICK:-0}" = 1 ]; then h2_seconds=1 h2_rounds=1; fi
mkdir -p "$out"

. ci/bench-peers.sh

for workers in 1 2; do
  echo "=== $workers worker(s) each" >&2
  start_nginx "$workers"
  start_demo "$workers"
  nginx_procs=$(server_pids nginx | tr ' ' '+')
  cargo bench --locked --bench handshake -- \
    --peers "nginx=127.0.0.1:$nginx_port@$nginx_procs,openssl-reload=127.0.0.1:$demo_port@$demo_pid"
  mv "$out/peers.json" "$out/peers-$workers.json"
  mv "$out/peers.md" "$out/peers-$workers.md"
  for proto in h1 h2; do
    for round in $(seq "$h2_rounds"); do
      # Alternate which server goes first, so that drift cancels.
      if [ $((round % 2)) = 1 ]; then order="nginx demo"; else order="demo nginx"; fi
      for server in $order; do
        port=$nginx_port
        [ "$server" = demo ] && port=$demo_port
        echo "h2load $proto $server round $round" >&2
        run_h2load "$port" "$proto" "$work/h2load-$workers-$proto-$server-$round" $(server_pids "$server")
      done
    done
  done
  stop_servers
done

nginx_version=$("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //')
demo_version=$("$demo_bin" --version)
export WORK=$work OUT=$out ROUNDS=$h2_rounds NGINX_VERSION=$nginx_version DEMO_VERSION=$demo_version
export H2LOAD_VERSION BODY_LEN=$body_len H2_SECONDS=$h2_seconds
H2LOAD_VERSION=$(h2load --version | head -1)
python3 - <<'PY'
import json, os, pathlib, re, statistics

work = pathlib.Path(os.environ["WORK"])
out = pathlib.Path(os.environ["OUT"])
rounds = int(os.environ["ROUNDS"])

def h2load_run(prefix):
    text = (work / f"{prefix}.txt").read_text()
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text)
    if not m:
        raise SystemExit(f"bench-nginx: no req/s in {prefix}.txt:\n{text}")
    ok = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed", text)
    lat = []
    for line in (work / f"{prefix}.log").read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            lat.append(int(parts[2]))
    done = int(ok.group(1)) if ok else 0
    cpu_ns = int((work / f"{prefix}.cpu1").read_text()) - int((work / f"{prefix}.cpu0").read_text())
    return float(m.group(1)), lat, int(ok.group(2)) if ok else 0, cpu_ns, done

def pct(values, p):
    values = sorted(values)
    if not values:
        return 0
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]

doc = {"handshakes": {}, "h2load": {}}
md = [
    f"### Peer: {os.environ['NGINX_VERSION']} vs {os.environ['DEMO_VERSION']} serve",
    "",
    "Same ECDSA P-256 certificate and clients; nginx `worker_processes N` against the demo with "
    "`--workers N`. Ratios are openssl-reload / nginx (≥ 1.00: at least nginx's speed).",
    "",
    "**Full TLS 1.3 handshakes** (the handshake harness's client: 2 threads, handshake then close, interleaved rounds):",
    "",
    "| workers | nginx handshakes/s | openssl-reload handshakes/s | × nginx: median of rounds (min–max) | p50 µs nginx / openssl-reload | p99 µs nginx / openssl-reload | server CPU µs per handshake nginx / openssl-reload (ratio) |",
    "|---:|---:|---:|---:|---:|---:|---:|",
]
for workers in (1, 2):
    peers = json.loads((out / f"peers-{workers}.json").read_text())
    doc["handshakes"][workers] = peers
    n = next(p for p in peers["peers"] if p["server"] == "nginx")
    d = next(p for p in peers["peers"] if p["server"] == "openssl-reload")
    rr = d["per_round_ratio_to_first"]
    md.append(
        f'| {workers} | {n["handshakes_per_sec"]:.0f} | {d["handshakes_per_sec"]:.0f} | '
        f'**{d["ratio_to_first"]:.3f}** ({min(rr):.3f}–{max(rr):.3f}) | '
        f'{n["p50_us"]:.0f} / {d["p50_us"]:.0f} | {n["p99_us"]:.0f} / {d["p99_us"]:.0f} | '
        f'{n["server_cpu_us_per_handshake"]:.0f} / {d["server_cpu_us_per_handshake"]:.0f} '
        f'({d["server_cpu_us_per_handshake"] / n["server_cpu_us_per_handshake"]:.3f}) |'
    )
md += [
    "",
    f"**Requests over keep-alive connections** ({os.environ['H2LOAD_VERSION']}: `h2load -t 1 -c 32`, "
    f"HTTP/1.1 `--h1 -m 1`, HTTP/2 `-m 10`; GET /, a {os.environ['BODY_LEN']}-byte body on both; "
    f"{rounds} alternating rounds of {os.environ['H2_SECONDS']} s after 1 s of warm-up; "
    "req/s is the median of rounds, latency (request to response, from `--log-file`) over all rounds):",
    "",
    "| workers | protocol | nginx req/s | openssl-reload req/s | × nginx: median of rounds (min–max) | p50 µs nginx / openssl-reload | p99 µs nginx / openssl-reload | server CPU µs per request nginx / openssl-reload (ratio) | failed |",
    "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
]
for workers in (1, 2):
    for proto, label in (("h1", "HTTP/1.1"), ("h2", "HTTP/2")):
        res = {}
        for server in ("nginx", "demo"):
            runs = [h2load_run(f"h2load-{workers}-{proto}-{server}-{r}") for r in range(1, rounds + 1)]
            res[server] = {
                "rates": [r[0] for r in runs],
                "p50_us": pct([x for r in runs for x in r[1]], 50),
                "p99_us": pct([x for r in runs for x in r[1]], 99),
                "failed": sum(r[2] for r in runs),
                "cpu_us_per_request": sum(r[3] for r in runs) / 1e3 / max(1, sum(r[4] for r in runs)),
            }
        ratios = [d / n for d, n in zip(res["demo"]["rates"], res["nginx"]["rates"])]
        row = {
            "nginx": res["nginx"], "openssl-reload": res["demo"],
            "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
        }
        doc["h2load"][f"{workers}-{proto}"] = row
        md.append(
            f'| {workers} | {label} | {statistics.median(res["nginx"]["rates"]):.0f} | '
            f'{statistics.median(res["demo"]["rates"]):.0f} | **{row["ratio"]:.3f}** '
            f'({row["ratio_min"]:.3f}–{row["ratio_max"]:.3f}) | '
            f'{res["nginx"]["p50_us"]} / {res["demo"]["p50_us"]} | {res["nginx"]["p99_us"]} / {res["demo"]["p99_us"]} | '
            f'{res["nginx"]["cpu_us_per_request"]:.1f} / {res["demo"]["cpu_us_per_request"]:.1f} '
            f'({res["demo"]["cpu_us_per_request"] / res["nginx"]["cpu_us_per_request"]:.3f}) | '
            f'{res["nginx"]["failed"]} / {res["demo"]["failed"]} |'
        )
(out / "nginx.json").write_text(json.dumps(doc, indent=2) + "\n")
(out / "nginx.md").write_text("\n".join(md) + "\n")
print("\n".join(md))
PY
