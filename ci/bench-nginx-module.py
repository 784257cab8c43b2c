#!/usr/bin/env python3
"""The report of ci/bench-nginx-module.sh: nginx with the module against stock
nginx, on the clock and in instructions under callgrind.

Reads $WORK/run-W-MODE-SERVER-ROUND.* and $WORK/cg-SERVER-SECONDS.*, writes
$OUT/nginx-module.md and $OUT/nginx-module.json and prints the table.
"""
import json
import os
import pathlib
import re
import statistics

work = pathlib.Path(os.environ["WORK"])
out = pathlib.Path(os.environ["OUT"])
rounds = int(os.environ["ROUNDS"])
workers_list = os.environ["WORKERS"].split()
cg_seconds = os.environ["CG_SECONDS"]
SERVERS = ("stock", "module")
MODES = (("seq", "full handshakes, 1 × `s_time -new`", "handshakes/s"),
         ("conc", f"full handshakes, {os.environ['CONCURRENT']} × `s_time -new` at once", "handshakes/s"),
         ("h1", "keep-alive requests, HTTP/1.1 (h2load)", "req/s"),
         ("h2", "keep-alive requests, HTTP/2 (h2load)", "req/s"))


def read(path):
    return path.read_text()


def stime_connections(path):
    m = re.search(r"(\d+) connections in [\d.]+s", read(path))
    if not m:
        raise SystemExit(f"bench-nginx-module: no connections in {path}:\n{read(path)}")
    return int(m.group(1))


def one_run(prefix, mode):
    """(rate per second, server CPU ns, handshakes or requests counted, failed)."""
    p = work / prefix
    cpu = int(read(p.with_suffix(".cpu1"))) - int(read(p.with_suffix(".cpu0")))
    if mode in ("seq", "conc"):
        conns = sum(stime_connections(f) for f in work.glob(prefix + ".stime*"))
        return conns / (int(read(p.with_suffix(".ns"))) / 1e9), cpu, conns, 0
    text = read(p.with_suffix(".txt"))
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text)
    done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed", text)
    if not rate or not done:
        raise SystemExit(f"bench-nginx-module: no req/s in {prefix}.txt:\n{text}")
    return float(rate.group(1)), cpu, int(done.group(1)), int(done.group(2))


doc = {"rounds": rounds, "seconds": int(os.environ["SECONDS_PER_RUN"]), "clock": [],
       "quick": os.environ.get("QUICK") == "1"}
for workers in workers_list:
    for mode, label, unit in MODES:
        res = {}
        for server in SERVERS:
            runs = [one_run(f"run-{workers}-{mode}-{server}-{r}", mode) for r in range(1, rounds + 1)]
            res[server] = {
                "rates": [r[0] for r in runs],
                "rate": statistics.median(r[0] for r in runs),
                "cpu_us_per_op": sum(r[1] for r in runs) / 1e3 / max(1, sum(r[2] for r in runs)),
                "failed": sum(r[3] for r in runs),
            }
        ratios = [m / s for m, s in zip(res["module"]["rates"], res["stock"]["rates"])]
        doc["clock"].append({
            "workers": int(workers), "mode": mode, "label": label, "unit": unit, **res,
            "ratio": statistics.median(ratios), "ratios": ratios,
            "cpu_ratio": res["module"]["cpu_us_per_op"] / res["stock"]["cpu_us_per_op"],
        })


def total_ir(path):
    m = re.search(r"^(?:summary|totals):\s*(\d+)", read(path), re.M)
    if not m:
        raise SystemExit(f"bench-nginx-module: no total in {path}")
    return int(m.group(1))


cg = {}
for server in SERVERS:
    start, idle, serve = (total_ir(work / f"cg-{server}-{k}.out") for k in ("start", "idle", "serve"))
    conns = stime_connections(work / f"cg-{server}-serve.stime1")
    cg[server] = {"start_ir": start, "idle_ir": idle, "serve_ir": serve, "connections": conns,
                  "idle_ir_per_second": (idle - start) / int(cg_seconds),
                  "ir_per_handshake": (serve - idle) / conns}
