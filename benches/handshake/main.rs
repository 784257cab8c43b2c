//! Handshake benchmark: what hot reloading costs on the TLS handshake path.
//!
//! One process, one run, every figure of issue 6 side by side:
//!
//! - **throughput**: static `SslAcceptor` / this crate idle / this crate with the
//!   certificate rotated every 100 ms / a whole `SslAcceptor` in an `ArcSwap`
//!   rebuilt on the same schedule (axum-server's way), for ECDSA P-256 and
//!   RSA-2048: full TLS 1.3 handshakes over loopback from 2 client threads,
//!   handshakes/s and p50/p99 latency, measured in interleaved rounds
//!   (A B C D, D C B A, ...) so that drift cancels in the ratios to static;
//! - **resumption** across reloads: this crate against acceptor-swap;
//! - **reload latency** from the atomic rename of a new pair to the first
//!   handshake that sees it, at poll intervals of 10 ms, 100 ms and 1 s;
//! - **memory**: RSS before and after 10,000 reloads.
//!
//! `cargo bench --bench handshake` runs it all (a few minutes) and writes
//! `target/bench/handshake.{json,md}`. Environment:
//! `OPENSSL_RELOAD_BENCH_QUICK=1` (smoke run, seconds),
//! `OPENSSL_RELOAD_BENCH_SEGMENT_MS`, `_ROUNDS`, `_LATENCY_SAMPLES`,
//! `_LATENCY_SAMPLES_1S`, `_RELOADS`, `_RESUME_RELOADS`, `_ONLY`
//! (comma-separated: throughput,resumption,latency,memory), `_OUT` (directory).
//!
//! Other modes, for `ci/bench-nginx.sh`:
//! - `--write-cert DIR`: writes the ECDSA P-256 `cert.pem`/`key.pem` pair;
//! - `--peers NAME=ADDR[@PID+PID],NAME=ADDR...`: only the client, against running servers,
//!   interleaved the same way; writes `peers.{json,md}`.
//!
//! The server side is one blocking server for every strategy: 2 threads, each
//! `accept(2)` then `SslAcceptor::accept`, then `close_notify`; only the strategy
//! in service is switched between segments, so the strategies differ only in
//! where that loop gets its `SslAcceptor`. The 2 client threads live for the
//! whole run too. Besides wall-clock rates, each thread's CPU time is read from
//! `/proc/self/task/TID/schedstat`, which other load on the machine moves far
//! less: see BENCHMARKS.md for how the figures are derived.

#[path = "../common/mod.rs"]
mod common;
mod latency;
mod memory;
mod net;
mod peers;
mod report;
mod resumption;
mod stats;
mod throughput;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::thread;
use std::time::{Duration, Instant};

use common::{KeyKind, Pair};
use report::{int, round2, write_outputs, Report, Target, J};

struct Config {
    quick: bool,
    segment: Duration,
    warmup: Duration,
    rounds: usize,
    clients: usize,
    server_threads: usize,
    rotate_every: Duration,
    reload_poll: Duration,
    latency_samples: usize,
    latency_samples_1s: usize,
    memory_reloads: usize,
    resume_reloads: usize,
    resume_clients: usize,
    only: Option<Vec<String>>,
    out: PathBuf,
}

fn env_or<T: FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text}: not a number")),
        Err(_) => default,
    }
}

impl Config {
    fn from_env() -> Self {
        let quick = std::env::var("OPENSSL_RELOAD_BENCH_QUICK").is_ok_and(|v| v != "0");
        let pick = |full: u64, smoke: u64| if quick { smoke } else { full };
        let out = std::env::var_os("OPENSSL_RELOAD_BENCH_OUT")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let target = std::env::var_os("CARGO_TARGET_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
                target.join("bench")
            });
        Self {
            quick,
            segment: Duration::from_millis(env_or(
                "OPENSSL_RELOAD_BENCH_SEGMENT_MS",
                pick(1000, 300),
            )),
            warmup: Duration::from_millis(pick(500, 100)),
            rounds: env_or("OPENSSL_RELOAD_BENCH_ROUNDS", pick(10, 2) as usize),
            clients: 2,
            server_threads: 2,
            rotate_every: Duration::from_millis(100),
            reload_poll: Duration::from_millis(10),
            latency_samples: env_or(
                "OPENSSL_RELOAD_BENCH_LATENCY_SAMPLES",
                pick(200, 20) as usize,
            ),
            latency_samples_1s: env_or(
                "OPENSSL_RELOAD_BENCH_LATENCY_SAMPLES_1S",
                pick(20, 2) as usize,
            ),
            memory_reloads: env_or("OPENSSL_RELOAD_BENCH_RELOADS", pick(10_000, 1_000) as usize),
            resume_reloads: env_or(
                "OPENSSL_RELOAD_BENCH_RESUME_RELOADS",
                pick(100, 10) as usize,
            ),
            resume_clients: 4,
            only: std::env::var("OPENSSL_RELOAD_BENCH_ONLY")
                .ok()
                .map(|s| s.split(',').map(|p| p.trim().to_owned()).collect()),
            out,
        }
    }

    fn runs(&self, section: &str) -> bool {
        match &self.only {
            None => true,
            Some(only) => only.iter().any(|s| s == section),
        }
    }
}

