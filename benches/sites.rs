//! Many sites behind one acceptor: start-up, memory, handshakes across every SNI
//! name, the idle cost and one site's rotation, for a directory of 10,000 ECDSA
//! P-256 sites (`OPENSSL_RELOAD_BENCH_SITES`; 500 with `OPENSSL_RELOAD_BENCH_QUICK=1`).
//!
//! `cargo bench --bench sites` writes `target/bench/sites.{json,md}`
//! (`OPENSSL_RELOAD_BENCH_OUT` moves them).
//!
//! - Start-up, memory, idle cost and rotation are measured in child processes
//!   (this binary with `--child`), so that each starts from a fresh heap: one
//!   with the one-site directory, one with all sites. Memory is the RSS after
//!   `build()` less the RSS before it, so the library's own start-up (OpenSSL's
//!   tables, the front context) is in both and cancels in the difference.
//! - Handshakes are full TLS 1.3 handshakes in memory (client and server in one
//!   thread, no sockets, no scheduler), the one-site acceptor and the
//!   10,000-site one interleaved in rounds (A B, B A, ...) so that drift
//!   cancels; the client sends each site's name in turn. Besides handshakes/s
//!   (client and server together), the time spent in the server's steps alone
//!   is summed, which is the cost the site table adds to.

#[path = "common/memory.rs"]
mod memory;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use memory::{End, ServerStep};
use openssl::ssl::{SslAcceptor, SslConnector, SslMethod, SslStream, SslVersion};
use openssl::x509::store::X509StoreBuilder;
use openssl_reload::ReloadingAcceptor;
use support::{Ca, LeafSpec};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn quick() -> bool {
    std::env::var("OPENSSL_RELOAD_BENCH_QUICK").as_deref() == Ok("1")
}

fn site_name(i: usize) -> String {
    format!("site{i:05}.bench.test")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        child(&args[2], Path::new(&args[3]), Path::new(&args[4]));
        return;
    }
    if args.iter().skip(1).any(|a| !a.starts_with('-')) {
        // `cargo bench -- FILTER`: nothing here to filter.
        return;
    }
    parent();
}

