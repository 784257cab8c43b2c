#!/usr/bin/env bash
# Idle cost of the poller: attaches strace to an idle reloading acceptor
# (examples/idle.rs, 2 watched files, 10 ms poll interval) and counts, while
# nothing changes, the syscalls per tick and per watched file, and the opens and
# reads (which must be 0).
#
# Writes $OUT/idle.{md,json} and the raw traces (OUT defaults to target/bench).
# OPENSSL_RELOAD_BENCH_QUICK=1 traces 2 s instead of 10 s.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${OPENSSL_RELOAD_BENCH_OUT:-${CARGO_TARGET_DIR:-$PWD/target}/bench}
target=${CARGO_TARGET_DIR:-$PWD/target}
poll_ms=${OPENSSL_RELOAD_BENCH_IDLE_POLL_MS:-10}
if [ "${OPENSSL_RELOAD_BENCH_QUICK:-0}" != 0 ]; then secs=2; else secs=${OPENSSL_RELOAD_BENCH_IDLE_SECS:-10}; fi
mkdir -p "$out"

ci/apt.sh strace
cargo build --locked --release --example idle
work=$(mktemp -d)
idle_pid=
cleanup() {
  if [ -n "$idle_pid" ]; then kill "$idle_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The certificate of the handshake benchmark (ECDSA P-256).
cargo bench --locked --bench handshake -- --write-cert "$work" >/dev/null

"$target/release/examples/idle" "$work/cert.pem" "$work/key.pem" "$poll_ms" $((2 * secs + 30)) >"$work/idle.out" &
idle_pid=$!
for _ in $(seq 200); do
  grep -q '^ready' "$work/idle.out" && break
  sleep 0.05
done
grep -q '^ready' "$work/idle.out" || { echo "bench-idle: the idle example did not start" >&2; exit 1; }

# 1. strace's own summary (-c), all threads (-f attaches every thread of the process).
timeout -s INT "$secs" strace -c -f -p "$idle_pid" -o "$out/idle-strace-c.txt" 2>/dev/null || true
# 2. Every syscall with its file names (-y), to count ticks, stats, opens and reads.
timeout -s INT "$secs" strace -f -y -p "$idle_pid" -o "$out/idle-trace.txt" 2>/dev/null || true
kill "$idle_pid" 2>/dev/null || true
wait "$idle_pid" 2>/dev/null || true
idle_pid=

# A tick ends with the poller's timed wait expiring (futex ... ETIMEDOUT). A
# syscall split by strace into "<unfinished ...>" and "<... resumed>" is counted
# once, on its first line.
awk -v files=2 -v secs="$secs" -v poll_ms="$poll_ms" -v out="$out" '
  / ETIMEDOUT/ { ticks++ }
  /resumed>/ || /^[0-9]+ +(\+\+\+|---)/ { next }
  {
    n = split($0, f, " "); call = f[2]; sub(/\(.*/, "", call)
    if (call == "") next
    calls++; by[call]++
    if (call ~ /^(statx|newfstatat|fstatat64|stat|lstat|stat64|lstat64)$/) stats++
    if (call ~ /^(open|openat|openat2|creat)$/) opens++
    if (call ~ /^(read|pread64|readv|preadv|preadv2)$/) reads++
    if ($0 ~ /(cert|key)\.pem/ && call !~ /stat/) certio++
  }
  END {
    if (ticks == 0) { print "bench-idle: no tick seen" > "/dev/stderr"; exit 1 }
    list = ""
    for (c in by) list = list sprintf("%s%s %d", list == "" ? "" : ", ", c, by[c])
    md = out "/idle.md"
    printf "### Idle cost (strace -f attached to examples/idle.rs: %d watched files, poll every %d ms, %d s traced)\n\n", files, poll_ms, secs > md
    printf "| ticks | syscalls | syscalls per tick | stat calls per tick per file | openat | read | I/O on the cert/key files |\n" >> md
    printf "|---:|---:|---:|---:|---:|---:|---:|\n" >> md
    printf "| %d | %d | %.2f | %.2f | %d | %d | %d |\n\n", ticks, calls, calls / ticks, stats / ticks / files, opens + 0, reads + 0, certio + 0 >> md
    printf "Syscalls seen: %s.\n", list >> md
    json = out "/idle.json"
    printf "{\"poll_ms\":%d,\"files\":%d,\"seconds\":%d,\"ticks\":%d,\"syscalls\":%d,\"syscalls_per_tick\":%.3f,\"stats_per_tick_per_file\":%.3f,\"opens\":%d,\"reads\":%d,\"cert_file_io\":%d}\n", poll_ms, files, secs, ticks, calls, calls / ticks, stats / ticks / files, opens + 0, reads + 0, certio + 0 > json
  }' "$out/idle-trace.txt"

{
  printf '\n<details><summary>strace -c -f (%s s)</summary>\n\n```text\n' "$secs"
  cat "$out/idle-strace-c.txt"
  printf '```\n\n</details>\n'
} >>"$out/idle.md"
cat "$out/idle.md"