cg_ratio = cg["module"]["ir_per_handshake"] / cg["stock"]["ir_per_handshake"]
doc["callgrind"] = {**cg, "ratio": cg_ratio, "valgrind": os.environ["VALGRIND_VERSION"]}
clock_min = min(row["ratio"] for row in doc["clock"])
doc["goals"] = {"clock_min_ratio": clock_min, "clock_met": clock_min >= 0.99,
                "instructions_ratio": cg_ratio, "instructions_met": cg_ratio <= 1.01}

md = [
    f"### nginx with the module against stock nginx ({os.environ['NGINX_VERSION']}; `ci/bench-nginx-module.sh`)",
    "",
    "Two instances at once on 127.0.0.1, the same configuration and ECDSA P-256 certificate; "
    "the module's adds `load_module` and `openssl_reload on;`. "
    f"{rounds} interleaved rounds of {os.environ['SECONDS_PER_RUN']} s per client run "
    f"(h2load: {os.environ['H2LOAD_VERSION']}, `-t 1 -c 32`, HTTP/1.1 `--h1 -m 1`, HTTP/2 `-m 10`, after 1 s of warm-up). "
    "Rates: medians of rounds; × stock: median of the rounds' ratios (min–max); "
    "server CPU: all of the instance's processes, per handshake or request. "
    f"Load average before: {os.environ['LOAD_BEFORE']}; after: {os.environ['LOAD_AFTER']}."
    + (" **Quick mode: smoke figures, not for comparison.**" if doc["quick"] else ""),
    "",
    "| workers | client | stock | module | × stock (rounds min–max) | server CPU µs stock / module (ratio) | failed |",
    "|---:|---|---:|---:|---:|---:|---:|",
]
for row in doc["clock"]:
    s, m = row["stock"], row["module"]
    md.append(
        f'| {row["workers"]} | {row["label"]} | {s["rate"]:.0f} {row["unit"]} | {m["rate"]:.0f} {row["unit"]} | '
        f'**{row["ratio"]:.3f}** ({min(row["ratios"]):.3f}–{max(row["ratios"]):.3f}) | '
        f'{s["cpu_us_per_op"]:.1f} / {m["cpu_us_per_op"]:.1f} ({row["cpu_ratio"]:.3f}) | {s["failed"]} / {m["failed"]} |'
    )
md += [
    "",
    f"Instructions under callgrind ({os.environ['VALGRIND_VERSION']}): each instance alone with `master_process off;`, "
    f"started and stopped: at once; after {cg_seconds} s idle; after {cg_seconds} s serving `s_time -new`. "
    "Ir per handshake = (Ir serving − Ir idle) / connections; idle Ir/s = (Ir idle − Ir at once) / seconds:",
    "",
    "| instance | Ir, at once | Ir, idle | Ir, serving | connections | idle Ir/s | Ir per handshake | × stock |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
]
for server in SERVERS:
    c = cg[server]
    md.append(f'| {server} | {c["start_ir"]:,} | {c["idle_ir"]:,} | {c["serve_ir"]:,} | {c["connections"]} | '
              f'{c["idle_ir_per_second"]:,.0f} | {c["ir_per_handshake"]:,.0f} | '
              f'{c["ir_per_handshake"] / cg["stock"]["ir_per_handshake"]:.4f} |')
md += [
    "",
    f"Goals: ≥ 0.99 on the clock: lowest median ratio {clock_min:.3f} ({'met' if doc['goals']['clock_met'] else '**not met**'}); "
    f"≤ 1.01 in instructions: {cg_ratio:.4f} ({'met' if doc['goals']['instructions_met'] else '**not met**'}).",
]
(out / "nginx-module.json").write_text(json.dumps(doc, indent=2) + "\n")
(out / "nginx-module.md").write_text("\n".join(md) + "\n")
print("\n".join(md))
