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
use crate::net::{current_tid, task_ids, thread_cpu_ns, Clients, Segment, Server, Strategy};
use crate::report::{int, progress, round2, round4, Report, J};
use crate::stats::{median, percentile_us};
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

    let reloading = |name: &str| {
        let rotator = Rotator::new(&dir.join(name), &pairs[0]);
        // The thread that appears during build() is the poller.
        let before = task_ids();
        let tls = ReloadingAcceptor::builder(rotator.cert_path(), rotator.key_path())
            .poll_interval(cfg.reload_poll)
            .policy(server_policy)
            .build()
            .unwrap();
        let poller = task_ids().difference(&before).copied().collect::<Vec<_>>();
        (rotator, tls, poller)
    };
    let rotation = |rotator: Rotator, swap: Option<Arc<ArcSwap<SslAcceptor>>>| Rotation {
        rotator: Mutex::new(rotator),
        next: AtomicU64::new(1),
        pairs: Arc::clone(&pairs),
        swap,
        rotations: AtomicU64::new(0),
        rebuild_failures: AtomicU64::new(0),
    };

    let arms: Vec<Arm> = {
        let static_arm = Arm {
            strategy: Arc::new(Strategy::Static(static_acceptor(&pairs[0]))),
            rotation: None,
            reloading: None,
            poller_tids: Vec::new(),
        };
        let (_idle_rotator, idle, idle_poller) = reloading("idle");
        let idle_arm = Arm {
            strategy: Arc::new(Strategy::Reloading(idle.clone())),
            rotation: None,
            reloading: Some(idle),
            poller_tids: idle_poller,
        };
        let (rot_rotator, rot, rot_poller) = reloading("rotation");
        let rot_arm = Arm {
            strategy: Arc::new(Strategy::Reloading(rot.clone())),
            rotation: Some(rotation(rot_rotator, None)),
            reloading: Some(rot),
            poller_tids: rot_poller,
        };
        let swap_rotator = Rotator::new(&dir.join("swap"), &pairs[0]);
        let swap = Arc::new(ArcSwap::from_pointee(
            acceptor_from_files(&swap_rotator.cert_path(), &swap_rotator.key_path()).unwrap(),
        ));
        let swap_arm = Arm {
            strategy: Arc::new(Strategy::Swap(Arc::clone(&swap))),
            rotation: Some(rotation(swap_rotator, Some(swap))),
            reloading: None,
            poller_tids: Vec::new(),
        };
        vec![static_arm, idle_arm, rot_arm, swap_arm]
    };
    let server = Server::start_shared(Arc::clone(&arms[0].strategy), cfg.server_threads);

    // One segment of one strategy; the server side's CPU time is that of its
    // server threads, its poller and its rotating thread (file writes for both
    // rotating strategies, plus the rebuild for acceptor-swap).
    let run = |arm: &Arm, duration: Duration| {
        server.set_strategy(Arc::clone(&arm.strategy));
        let errors_start = server.errors.load(Ordering::Relaxed);
        let (server_start, poller_start) = (server.cpu_ns(), arm.poller_cpu_ns());
        let (mut seg, rotation_cpu) = match &arm.rotation {
            Some(rotation) => {
                rotation.during(cfg.rotate_every, || clients.run(server.addr, duration))
            }
            None => (clients.run(server.addr, duration), 0),
        };
        seg.reload_cpu_ns = arm.poller_cpu_ns() - poller_start + rotation_cpu;
        seg.server_cpu_ns = server.cpu_ns() - server_start + seg.reload_cpu_ns;
        seg.server_errors = server.errors.load(Ordering::Relaxed) - errors_start;
        seg
    };

    progress(format_args!("throughput, {}: warm-up", kind.label()));
    for arm in &arms {
        let _ = run(arm, cfg.warmup);
    }
    let rotations_before: Vec<u64> = arms
        .iter()
        .map(|a| {
            a.rotation
                .as_ref()
                .map_or(0, |r| r.rotations.load(Ordering::Relaxed))
        })
        .collect();
    let reloads_before: Vec<u64> = arms
        .iter()
        .map(|a| a.reloading.as_ref().map_or(0, |r| r.status().reloads))
        .collect();

    let mut totals: Vec<Segment> = (0..arms.len()).map(|_| Segment::default()).collect();
    let mut per_round: Vec<Vec<f64>> = vec![Vec::new(); arms.len()];
    for round in 0..cfg.rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..arms.len()).collect()
        } else {
            (0..arms.len()).rev().collect()
        };
        let mut rates = vec![0.0; arms.len()];
        for &i in &order {
            let seg = run(&arms[i], cfg.segment);
            rates[i] = seg.rate();
            totals[i].absorb(seg);
        }
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
        for (i, rate) in rates.iter().enumerate() {
            per_round[i].push(rate / rates[0]);
        }
    }

    let mut rows = Vec::new();
    let static_rate = totals[0].rate();
    let mut static_p = (0, 0);
    let static_cpu = totals[0].server_cpu_ns as f64 / totals[0].handshakes as f64;
    let static_total_cpu =
        (totals[0].server_cpu_ns + totals[0].client_cpu_ns) as f64 / totals[0].handshakes as f64;
    report.say(format!(
        "\n### {} (full TLS 1.3 handshakes, {} client threads, {} server threads)\n",
        kind.label(),
        cfg.clients,
        cfg.server_threads
    ));
    report.say("| strategy | handshakes/s | × static, wall clock: median of rounds (min–max) | × static, per CPU-second | server CPU µs/handshake (× static) | p50 µs (× static) | p99 µs (× static) | failures | reloads (CPU ms each) |");
    report.say("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (i, arm) in arms.iter().enumerate() {
        let seg = &mut totals[i];
        seg.latencies_us.sort_unstable();
        let p50 = percentile_us(&seg.latencies_us, 50.0);
        let p99 = percentile_us(&seg.latencies_us, 99.0);
        if i == 0 {
            static_p = (p50, p99);
        }
        let rate = seg.rate();
        let aggregate_ratio = rate / static_rate;
        let ratio = median(&per_round[i]);
        let (lo, hi) = per_round[i]
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &r| {
                (lo.min(r), hi.max(r))
            });
        let rotations = arm
            .rotation
            .as_ref()
            .map_or(0, |r| r.rotations.load(Ordering::Relaxed))
            - rotations_before[i];
        let reloads = match (&arm.reloading, &arm.rotation) {
            (Some(tls), _) => tls.status().reloads - reloads_before[i],
            (None, Some(_)) => rotations,
            (None, None) => 0,
        };
        let server_errors = seg.server_errors;
        let rebuild_failures = arm
            .rotation
            .as_ref()
            .map_or(0, |r| r.rebuild_failures.load(Ordering::Relaxed));
        let cpu = seg.server_cpu_ns as f64 / seg.handshakes as f64;
        let client_cpu = seg.client_cpu_ns as f64 / seg.handshakes as f64;
        // Handshakes per CPU-second of client and server together, against
        // static's: what the wall-clock ratio is on a machine saturated by the
        // benchmark alone, without the scheduler's and other processes' noise.
        let cpu_ratio = static_total_cpu / (cpu + client_cpu);
        // Poller ticks and rotations: file writes, then reload or rebuild.
        let reloads_cell = if arm.rotation.is_some() {
            format!(
                "{reloads} of {rotations} rotations ({:.2})",
                seg.reload_cpu_ns as f64 / 1e6 / rotations.max(1) as f64
            )
        } else {
            reloads.to_string()
        };
        let p50_ratio = f64::from(p50) / f64::from(static_p.0);
        let p99_ratio = f64::from(p99) / f64::from(static_p.1);
        report.say(format!(
            "| {} | {:.0} | {:.3} ({:.3}–{:.3}) | {cpu_ratio:.3} | {:.0} ({:.3}) | {} ({:.2}) | {} ({:.2}) | {} | {reloads_cell} |",
            STRATEGIES[i],
            rate,
            ratio,
            lo,
            hi,
            cpu / 1e3,
            cpu / static_cpu,
            p50,
            p50_ratio,
            p99,
            p99_ratio,
            seg.failures,
        ));
        if let Some(e) = &seg.first_error {
            report.say(format!("\nfirst failure of {}: `{e}`\n", STRATEGIES[i]));
        }
        rows.push(J::Obj(vec![
            ("strategy", J::Str(STRATEGY_IDS[i].to_owned())),
            ("handshakes", int(seg.handshakes)),
            ("seconds", J::Num(round4(seg.elapsed.as_secs_f64()))),
            ("handshakes_per_sec", J::Num(round2(rate))),
            ("ratio_to_static", J::Num(round4(ratio))),
            ("aggregate_ratio_to_static", J::Num(round4(aggregate_ratio))),
            (
                "per_round_ratio_to_static",
                J::Arr(per_round[i].iter().map(|r| J::Num(round4(*r))).collect()),
            ),
            ("cpu_normalized_ratio_to_static", J::Num(round4(cpu_ratio))),
            ("server_cpu_us_per_handshake", J::Num(round2(cpu / 1e3))),
            (
                "server_cpu_ratio_to_static",
                J::Num(round4(cpu / static_cpu)),
            ),
            (
                "client_cpu_us_per_handshake",
                J::Num(round2(client_cpu / 1e3)),
            ),
            (
                "reload_cpu_ms",
                J::Num(round2(seg.reload_cpu_ns as f64 / 1e6)),
            ),
            ("p50_us", int(p50)),
            ("p99_us", int(p99)),
            ("p50_ratio_to_static", J::Num(round4(p50_ratio))),
            ("p99_ratio_to_static", J::Num(round4(p99_ratio))),
            ("client_failures", int(seg.failures)),
            ("server_errors", int(server_errors)),
            ("rotations", int(rotations)),
            ("reloads", int(reloads)),
            ("rebuild_failures", int(rebuild_failures)),
            (
                "first_error",
                seg.first_error
                    .clone()
                    .map_or(J::Str(String::new()), J::Str),
            ),
        ]));
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
    J::Obj(vec![
        ("key", J::Str(kind.id().to_owned())),
        ("rounds", int(cfg.rounds as u64)),
        ("segment_ms", int(cfg.segment.as_millis() as u64)),
        ("strategies", J::Arr(rows)),
    ])
}
