#!/usr/bin/env python3
"""The report of ci/bench-latency.sh: first-flight latency from the packets,
handshake rates and syscalls per connection, nginx against the demo.

Reads $WORK/lat-W-MODE-SERVER-ROUND.{pcap,stime*} and $WORK/sys-W-SERVER.*,
writes $OUT/latency.md and $OUT/latency.json and prints the table.
"""
import json
import os
import pathlib
import re
import statistics
import struct

work = pathlib.Path(os.environ["WORK"])
out = pathlib.Path(os.environ["OUT"])
rounds = int(os.environ["ROUNDS"])
ports = {"nginx": int(os.environ["NGINX_PORT"]), "demo": int(os.environ["DEMO_PORT"])}
SERVERS = ("nginx", "demo")
MODES = (("seq", "sequential (1 × s_time -new)"),
         ("conc", f"concurrent ({os.environ['CONCURRENT']} × s_time -new)"))


def packets(path):
    """(seconds, TCP source port, destination port, payload) of each packet."""
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    order, scale = {0xA1B2C3D4: ("<", 1e-6), 0xA1B23C4D: ("<", 1e-9),
                    0xD4C3B2A1: (">", 1e-6), 0x4D3CB2A1: (">", 1e-9)}[magic]
    linktype = struct.unpack(order + "I", data[20:24])[0]
    link_len = {1: 14, 113: 16, 276: 20, 0: 4}[linktype]
    at = 24
    while at + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack(order + "IIII", data[at:at + 16])
        frame = data[at + 16:at + 16 + caplen]
        at += 16 + caplen
        ip = frame[link_len:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        tcp = ip[(ip[0] & 0xF) * 4:]
        if len(tcp) < 20:
            continue
        sport, dport = struct.unpack(">HH", tcp[:4])
        yield sec + frac * scale, sport, dport, tcp[(tcp[12] >> 4) * 4:]


def first_flight(path, port):
    """Microseconds from each ClientHello packet to its ServerHello packet."""
    hello, delays = {}, []
    for t, sport, dport, payload in packets(path):
        if len(payload) < 6 or payload[0] != 0x16:
            continue
        if dport == port and payload[5] == 1:
            hello[sport] = t
        elif sport == port and payload[5] == 2 and dport in hello:
            delays.append((t - hello.pop(dport)) * 1e6)
    return delays


def rate(prefix):
    """Connections per real second, summed over the clients of one run."""
    total = 0.0
    for f in sorted(work.glob(prefix.name + ".stime*")):
        m = re.search(r"(\d+) connections in (\d+) real seconds", f.read_text())
        if not m:
            raise SystemExit(f"bench-latency: no rate in {f}:\n{f.read_text()}")
        total += int(m.group(1)) / max(1, int(m.group(2)))
    return total


def connections(prefix):
    text = pathlib.Path(str(prefix) + ".stime1").read_text()
    m = re.search(r"(\d+) connections in [\d.]+s", text)
    return int(m.group(1)) if m else 0


def syscalls(prefix):
    """Calls per connection, in total and by name, from `strace -c`."""
    conns = max(1, connections(prefix))
    by_name, total = {}, 0
    for line in pathlib.Path(str(prefix) + ".strace").read_text().splitlines():
        fields = line.split()
        if len(fields) < 5 or not re.match(r"^[\d.]+$", fields[0]):
            continue
        calls = int(fields[3])
        if fields[-1] == "total":
            total = calls
        else:
            by_name[fields[-1]] = calls / conns
    return {"per_connection": total / conns, "connections": conns,
            "by_name": dict(sorted(by_name.items(), key=lambda kv: -kv[1]))}


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else 0.0


def spread(values, fmt):
    return f"{fmt.format(min(values))}–{fmt.format(max(values))}"


doc = {"rounds": rounds, "seconds": float(os.environ["SECONDS_PER_RUN"]), "workers": {}}
md = [
    f"### First flight: {os.environ['NGINX_VERSION']} vs {os.environ['DEMO_VERSION']} serve",
    "",
    f"{os.environ['OPENSSL_VERSION']} `s_time -new` clients, {rounds} interleaved rounds of "
    f"{os.environ['SECONDS_PER_RUN']} s per client run; ClientHello → ServerHello from `tcpdump -i lo` "
    "(p50/p90 over every connection of the rounds; in brackets the rounds' p50s); rate = connections per "
    "real second. Ratios are openssl-reload / nginx: ≤ 1 is at least as fast for latency and syscalls, "
    "≥ 1 for the rate.",
    "",
    "| workers | client | CH→SH p50 µs nginx / openssl-reload (rounds) | ratio | p90 µs nginx / openssl-reload "
    "| handshakes/s nginx / openssl-reload (rounds) | ratio: median of rounds (min–max) |",
    "|---:|---|---:|---:|---:|---:|---:|",
]
for workers in (1, 2):
    doc["workers"][workers] = {}
    for mode, label in MODES:
        res = {}
        for server in SERVERS:
            runs = [work / f"lat-{workers}-{mode}-{server}-{r}" for r in range(1, rounds + 1)]
            per_round = [first_flight(pathlib.Path(f"{p}.pcap"), ports[server]) for p in runs]
            every = [d for r in per_round for d in r]
            res[server] = {
                "p50_us": pct(every, 50), "p90_us": pct(every, 90), "connections": len(every),
                "round_p50_us": [pct(r, 50) for r in per_round],
                "rates": [rate(p) for p in runs],
            }
        n, d = res["nginx"], res["demo"]
        rate_ratios = [b / a for a, b in zip(n["rates"], d["rates"])]
        row = {"nginx": n, "openssl-reload": d, "p50_ratio": d["p50_us"] / n["p50_us"],
               "rate_ratio": statistics.median(rate_ratios), "rate_ratios": rate_ratios,
               "p50_demo_le_nginx_every_round": all(b <= a for a, b in zip(n["round_p50_us"], d["round_p50_us"]))}
        doc["workers"][workers][mode] = row
        md.append(
            f"| {workers} | {label} | {n['p50_us']:.0f} / {d['p50_us']:.0f} "
            f"({spread(n['round_p50_us'], '{:.0f}')} / {spread(d['round_p50_us'], '{:.0f}')}) | "
            f"**{row['p50_ratio']:.3f}** | {n['p90_us']:.0f} / {d['p90_us']:.0f} | "
            f"{statistics.median(n['rates']):.0f} / {statistics.median(d['rates']):.0f} "
            f"({spread(n['rates'], '{:.0f}')} / {spread(d['rates'], '{:.0f}')}) | "
            f"**{row['rate_ratio']:.3f}** ({spread(rate_ratios, '{:.3f}')}) |"
        )
md += [
    "",
    "**Syscalls per connection** (`strace -c -f` on every process and thread of the server during one "
    "sequential run; the calls that differ most):",
    "",
    "| workers | nginx | openssl-reload | ratio | by call, nginx / openssl-reload |",
    "|---:|---:|---:|---:|---|",
]
for workers in (1, 2):
    n, d = (syscalls(work / f"sys-{workers}-{s}") for s in SERVERS)
    doc["workers"][workers]["syscalls"] = {"nginx": n, "openssl-reload": d}
    names = sorted(set(n["by_name"]) | set(d["by_name"]),
                   key=lambda k: -abs(d["by_name"].get(k, 0) - n["by_name"].get(k, 0)))
    calls = ", ".join(f"{k} {n['by_name'].get(k, 0):.2f} / {d['by_name'].get(k, 0):.2f}" for k in names[:8])
    md.append(f"| {workers} | {n['per_connection']:.1f} | {d['per_connection']:.1f} | "
              f"**{d['per_connection'] / n['per_connection']:.3f}** | {calls} |")
(out / "latency.json").write_text(json.dumps(doc, indent=2) + "\n")
(out / "latency.md").write_text("\n".join(md) + "\n")
print("\n".join(md))