fn full_run(cfg: &Config) {
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut report = Report {
        md: String::new(),
        json: Vec::new(),
        targets: Vec::new(),
    };
    report.say(format!(
        "Handshake harness (`cargo bench --bench handshake`){}: {} · {} cores · throughput in segments of {} ms × {} interleaved rounds · reloading strategies poll every {} ms · rotation every {} ms.",
        if cfg.quick { ", quick mode: smoke figures, not for comparison" } else { "" },
        openssl::version::version(),
        thread::available_parallelism().map_or(0, |n| n.get()),
        cfg.segment.as_millis(),
        cfg.rounds,
        cfg.reload_poll.as_millis(),
        cfg.rotate_every.as_millis()
    ));
    run_sections(cfg, tmp.path(), &mut report);

    // The targets go to the terminal and the JSON; ci/bench.sh merges them with
    // the idle figure into one table of BENCHMARKS.md.
    let targets = std::mem::take(&mut report.targets);
    print_targets(&targets);
    let seconds = started.elapsed().as_secs_f64();
    report.say(format!("\nHandshake harness run time: {seconds:.0} s."));
    let json = summary(cfg, seconds, &mut report, &targets);
    write_outputs(&cfg.out, "handshake", &json, &report.md);
}

/// The measurements `cfg` selects, in order, into `report`.
fn run_sections(cfg: &Config, dir: &Path, report: &mut Report) {
    // Memory first, in a process with no other work yet.
    if cfg.runs("memory") {
        let j = memory::memory(cfg, dir, report);
        report.json.push(("memory", j));
    }
    if cfg.runs("throughput") {
        let mut columns = Vec::new();
        for kind in [KeyKind::EcdsaP256, KeyKind::Rsa2048] {
            columns.push(throughput::throughput(
                cfg,
                kind,
                &dir.join(kind.id()),
                report,
            ));
        }
        report.json.push(("throughput", J::Arr(columns)));
    }
    if cfg.runs("resumption") {
        let j = resumption::resumption(cfg, dir, report);
        report.json.push(("resumption", j));
    }
    if cfg.runs("latency") {
        let j = latency::reload_latency(cfg, dir, report);
        report.json.push(("reload_latency", j));
    }
}

fn print_targets(targets: &[Target]) {
    println!("\n### Targets (from this run)\n");
    println!("| target | goal | reached | met |");
    println!("|---|---|---|---|");
    for t in targets {
        println!(
            "| {} | {} | {} | {} |",
            t.name,
            t.goal,
            t.reached,
            if t.met { "yes" } else { "**no**" }
        );
    }
}

/// The run's JSON: its settings, every section's figures, the targets.
fn summary(cfg: &Config, seconds: f64, report: &mut Report, targets: &[Target]) -> J {
    let mut json = vec![
        ("quick", J::Bool(cfg.quick)),
        ("openssl", J::Str(openssl::version::version().to_owned())),
        (
            "cores",
            int(thread::available_parallelism().map_or(0, |n| n.get() as u64)),
        ),
        ("client_threads", int(cfg.clients as u64)),
        ("server_threads", int(cfg.server_threads as u64)),
        ("reload_poll_ms", int(cfg.reload_poll.as_millis() as u64)),
        ("rotate_every_ms", int(cfg.rotate_every.as_millis() as u64)),
        ("seconds", J::Num(round2(seconds))),
    ];
    json.append(&mut report.json);
    json.push((
        "targets",
        J::Arr(
            targets
                .iter()
                .map(|t| {
                    J::Obj(vec![
                        ("name", J::Str(t.name.clone())),
                        ("goal", J::Str(t.goal.clone())),
                        ("reached", J::Str(t.reached.clone())),
                        ("met", J::Bool(t.met)),
                    ])
                })
                .collect(),
        ),
    ));
    J::Obj(json)
}

fn main() {
    // `cargo bench` passes `--bench`; libtest-style filters are not used here.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let cfg = Config::from_env();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => full_run(&cfg),
        ["--write-cert", dir] => {
            Pair::generate(KeyKind::EcdsaP256, 1)
                .write_to(Path::new(dir))
                .unwrap();
        }
        ["--peers", spec] => peers::peers(&cfg, spec),
        _ => {
            eprintln!(
                "usage: handshake [--write-cert DIR | --peers NAME=ADDR[@PID+PID],NAME=ADDR...]"
            );
            std::process::exit(2);
        }
    }
}