fn parent() {
    let sites = env_or(
        "OPENSSL_RELOAD_BENCH_SITES",
        if quick() { 500 } else { 10_000 },
    ) as usize;
    let out = std::env::var_os("OPENSSL_RELOAD_BENCH_OUT")
        .map_or_else(|| PathBuf::from("target/bench"), PathBuf::from);
    fs::create_dir_all(&out).unwrap();
    let root = tempfile::tempdir().unwrap();
    let (many, one) = (root.path().join("many"), root.path().join("one"));
    fs::create_dir_all(&many).unwrap();
    fs::create_dir_all(&one).unwrap();

    let ca = Ca::new("bench sites CA");
    let ca_pem = root.path().join("ca.pem");
    fs::write(&ca_pem, ca.pem()).unwrap();
    let started = Instant::now();
    for i in 0..sites {
        let leaf = ca.leaf_with(LeafSpec::new(&site_name(i)).dns(&[&site_name(i)]));
        let stem = format!("site{i:05}");
        fs::write(many.join(format!("{stem}.crt")), leaf.cert_pem()).unwrap();
        fs::write(many.join(format!("{stem}.key")), leaf.key_pem()).unwrap();
        if i == 0 {
            fs::write(one.join("site00000.crt"), leaf.cert_pem()).unwrap();
            fs::write(one.join("site00000.key"), leaf.key_pem()).unwrap();
        }
    }
    eprintln!(
        "sites: wrote {sites} sites in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Handshakes first: the "many" child rotates some of the sites.
    let throughput = handshakes(&one, &many, sites, &ca);
    let one_site = run_child("one", &one, &ca_pem);
    let many_sites = run_child("many", &many, &ca_pem);

    let startup_s = many_sites["startup_ms"] / 1000.0;
    let per_site_bytes = (many_sites["rss_delta"] - one_site["rss_delta"]) / (sites as f64 - 1.0);
    let idle_pct = many_sites["idle_cpu_pct"];
    let rotation_ms = many_sites["rotation_ms_max"];
    let interval_ms = 1000.0;
    let rows = [
        (
            "start-up to serving",
            "≤ 10 s".to_owned(),
            format!(
                "{startup_s:.2} s ({:.3} ms a site); one site: {:.1} ms",
                many_sites["startup_ms"] / sites as f64,
                one_site["startup_ms"]
            ),
            startup_s <= 10.0,
        ),
        (
            "memory per site above the one-site server",
            "≤ 16 KiB".to_owned(),
            format!(
                "{:.1} KiB (RSS +{:.1} MiB for {sites} sites, +{:.1} MiB for one)",
                per_site_bytes / 1024.0,
                many_sites["rss_delta"] / 1048576.0,
                one_site["rss_delta"] / 1048576.0
            ),
            per_site_bytes <= 16.0 * 1024.0,
        ),
        (
            "handshakes/s across every name ÷ one-site",
            "≥ 0.97".to_owned(),
            format!(
                "{:.3} ({:.0} vs {:.0} handshakes/s; server time per handshake {:.1} µs vs {:.1} µs, ratio {:.3})",
                throughput.rate_ratio,
                throughput.many_rate,
                throughput.one_rate,
                throughput.many_server_us,
                throughput.one_server_us,
                throughput.one_server_us / throughput.many_server_us,
            ),
            throughput.rate_ratio >= 0.97,
        ),
        (
            "idle CPU at the 1 s interval",
            "≤ 5 % of a core, no read".to_owned(),
            format!(
                "{idle_pct:.2} % of a core; {} read calls in {:.0} s idle",
                many_sites["idle_reads"],
                many_sites["idle_seconds"]
            ),
            idle_pct <= 5.0 && many_sites["idle_reads"] == 0.0,
        ),
        (
            "one site's rotation served",
            format!("≤ interval + 50 ms ({} ms)", interval_ms + 50.0),
            format!(
                "max {rotation_ms:.0} ms, median {:.0} ms over {} rotations; other sites' generations moved: {}",
                many_sites["rotation_ms_median"],
                many_sites["rotations"],
                many_sites["others_moved"]
            ),
            rotation_ms <= interval_ms + 50.0 && many_sites["others_moved"] == 0.0,
        ),
    ];
    let mut md = format!(
        "### Many sites (`cargo bench --bench sites`)\n\n{sites} ECDSA P-256 sites in one directory, one name each; \
         the one-site server is the same acceptor on a directory of one.{}\n\n\
         | figure | goal | measured | met |\n|---|---|---|---|\n",
        if quick() { " **Quick mode: smoke figures.**" } else { "" }
    );
    let mut json = String::from("{");
    for (name, goal, reached, met) in &rows {
        md.push_str(&format!(
            "| {name} | {goal} | {reached} | {} |\n",
            if *met { "yes" } else { "**no**" }
        ));
        json.push_str(&format!(
            "{:?}: {{\"reached\": {:?}, \"met\": {met}}},",
            name, reached
        ));
    }
    json.push_str(&format!("\"sites\": {sites}}}"));
    println!("{md}");
    fs::write(out.join("sites.md"), &md).unwrap();
    fs::write(out.join("sites.json"), json).unwrap();
}

/// Runs this binary as a child in `mode` and parses its `key=value` lines.
fn run_child(mode: &str, dir: &Path, ca: &Path) -> BTreeMap<String, f64> {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--child", mode])
        .arg(dir)
        .arg(ca)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(output.status.success(), "child {mode} failed");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
        .collect()
}

fn rss_bytes() -> f64 {
    let statm = fs::read_to_string("/proc/self/statm").unwrap();
    let pages: f64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096.0
}

/// A /proc file in one `read(2)`, so that the idle count can leave out its own.
fn proc_file(path: &str) -> String {
    let mut buf = vec![0; 4096];
    let n = fs::File::open(path).unwrap().read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// User and system CPU time of the whole process (every thread), in seconds.
fn cpu_seconds() -> f64 {
    let stat = proc_file("/proc/self/stat");
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// `read(2)` calls made by the whole process so far.
fn read_calls() -> f64 {
    let io = proc_file("/proc/self/io");
    io.lines()
        .find_map(|l| l.strip_prefix("syscr: "))
        .unwrap()
        .parse()
        .unwrap()
}

/// One acceptor over `dir`: start-up, memory; for "many", the idle cost and rotations.
fn child(mode: &str, dir: &Path, _ca: &Path) {
    // OpenSSL's own start-up, in both children alike.
    drop(SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap());
    let before = rss_bytes();
    let started = Instant::now();
    let tls = ReloadingAcceptor::builder().site_dir(dir).build().unwrap();
    let startup = started.elapsed();
    let after = rss_bytes();
    println!("startup_ms={}", startup.as_secs_f64() * 1000.0);
    println!("rss_delta={}", after - before);
    if mode != "many" {
        return;
    }
    let idle = Duration::from_secs(if quick() { 3 } else { 10 });
    // Let the first tick pass, then measure whole ticks.
    std::thread::sleep(Duration::from_millis(1500));
    // The measurement's own reads of /proc, counted over no time at all.
    let own_reads = {
        let r0 = read_calls();
        let _ = (cpu_seconds(), cpu_seconds());
        read_calls() - r0
    };
    let (reads0, cpu0, t0) = (read_calls(), cpu_seconds(), Instant::now());
    std::thread::sleep(idle);
    let (cpu1, reads1) = (cpu_seconds(), read_calls());
    let seconds = t0.elapsed().as_secs_f64();
    println!("idle_cpu_pct={}", (cpu1 - cpu0) / seconds * 100.0);
    println!("idle_reads={}", reads1 - reads0 - own_reads);
    println!("idle_seconds={seconds}");

    let generations = |tls: &ReloadingAcceptor| -> BTreeMap<String, u64> {
        tls.sites()
            .into_iter()
            .map(|s| (s.name, s.status.generation))
            .collect()
    };
    let before = generations(&tls);
    let ca = Ca::new("rotation CA");
    let mut latencies = Vec::new();
    let mut rotated = Vec::new();
    let count = before.len();
    for step in 0..5 {
        let i = (count / 5) * step + count / 10;
        let stem = format!("site{i:05}");
        let leaf = ca.leaf_with(LeafSpec::new(&site_name(i)).dns(&[&site_name(i)]));
        let serial = leaf.serial.clone();
        // As a writer that renames each file into place: key, then certificate.
        let (key_tmp, cert_tmp) = (dir.join(".key.tmp"), dir.join(".crt.tmp"));
        fs::write(&key_tmp, leaf.key_pem()).unwrap();
        fs::write(&cert_tmp, leaf.cert_pem()).unwrap();
        // Wait for a tick to pass so the rotation lands at a random phase.
        std::thread::sleep(Duration::from_millis(137 * (step as u64 + 1)));
        let written = Instant::now();
        fs::rename(&key_tmp, dir.join(format!("{stem}.key"))).unwrap();
        fs::rename(&cert_tmp, dir.join(format!("{stem}.crt"))).unwrap();
        let client = connector(&ca);
        loop {
            if served_serial(&tls, &client, &site_name(i)).as_deref() == Some(serial.as_str()) {
                break;
            }
            assert!(
                written.elapsed() < Duration::from_secs(10),
                "rotation not seen"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        latencies.push(written.elapsed().as_secs_f64() * 1000.0);
        rotated.push(stem);
    }
    let after = generations(&tls);
    let others_moved = before
        .iter()
        .filter(|(name, gen)| !rotated.contains(name) && after.get(*name) != Some(gen))
        .count();
    latencies.sort_by(f64::total_cmp);
    println!("rotation_ms_max={}", latencies[latencies.len() - 1]);
    println!("rotation_ms_median={}", latencies[latencies.len() / 2]);
    println!("rotations={}", latencies.len());
    println!("others_moved={others_moved}");
}

fn connector(ca: &Ca) -> SslConnector {
    let mut builder = SslConnector::builder(SslMethod::tls_client()).unwrap();
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(ca.cert.clone()).unwrap();
    builder.set_verify_cert_store(store.build()).unwrap();
    builder
        .set_min_proto_version(Some(SslVersion::TLS1_3))
        .unwrap();
    // Full handshakes only.
    builder.set_options(openssl::ssl::SslOptions::NO_TICKET);
    builder.set_session_cache_mode(openssl::ssl::SslSessionCacheMode::OFF);
    builder.build()
}

/// The serial the server presents for `name`, from an in-memory handshake.
fn served_serial(tls: &ReloadingAcceptor, client: &SslConnector, name: &str) -> Option<String> {
    let mut server_time = Duration::ZERO;
    let stream = handshake(tls.acceptor(), client, name, &mut server_time)?;
    let cert = stream.ssl().peer_certificate()?;
    Some(support::serial_hex(&cert))
}

/// A full handshake over memory; the server's steps are timed into `server_time`.
/// Returns the client's stream, or `None` if the handshake failed.
fn handshake(
    acceptor: &SslAcceptor,
    client: &SslConnector,
    name: &str,
    server_time: &mut Duration,
) -> Option<SslStream<End>> {
    let timed = |step: ServerStep<'_>| {
        let t = Instant::now();
        let side = step.take();
        *server_time += t.elapsed();
        side
    };
    let config = client.configure().ok()?;
    let (client, _server) = memory::handshake(acceptor, config, name, timed).ok()?;
    Some(client)
}

struct Throughput {
    one_rate: f64,
    many_rate: f64,
    rate_ratio: f64,
    one_server_us: f64,
    many_server_us: f64,
}

/// Interleaved rounds of in-memory handshakes: the one-site acceptor (its one
/// name) against the many-site one (every name in turn).
fn handshakes(one: &Path, many: &Path, sites: usize, ca: &Ca) -> Throughput {
    let one_tls = ReloadingAcceptor::builder().site_dir(one).build().unwrap();
    let many_tls = ReloadingAcceptor::builder().site_dir(many).build().unwrap();
    let client = connector(ca);
    let segment = Duration::from_millis(if quick() { 300 } else { 1500 });
    let rounds = if quick() { 2 } else { 8 };
    let names: Vec<String> = (0..sites).map(site_name).collect();
    let mut totals = [(0u64, Duration::ZERO, Duration::ZERO); 2];
    let mut next = 0usize;
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for arm in order {
            let tls = if arm == 0 { &one_tls } else { &many_tls };
            let (mut count, mut server) = (0u64, Duration::ZERO);
            let started = Instant::now();
            while started.elapsed() < segment {
                let name = if arm == 0 {
                    &names[0]
                } else {
                    next = (next + 1) % sites;
                    &names[next]
                };
                handshake(tls.acceptor(), &client, name, &mut server)
                    .unwrap_or_else(|| panic!("handshake for {name} (arm {arm}) failed"));
                count += 1;
            }
            let total = &mut totals[arm];
            total.0 += count;
            total.1 += started.elapsed();
            total.2 += server;
        }
    }
    let rate = |t: &(u64, Duration, Duration)| t.0 as f64 / t.1.as_secs_f64();
    let server_us = |t: &(u64, Duration, Duration)| t.2.as_secs_f64() * 1e6 / t.0 as f64;
    Throughput {
        one_rate: rate(&totals[0]),
        many_rate: rate(&totals[1]),
        rate_ratio: rate(&totals[1]) / rate(&totals[0]),
        one_server_us: server_us(&totals[0]),
        many_server_us: server_us(&totals[1]),
    }
}
