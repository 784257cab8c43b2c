#!/usr/bin/env bash
# Instructions per in-memory TLS 1.3 handshake (ECDSA P-256), counted by
# callgrind: a plain SslAcceptor against this crate's front acceptor
# (benches/instructions.rs). A figure that does not move with machine noise.
#
# For each strategy (static, reloading) and chain handling (no-auto-chain:
# SSL_MODE_NO_AUTO_CHAIN; auto-chain: OpenSSL's default) the bench runs twice
# under `valgrind --tool=callgrind`, with N1 and N2 handshakes; the inclusive
# instruction counts of its `server_side` function (the server's work) and
# `one_handshake` (server and client) are read with callgrind_annotate, and
# (count(N2) - count(N1)) / (N2 - N1) is the cost of one handshake, one-time
# costs cancelled.
#
# Writes $OUT/instructions.{json,md} (OUT defaults to target/bench).
# Environment: OPENSSL_RELOAD_BENCH_QUICK=1 (fewer handshakes),
# OPENSSL_RELOAD_BENCH_INSTR_N1 (10), OPENSSL_RELOAD_BENCH_INSTR_N2 (60).
set -euo pipefail
cd "$(dirname "$0")/.."

out=${OPENSSL_RELOAD_BENCH_OUT:-${CARGO_TARGET_DIR:-$PWD/target}/bench}
mkdir -p "$out"
quick=${OPENSSL_RELOAD_BENCH_QUICK:-0}
n1=${OPENSSL_RELOAD_BENCH_INSTR_N1:-10}
n2=${OPENSSL_RELOAD_BENCH_INSTR_N2:-60}
if [ "$quick" = 1 ]; then n1=2 n2=7; fi

ci/apt.sh valgrind python3

bin=$(cargo bench --locked --bench instructions --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "instructions" and m.get("executable"):
        print(m["executable"])')
[ -x "$bin" ] || { echo "bench-instructions: no bench executable" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for strategy in static reloading; do
  for chain in no-auto-chain auto-chain; do
    for n in "$n1" "$n2"; do
      file="$work/callgrind.$strategy.$chain.$n"
      echo "callgrind: $strategy $chain $n handshakes" >&2
      valgrind --tool=callgrind --callgrind-out-file="$file" "$bin" "$strategy" "$chain" "$n" \
        2>"$file.log" || { cat "$file.log" >&2; exit 1; }
      callgrind_annotate --inclusive=yes --threshold=100 "$file" >"$file.txt"
    done
  done
done

export WORK=$work OUT=$out N1=$n1 N2=$n2 VALGRIND_VERSION
VALGRIND_VERSION=$(valgrind --version)
python3 - <<'PY'
import json, os, pathlib, re

work = pathlib.Path(os.environ["WORK"])
out = pathlib.Path(os.environ["OUT"])
n1, n2 = int(os.environ["N1"]), int(os.environ["N2"])
line_re = re.compile(r"^\s*([\d,]+)\s.*?\binstructions::(server_side|one_handshake)\b")

def inclusive(path):
    counts = {"server_side": 0, "one_handshake": 0}
    for line in path.read_text().splitlines():
        m = line_re.match(line)
        if m:
            counts[m.group(2)] += int(m.group(1).replace(",", ""))
    if not all(counts.values()):
        raise SystemExit(f"bench-instructions: no counts for server_side/one_handshake in {path}")
    return counts

rows = []
for chain in ["no-auto-chain", "auto-chain"]:
    for strategy in ["static", "reloading"]:
        a = inclusive(work / f"callgrind.{strategy}.{chain}.{n1}.txt")
        b = inclusive(work / f"callgrind.{strategy}.{chain}.{n2}.txt")
        per = {k: (b[k] - a[k]) / (n2 - n1) for k in a}
        rows.append({"strategy": strategy, "chain": chain,
                     "server": round(per["server_side"]), "whole": round(per["one_handshake"])})
for row in rows:
    base = next(r for r in rows if r["chain"] == row["chain"] and r["strategy"] == "static")
    row["server_ratio"] = row["server"] / base["server"]
    row["whole_ratio"] = row["whole"] / base["whole"]

main = next(r for r in rows if r["chain"] == "no-auto-chain" and r["strategy"] == "reloading")
doc = {"n1": n1, "n2": n2, "valgrind": os.environ["VALGRIND_VERSION"], "rows": rows,
       "ratio_server": main["server_ratio"], "ratio_whole": main["whole_ratio"]}
(out / "instructions.json").write_text(json.dumps(doc, indent=2) + "\n")

names = {"static": "static (`SslAcceptor`)", "reloading": "reloading (front acceptor + callback)"}
chains = {"no-auto-chain": "`SSL_MODE_NO_AUTO_CHAIN`", "auto-chain": "OpenSSL default (auto chain)"}
md = [
    f"### Instructions per in-memory TLS 1.3 handshake (callgrind, {os.environ['VALGRIND_VERSION']}; `ci/bench-instructions.sh`)",
    "",
    f"ECDSA P-256, leaf-only certificate file, Mozilla intermediate on every context; (count at {n2} − count at {n1} handshakes) / {n2 - n1}. "
    "Server: `Ssl::new` on the acceptor's context and every server handshake step (the client hello callback included); "
    "whole: server and client.",
    "",
    "| strategy | chain handling | server instructions | × static | whole handshake instructions | × static |",
    "|---|---|---:|---:|---:|---:|",
]
for r in rows:
    md.append(f'| {names[r["strategy"]]} | {chains[r["chain"]]} | {r["server"]:,} | {r["server_ratio"]:.4f} | {r["whole"]:,} | {r["whole_ratio"]:.4f} |')
(out / "instructions.md").write_text("\n".join(md) + "\n")
print("\n".join(md))
PY
