//! Memory: RSS before and after many reloads.

use std::fs;
use std::path::Path;
use std::time::Instant;

use openssl_reload::{Reload, ReloadingAcceptor};

use crate::common::{reload_now_acceptor, KeyKind, Pair, Rotator};
use crate::report::{int, progress, round2, Report, J};
use crate::Config;

pub(crate) fn rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `n` reloads by `reload_now`, switching `current` between the two directories
/// (the first one first); returns how many were published.
fn alternate(rotator: &Rotator, tls: &ReloadingAcceptor, dirs: [&Path; 2], n: usize) -> u64 {
    let mut published = 0;
    for i in 0..n {
        rotator.point_to(dirs[i % 2]);
        if let Ok(Reload::Published(_)) = tls.reload_now() {
            published += 1;
        }
    }
    published
}

pub(crate) fn memory(cfg: &Config, dir: &Path, report: &mut Report) -> J {
    progress(format_args!("memory: {} reloads", cfg.memory_reloads));
    let kind = KeyKind::EcdsaP256;
    let a = Pair::generate(kind, 400);
    let b = Pair::generate(kind, 401);
    let rotator = Rotator::new(&dir.join("memory"), &a);
    let dir_a = rotator.stash("a", &a);
    let dir_b = rotator.stash("b", &b);
    rotator.point_to(&dir_a);
    let tls = reload_now_acceptor(&rotator);
    let reload = |n: usize| alternate(&rotator, &tls, [&dir_b, &dir_a], n);
    let start_kib = rss_kib();
    // Warm-up: allocator arenas and OpenSSL's lazily built tables settle.
    let mut published = reload(100);
    let before_kib = rss_kib();
    let started = Instant::now();
    published += reload(cfg.memory_reloads);
    let elapsed = started.elapsed();
    let after_kib = rss_kib();
    let growth_kib = after_kib as i64 - before_kib as i64;
    let per_10k_kib = growth_kib as f64 * 10_000.0 / cfg.memory_reloads as f64;
    let per_reload_us = elapsed.as_secs_f64() * 1e6 / cfg.memory_reloads as f64;
    report.say(format!(
        "\n### Memory ({}, `reload_now` alternating two certificates)\n",
        kind.label()
    ));
    report.say("| RSS after build | RSS after 100 warm-up reloads | RSS after further reloads | reloads | growth | per reload |");
    report.say("|---:|---:|---:|---:|---:|---:|");
    report.say(format!(
        "| {start_kib} KiB | {before_kib} KiB | {after_kib} KiB | {} | {growth_kib} KiB | {per_reload_us:.0} µs |",
        cfg.memory_reloads
    ));
    report.target(
        "RSS growth per 10,000 reloads",
        "< 1 MiB",
        format!("{per_10k_kib:.0} KiB"),
        per_10k_kib < 1024.0,
    );
    J::Obj(vec![
        ("reloads", int(cfg.memory_reloads as u64)),
        ("published", int(published)),
        ("rss_after_build_kib", int(start_kib)),
        ("rss_before_kib", int(before_kib)),
        ("rss_after_kib", int(after_kib)),
        ("growth_kib", int(growth_kib)),
        ("growth_per_10k_kib", J::Num(round2(per_10k_kib))),
        ("reload_us", J::Num(round2(per_reload_us))),
    ])
}
