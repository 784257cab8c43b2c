//! Throughput and latency of the four strategies, in interleaved rounds.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use openssl::ssl::SslAcceptor;
use openssl_reload::ReloadingAcceptor;

use crate::common::{
    acceptor_from_files, client, server_policy, static_acceptor, KeyKind, Pair, Rotator,
};
use crate::net::{
    current_tid, interleaved_rounds, task_ids, thread_cpu_ns, Clients, Segment, Server, Strategy,
};
use crate::report::{int, progress, round2, round4, Report, J};
use crate::stats::{median_and_range, percentile_us};
use crate::Config;

pub(crate) const STRATEGIES: [&str; 4] = [
    "static",
    "reloading (idle)",
    "reloading + rotation",
    "acceptor-swap + rotation",
];
pub(crate) const STRATEGY_IDS: [&str; 4] = [
    "static",
    "reloading_idle",
    "reloading_rotation",
    "acceptor_swap",
];

/// The certificate directory and pairs a rotating strategy cycles through.
pub(crate) struct Rotation {
    pub(crate) rotator: Mutex<Rotator>,
    pub(crate) next: AtomicU64,
    pub(crate) pairs: Arc<Vec<Pair>>,
    /// For acceptor-swap: rebuild from the files and store, after each rename.
    pub(crate) swap: Option<Arc<ArcSwap<SslAcceptor>>>,
    pub(crate) rotations: AtomicU64,
    pub(crate) rebuild_failures: AtomicU64,
}

