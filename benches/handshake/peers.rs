//! Client-only mode against servers already running (ci/bench-nginx.sh).
//!
//! `--peers NAME=ADDR[@PID+PID...],...`: with process ids, the CPU time those
//! processes spend during each segment (every thread, from
//! `/proc/PID/task/*/schedstat`) is the server's cost per handshake, which the
//! table reports beside the rate. On a 2-core machine the client's threads and
//! the server share the cores, so the rate also depends on the client; the
//! CPU time is the server's own.

use std::fs;
use std::net::SocketAddr;

use crate::common::client;
use crate::net::{interleaved_rounds, Clients, Segment};
use crate::report::{int, progress, round2, round4, write_outputs, J};
use crate::stats::{median_and_range, percentile_us};
use crate::Config;

/// Client only, against servers already running: interleaved rounds, same client.
pub(crate) fn peers(cfg: &Config, spec: &str) {
    let mut pids: Vec<Vec<u32>> = Vec::new();
    let peers: Vec<(String, SocketAddr)> = spec
        .split(',')
        .map(|p| {
            let (name, rest) = p.split_once('=').expect("--peers NAME=ADDR,...");
            let (addr, procs) = rest.split_once('@').unwrap_or((rest, ""));
            pids.push(
                procs
                    .split('+')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse().expect("--peers: bad process id"))
                    .collect(),
            );
            (name.to_owned(), addr.parse().expect("--peers: bad address"))
        })
        .collect();
    let clients = Clients::new(cfg.clients, &client());
    for (name, addr) in &peers {
        let seg = clients.run(*addr, cfg.warmup);
        if seg.handshakes == 0 {
            panic!(
                "{name} at {addr}: no handshake succeeded: {:?}",
                seg.first_error
            );
        }
    }
    let (mut totals, per_round) = interleaved_rounds(
        peers.len(),
        cfg.rounds,
        |i| {
            let before = processes_cpu_ns(&pids[i]);
            let mut seg = clients.run(peers[i].1, cfg.segment);
            // A thread that exits during the segment takes its time with it.
            seg.server_cpu_ns = processes_cpu_ns(&pids[i]).saturating_sub(before);
            seg
        },
        |round, rates| {
            progress(format_args!(
                "peers: round {}/{}: {:?}",
                round + 1,
                cfg.rounds,
                rates.iter().map(|r| r.round()).collect::<Vec<_>>()
            ));
        },
    );
    let mut md = String::new();
    let rows = table(&peers, &mut totals, &per_round, &mut md);
    let json = J::Obj(vec![
        ("quick", J::Bool(cfg.quick)),
        ("rounds", int(cfg.rounds as u64)),
        ("segment_ms", int(cfg.segment.as_millis() as u64)),
        ("client_threads", int(cfg.clients as u64)),
        ("peers", J::Arr(rows)),
    ]);
    write_outputs(&cfg.out, "peers", &json, &md);
}

/// CPU time of every thread of `pids` so far, in nanoseconds.
fn processes_cpu_ns(pids: &[u32]) -> u64 {
    let mut total = 0;
    for pid in pids {
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let stat = fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            total += stat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

/// The Markdown table of the peers (printed, and appended to `md`), and their
/// JSON rows.
fn table(
    peers: &[(String, SocketAddr)],
    totals: &mut [Segment],
    per_round: &[Vec<f64>],
    md: &mut String,
) -> Vec<J> {
    let mut say = |line: String| {
        println!("{line}");
        md.push_str(&line);
        md.push('\n');
    };
    say(format!(
        "| server | handshakes/s | × {}: median of rounds (min–max) | p50 µs | p99 µs | server CPU µs per handshake | failures |",
        peers[0].0
    ));
    say("|---|---:|---:|---:|---:|---:|---:|".to_owned());
    let base = totals[0].rate();
    let mut rows = Vec::new();
    for (i, (name, _)) in peers.iter().enumerate() {
        let seg = &mut totals[i];
        seg.latencies_us.sort_unstable();
        let (p50, p99) = (
            percentile_us(&seg.latencies_us, 50.0),
            percentile_us(&seg.latencies_us, 99.0),
        );
        let (ratio, lo, hi) = median_and_range(&per_round[i]);
        // 0 when no process ids were given.
        let cpu_us = seg.server_cpu_ns as f64 / 1e3 / seg.handshakes.max(1) as f64;
        say(format!(
            "| {name} | {:.0} | {ratio:.3} ({lo:.3}–{hi:.3}) | {p50} | {p99} | {cpu_us:.0} | {} |",
            seg.rate(),
            seg.failures
        ));
        rows.push(J::Obj(vec![
            ("server", J::Str(name.clone())),
            ("handshakes", int(seg.handshakes)),
            ("handshakes_per_sec", J::Num(round2(seg.rate()))),
            ("ratio_to_first", J::Num(round4(ratio))),
            (
                "aggregate_ratio_to_first",
                J::Num(round4(seg.rate() / base)),
            ),
            (
                "per_round_ratio_to_first",
                J::Arr(per_round[i].iter().map(|r| J::Num(round4(*r))).collect()),
            ),
            ("p50_us", int(p50)),
            ("p99_us", int(p99)),
            ("server_cpu_us_per_handshake", J::Num(round2(cpu_us))),
            ("failures", int(seg.failures)),
            (
                "first_error",
                J::Str(seg.first_error.clone().unwrap_or_default()),
            ),
        ]));
    }
    rows
}