impl Rotation {
    pub(crate) fn rotate(&self) {
        let index = self.next.fetch_add(1, Ordering::Relaxed) as usize % self.pairs.len();
        let mut rotator = self.rotator.lock().unwrap();
        rotator.install(&self.pairs[index]);
        if let Some(swap) = &self.swap {
            match acceptor_from_files(&rotator.cert_path(), &rotator.key_path()) {
                Ok(acceptor) => swap.store(Arc::new(acceptor)),
                Err(_) => {
                    self.rebuild_failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.rotations.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs `body` while rotating every `every` on another thread; returns its
    /// result and the CPU time the rotating thread used.
    pub(crate) fn during<R>(&self, every: Duration, body: impl FnOnce() -> R) -> (R, u64) {
        let stop = AtomicBool::new(false);
        thread::scope(|scope| {
            let rotating = scope.spawn(|| {
                let tid = current_tid();
                let cpu = || tid.map_or(0, thread_cpu_ns);
                let cpu_start = cpu();
                let start = Instant::now();
                let mut k = 1u32;
                loop {
                    let at = start + every * k;
                    loop {
                        if stop.load(Ordering::Relaxed) {
                            return cpu() - cpu_start;
                        }
                        let now = Instant::now();
                        if now >= at {
                            break;
                        }
                        thread::sleep((at - now).min(Duration::from_millis(5)));
                    }
                    self.rotate();
                    k += 1;
                }
            });
            let result = body();
            stop.store(true, Ordering::Relaxed);
            (result, rotating.join().unwrap())
        })
    }
}

pub(crate) struct Arm {
    pub(crate) strategy: Arc<Strategy>,
    pub(crate) rotation: Option<Rotation>,
    pub(crate) reloading: Option<ReloadingAcceptor>,
    /// The crate's poller thread, whose CPU time counts as the server side's.
    pub(crate) poller_tids: Vec<u32>,
}

impl Arm {
    /// CPU time of the poller so far.
    fn poller_cpu_ns(&self) -> u64 {
        self.poller_tids.iter().map(|&t| thread_cpu_ns(t)).sum()
    }
}

pub(crate) fn throughput(cfg: &Config, kind: KeyKind, dir: &Path, report: &mut Report) -> J {
    progress(format_args!(
        "throughput, {}: generating certificates",
        kind.label()
    ));
    let pairs: Arc<Vec<Pair>> = Arc::new((0..4).map(|i| Pair::generate(kind, 100 + i)).collect());
    let clients = Clients::new(cfg.clients, &client());
    let arms = arms(cfg, dir, &pairs);
    let server = Server::start_shared(Arc::clone(&arms[0].strategy), cfg.server_threads);
    let bench = Bench {
        cfg,
        server: &server,
        clients: &clients,
    };

    progress(format_args!("throughput, {}: warm-up", kind.label()));
    for arm in &arms {
        let _ = bench.run(arm, cfg.warmup);
    }
    let before: Vec<Counts> = arms.iter().map(Counts::of).collect();
    let (mut totals, per_round) = bench.rounds(kind, &arms);
    let rows = report_strategies(cfg, kind, &arms, &mut totals, &per_round, &before, report);
    J::Obj(vec![
        ("key", J::Str(kind.id().to_owned())),
        ("rounds", int(cfg.rounds as u64)),
        ("segment_ms", int(cfg.segment.as_millis() as u64)),
        ("strategies", J::Arr(rows)),
    ])
}

/// The four strategies, in the order of [`STRATEGIES`]: static, reloading idle,
/// reloading with rotation, acceptor-swap with rotation.
fn arms(cfg: &Config, dir: &Path, pairs: &Arc<Vec<Pair>>) -> Vec<Arm> {
    let static_arm = Arm {
        strategy: Arc::new(Strategy::Static(static_acceptor(&pairs[0]))),
        rotation: None,
        reloading: None,
        poller_tids: Vec::new(),
    };
    let (_idle_rotator, idle, idle_poller) = reloading(cfg, &dir.join("idle"), &pairs[0]);
    let idle_arm = Arm {
        strategy: Arc::new(Strategy::Reloading(idle.clone())),
        rotation: None,
        reloading: Some(idle),
        poller_tids: idle_poller,
    };
    let (rot_rotator, rot, rot_poller) = reloading(cfg, &dir.join("rotation"), &pairs[0]);
    let rot_arm = Arm {
        strategy: Arc::new(Strategy::Reloading(rot.clone())),
        rotation: Some(Rotation::new(rot_rotator, pairs, None)),
        reloading: Some(rot),
        poller_tids: rot_poller,
    };
    let swap_rotator = Rotator::new(&dir.join("swap"), &pairs[0]);
    let swap = Arc::new(ArcSwap::from_pointee(
        acceptor_from_files(&swap_rotator.cert_path(), &swap_rotator.key_path()).unwrap(),
    ));
    let swap_arm = Arm {
        strategy: Arc::new(Strategy::Swap(Arc::clone(&swap))),
        rotation: Some(Rotation::new(swap_rotator, pairs, Some(swap))),
        reloading: None,
        poller_tids: Vec::new(),
    };
    vec![static_arm, idle_arm, rot_arm, swap_arm]
}

/// A reloading acceptor on a new certificate directory `dir` holding `first`,
/// and the ids of its poller thread.
fn reloading(cfg: &Config, dir: &Path, first: &Pair) -> (Rotator, ReloadingAcceptor, Vec<u32>) {
    let rotator = Rotator::new(dir, first);
    // The thread that appears during build() is the poller.
    let before = task_ids();
    let tls = ReloadingAcceptor::builder()
        .identity(rotator.cert_path(), rotator.key_path())
        .poll_interval(cfg.reload_poll)
        .policy(server_policy)
        .build()
        .unwrap();
    let poller = task_ids().difference(&before).copied().collect::<Vec<_>>();
    (rotator, tls, poller)
}

impl Rotation {
    fn new(
        rotator: Rotator,
        pairs: &Arc<Vec<Pair>>,
        swap: Option<Arc<ArcSwap<SslAcceptor>>>,
    ) -> Self {
        Self {
            rotator: Mutex::new(rotator),
            next: AtomicU64::new(1),
            pairs: Arc::clone(pairs),
            swap,
            rotations: AtomicU64::new(0),
            rebuild_failures: AtomicU64::new(0),
        }
    }
}

/// The shared server and clients that every strategy is measured on.
struct Bench<'a> {
    cfg: &'a Config,
    server: &'a Server,
    clients: &'a Clients,
}

impl Bench<'_> {
    /// One segment of one strategy; the server side's CPU time is that of its
    /// server threads, its poller and its rotating thread (file writes for both
    /// rotating strategies, plus the rebuild for acceptor-swap).
    fn run(&self, arm: &Arm, duration: Duration) -> Segment {
        let (server, clients) = (self.server, self.clients);
        server.set_strategy(Arc::clone(&arm.strategy));
        let errors_start = server.errors.load(Ordering::Relaxed);
        let (server_start, poller_start) = (server.cpu_ns(), arm.poller_cpu_ns());
        let (mut seg, rotation_cpu) = match &arm.rotation {
            Some(rotation) => {
                rotation.during(self.cfg.rotate_every, || clients.run(server.addr, duration))
            }
            None => (clients.run(server.addr, duration), 0),
        };
        seg.reload_cpu_ns = arm.poller_cpu_ns() - poller_start + rotation_cpu;
        seg.server_cpu_ns = server.cpu_ns() - server_start + seg.reload_cpu_ns;
        seg.server_errors = server.errors.load(Ordering::Relaxed) - errors_start;
        seg
    }

    /// The measured rounds, each strategy once per round, in alternating order:
    /// each strategy's total and its per-round rate relative to static.
    fn rounds(&self, kind: KeyKind, arms: &[Arm]) -> (Vec<Segment>, Vec<Vec<f64>>) {
        let cfg = self.cfg;
        interleaved_rounds(
            arms.len(),
            cfg.rounds,
            |i| self.run(&arms[i], cfg.segment),
            |round, rates| {
                progress(format_args!(
                    "throughput, {}: round {}/{}: {}",
                    kind.label(),
                    round + 1,
                    cfg.rounds,
                    rates
                        .iter()
                        .map(|r| format!("{r:.0}"))
                        .collect::<Vec<_>>()
                        .join(" / ")
                ));
            },
        )
    }
}

/// Rotations and reloads of one strategy so far.
struct Counts {
    rotations: u64,
    reloads: u64,
}

impl Counts {
    fn of(arm: &Arm) -> Self {
        Self {
            rotations: arm
                .rotation
                .as_ref()
                .map_or(0, |r| r.rotations.load(Ordering::Relaxed)),
            reloads: arm.reloading.as_ref().map_or(0, |r| r.status().reloads),
        }
    }
}

/// What static measured, that the other strategies are compared with.
struct Baseline {
    rate: f64,
    /// Server CPU ns per handshake.
    cpu: f64,
    /// Server and client CPU ns per handshake.
    total_cpu: f64,
    p50: u32,
    p99: u32,
}

/// One strategy's figures over all rounds.
struct Figures {
    rate: f64,
    aggregate_ratio: f64,
    /// Median of the per-round ratios to static, and their range.
    ratio: f64,
    lo: f64,
    hi: f64,
    rotations: u64,
    reloads: u64,
    rebuild_failures: u64,
    /// Server and client CPU ns per handshake.
    cpu: f64,
    client_cpu: f64,
    /// Handshakes per CPU-second of client and server together, against static's.
    cpu_ratio: f64,
    p50: u32,
    p99: u32,
    p50_ratio: f64,
    p99_ratio: f64,
}

impl Figures {
    /// `seg`'s latencies must be sorted.
    fn of(arm: &Arm, seg: &Segment, per_round: &[f64], before: &Counts, base: &Baseline) -> Self {
        let (p50, p99) = (
            percentile_us(&seg.latencies_us, 50.0),
            percentile_us(&seg.latencies_us, 99.0),
        );
        let rate = seg.rate();
        let (ratio, lo, hi) = median_and_range(per_round);
        let rotations = Counts::of(arm).rotations - before.rotations;
        let reloads = match (&arm.reloading, &arm.rotation) {
            (Some(tls), _) => tls.status().reloads - before.reloads,
            (None, Some(_)) => rotations,
            (None, None) => 0,
        };
        let cpu = seg.server_cpu_ns as f64 / seg.handshakes as f64;
        let client_cpu = seg.client_cpu_ns as f64 / seg.handshakes as f64;
        Self {
            rate,
            aggregate_ratio: rate / base.rate,
            ratio,
            lo,
            hi,
            rotations,
            reloads,
            rebuild_failures: arm
                .rotation
                .as_ref()
                .map_or(0, |r| r.rebuild_failures.load(Ordering::Relaxed)),
            cpu,
            client_cpu,
            // What the wall-clock ratio is on a machine saturated by the
            // benchmark alone, without the scheduler's and other processes' noise.
            cpu_ratio: base.total_cpu / (cpu + client_cpu),
            p50,
            p99,
            p50_ratio: f64::from(p50) / f64::from(base.p50),
            p99_ratio: f64::from(p99) / f64::from(base.p99),
        }
    }
}

/// The Markdown table of the strategies, the targets, and their JSON rows.
fn report_strategies(
    cfg: &Config,
    kind: KeyKind,
    arms: &[Arm],
    totals: &mut [Segment],
    per_round: &[Vec<f64>],
    before: &[Counts],
    report: &mut Report,
) -> Vec<J> {
    for seg in totals.iter_mut() {
        seg.latencies_us.sort_unstable();
    }
    let s = &totals[0];
    let base = Baseline {
        rate: s.rate(),
        cpu: s.server_cpu_ns as f64 / s.handshakes as f64,
        total_cpu: (s.server_cpu_ns + s.client_cpu_ns) as f64 / s.handshakes as f64,
        p50: percentile_us(&s.latencies_us, 50.0),
        p99: percentile_us(&s.latencies_us, 99.0),
    };
    report.say(format!(
        "\n### {} (full TLS 1.3 handshakes, {} client threads, {} server threads)\n",
        kind.label(),
        cfg.clients,
        cfg.server_threads
    ));
    report.say("| strategy | handshakes/s | × static, wall clock: median of rounds (min–max) | × static, per CPU-second | server CPU µs/handshake (× static) | p50 µs (× static) | p99 µs (× static) | failures | reloads (CPU ms each) |");
    report.say("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for (i, arm) in arms.iter().enumerate() {
        let seg = &totals[i];
        let f = Figures::of(arm, seg, &per_round[i], &before[i], &base);
        report.say(markdown_row(i, &f, seg, arm.rotation.is_some(), &base));
        if let Some(e) = &seg.first_error {
            report.say(format!("\nfirst failure of {}: `{e}`\n", STRATEGIES[i]));
        }
        rows.push(json_row(i, &f, seg, &per_round[i], &base));
        targets(report, kind, i, &f, seg);
    }
    rows
}

fn markdown_row(i: usize, f: &Figures, seg: &Segment, rotating: bool, base: &Baseline) -> String {
    // Poller ticks and rotations: file writes, then reload or rebuild.
    let reloads_cell = if rotating {
        format!(
            "{} of {} rotations ({:.2})",
            f.reloads,
            f.rotations,
            seg.reload_cpu_ns as f64 / 1e6 / f.rotations.max(1) as f64
        )
    } else {
        f.reloads.to_string()
    };
    format!(
        "| {} | {:.0} | {:.3} ({:.3}–{:.3}) | {:.3} | {:.0} ({:.3}) | {} ({:.2}) | {} ({:.2}) | {} | {reloads_cell} |",
        STRATEGIES[i],
        f.rate,
        f.ratio,
        f.lo,
        f.hi,
        f.cpu_ratio,
        f.cpu / 1e3,
        f.cpu / base.cpu,
        f.p50,
        f.p50_ratio,
        f.p99,
        f.p99_ratio,
        seg.failures,
    )
}

fn json_row(i: usize, f: &Figures, seg: &Segment, per_round: &[f64], base: &Baseline) -> J {
    J::Obj(vec![
        ("strategy", J::Str(STRATEGY_IDS[i].to_owned())),
        ("handshakes", int(seg.handshakes)),
        ("seconds", J::Num(round4(seg.elapsed.as_secs_f64()))),
        ("handshakes_per_sec", J::Num(round2(f.rate))),
        ("ratio_to_static", J::Num(round4(f.ratio))),
        (
            "aggregate_ratio_to_static",
            J::Num(round4(f.aggregate_ratio)),
        ),
        (
            "per_round_ratio_to_static",
            J::Arr(per_round.iter().map(|r| J::Num(round4(*r))).collect()),
        ),
        (
            "cpu_normalized_ratio_to_static",
            J::Num(round4(f.cpu_ratio)),
        ),
        ("server_cpu_us_per_handshake", J::Num(round2(f.cpu / 1e3))),
        (
            "server_cpu_ratio_to_static",
            J::Num(round4(f.cpu / base.cpu)),
        ),
        (
            "client_cpu_us_per_handshake",
            J::Num(round2(f.client_cpu / 1e3)),
        ),
        (
            "reload_cpu_ms",
            J::Num(round2(seg.reload_cpu_ns as f64 / 1e6)),
        ),
        ("p50_us", int(f.p50)),
        ("p99_us", int(f.p99)),
        ("p50_ratio_to_static", J::Num(round4(f.p50_ratio))),
        ("p99_ratio_to_static", J::Num(round4(f.p99_ratio))),
        ("client_failures", int(seg.failures)),
        ("server_errors", int(seg.server_errors)),
        ("rotations", int(f.rotations)),
        ("reloads", int(f.reloads)),
        ("rebuild_failures", int(f.rebuild_failures)),
        (
            "first_error",
            seg.first_error
                .clone()
                .map_or(J::Str(String::new()), J::Str),
        ),
    ])
}

/// The targets the reloading strategies must meet against static.
fn targets(report: &mut Report, kind: KeyKind, i: usize, f: &Figures, seg: &Segment) {
    let (ratio, cpu_ratio) = (f.ratio, f.cpu_ratio);
    match i {
        1 => report.target(
            format!("reloading/static, {}", kind.label()),
            "≥ 0.99",
            format!("{ratio:.3} (per CPU-second: {cpu_ratio:.3})"),
            ratio >= 0.99,
        ),
        2 => report.target(
            format!("reloading + rotation/static, {}", kind.label()),
            "≥ 0.97, 0 failures",
            format!(
                "{ratio:.3} (per CPU-second: {cpu_ratio:.3}), {} failures",
                seg.failures
            ),
            ratio >= 0.97 && seg.failures == 0,
        ),
        _ => {}
    }
}
