//! Rotation under concurrent load; reload cycles and resource bounds.
//!
//! `rotation_under_load` is the CI run (at least 10 s and 300 rotations);
//! `rotation_under_load_long` is opt-in (`cargo test --test it stress -- --ignored
//! --nocapture`, at least 1,000 rotations). Both print their figures; see them
//! with `--nocapture`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openssl::ssl::SslConnector;
use openssl_reload::{CertificateStatus, Reload, ReloadingAcceptor};
use tokio::task::JoinHandle;

use crate::support::{self, Ca, K8sVolume, DEADLINE, INTERVAL};

/// Concurrent clients, each doing full handshakes back to back.
const CLIENTS: usize = 8;
/// Time on top of the poll interval within which, once rotation stops, every new
/// handshake must see the final certificate: a tick is 20 ms and a reload a few
/// milliseconds; the rest is headroom for a shared CI machine.
const MARGIN: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load() {
    rotate_under_load(Duration::from_secs(10), 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long run (about a minute); run with --ignored"]
async fn rotation_under_load_long() {
    rotate_under_load(Duration::from_secs(45), 1_000).await;
}

/// The three ways writers replace certificate files, used in turn.
#[derive(Clone, Copy, Debug)]
enum Method {
    /// Each file written to a temporary name and renamed over (two renames: the
    /// pair is not replaced atomically).
    Rename,
    /// Each file truncated and rewritten in place, cert then key: the poller can
    /// read a half-written file or a half-replaced pair.
    InPlace,
    /// Kubernetes' secret volume update: a new directory, then one rename of the
    /// `..data` symlink (the pair changes atomically).
    SymlinkSwap,
}

const METHODS: [Method; 3] = [Method::Rename, Method::InPlace, Method::SymlinkSwap];

/// One handshake as a client saw it.
struct Attempt {
    started: Instant,
    outcome: Result<String, String>,
}

struct Rotation {
    serial: String,
    written: Instant,
}

/// Every serial ever written, entered before its files are, with when they were.
type Written = Mutex<HashMap<String, Option<Instant>>>;

async fn rotate_under_load(min_time: Duration, min_rotations: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new("stress CA");
    let first = ca.leaf("rotation 0");
    let volume = K8sVolume::new(
        tmp.path(),
        &[
            ("cert.pem", &first.cert_pem()),
            ("key.pem", &first.key_pem()),
        ],
    );
    let tls = ReloadingAcceptor::builder()
        .identity(volume.path("cert.pem"), volume.path("key.pem"))
        .poll_interval(INTERVAL)
        .build()
        .unwrap();
    let server = support::serve(tls.clone()).await;
    let connector = support::client(&ca.pem());
    let written: Arc<Written> = Arc::default();
    written
        .lock()
        .unwrap()
        .insert(first.serial.clone(), Some(Instant::now()));
    let (published, publish_log) = record_publishes(&tls);

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            tokio::spawn(handshakes(
                connector.clone(),
                server.addr,
                Arc::clone(&stop),
            ))
        })
        .collect();

    // The writer: a plain thread, as a cert-manager or a kubelet would be.
    let writer = {
        let written = Arc::clone(&written);
        std::thread::spawn(move || rotate(volume, &ca, &written, min_time, min_rotations))
    };
    let rotations = tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    let mut run = Run::new(rotations);

    // Let the clients run on past the deadline for the final certificate.
    tokio::time::sleep_until((run.deadline + Duration::from_millis(500)).into()).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        run.attempts.extend(client.await.unwrap());
    }
    publish_log.abort();

    let status = tls.status();
    run.print(&published.lock().unwrap(), &status);
    run.assert_sound(&written.lock().unwrap(), &status, min_rotations);
    drop(server);
}

/// When each serial was first published, from the status channel, recorded by
/// the returned task.
fn record_publishes(
    tls: &ReloadingAcceptor,
) -> (Arc<Mutex<HashMap<String, Instant>>>, JoinHandle<()>) {
    let published: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let log = Arc::clone(&published);
    let mut rx = tls.subscribe();
    let task = tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let serial = rx
                .borrow_and_update()
                .certificate
                .as_ref()
                .map(|c| c.serial.clone());
            if let Some(serial) = serial {
                log.lock()
                    .unwrap()
                    .entry(serial)
                    .or_insert_with(Instant::now);
            }
        }
    });
    (published, task)
}

/// One client: full handshakes back to back until `stop`.
async fn handshakes(
    connector: SslConnector,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        // No session offered: every handshake is a full one and
        // receives the certificate in service.
        let outcome = support::exchange(&connector, addr, None)
            .await
            .and_then(|seen| {
                if seen.resumed || !seen.reply.contains("ping") {
                    Err(format!("resumed={} reply={:?}", seen.resumed, seen.reply))
                } else {
                    Ok(seen.serial)
                }
            });
        attempts.push(Attempt { started, outcome });
    }
    attempts
}

/// What one run of [`rotate_under_load`] did and saw.
struct Run {
    rotations: Vec<Rotation>,
    attempts: Vec<Attempt>,
    final_serial: String,
    /// When the last rotation was written.
    stopped: Instant,
    /// From here on every handshake must see the final certificate.
    deadline: Instant,
}

impl Run {
    fn new(rotations: Vec<Rotation>) -> Self {
        let last = rotations.last().unwrap();
        let (final_serial, stopped) = (last.serial.clone(), last.written);
        Self {
            rotations,
            attempts: Vec::new(),
            final_serial,
            stopped,
            deadline: stopped + INTERVAL + MARGIN,
        }
    }

    fn failures(&self) -> Vec<&String> {
        self.attempts
            .iter()
            .filter_map(|a| a.outcome.as_ref().err())
            .collect()
    }

    fn late(&self) -> Vec<&Attempt> {
        self.attempts
            .iter()
            .filter(|a| a.started >= self.deadline)
            .collect()
    }

    /// Prints the run's figures: handshakes, rotations, reload lags.
    fn print(&self, published: &HashMap<String, Instant>, status: &CertificateStatus) {
        let (attempts, rotations, stopped) = (&self.attempts, &self.rotations, self.stopped);
        let stale_after_stop = attempts
            .iter()
            .filter(|a| {
                a.started >= stopped && a.outcome.as_ref().is_ok_and(|s| *s != self.final_serial)
            })
            .map(|a| a.started - stopped)
            .max();
        let lags: Vec<Duration> = rotations
            .iter()
            .filter_map(|r| {
                published
                    .get(&r.serial)
                    .map(|at| at.saturating_duration_since(r.written))
            })
            .collect();
        let final_lag = published
            .get(&self.final_serial)
            .map(|at| at.saturating_duration_since(stopped));
        let serials_seen: std::collections::HashSet<_> = attempts
            .iter()
            .filter_map(|a| a.outcome.as_ref().ok())
            .collect();
        println!(
            "rotation under load: {} handshakes by {CLIENTS} clients, {} rotations ({} each by rename, \
             in-place rewrite and symlink swap) in {:.1} s; {} failed handshakes; {} serials served; \
             {} rotations published, {} superseded before a tick; {} reloads, {} rejected reads \
             (half-written files); max reload lag {:?}; final certificate published {:?} after the \
             last write, last stale handshake started {:?} after it; {} handshakes after the deadline",
            attempts.len(),
            rotations.len(),
            rotations.len() / 3,
            (stopped - attempts.iter().map(|a| a.started).min().unwrap()).as_secs_f64(),
            self.failures().len(),
            serials_seen.len(),
            lags.len(),
            rotations.len() - lags.len(),
            status.reloads,
            status.failures,
            lags.iter().max().unwrap(),
            final_lag,
            stale_after_stop,
            self.late().len(),
        );
    }

    /// No handshake failed or saw a certificate never written; every one after
    /// the deadline saw the final certificate, which the status names.
    fn assert_sound(
        &self,
        written: &HashMap<String, Option<Instant>>,
        status: &CertificateStatus,
        min_rotations: usize,
    ) {
        assert!(self.rotations.len() >= min_rotations);
        let failures = self.failures();
        assert!(
            failures.is_empty(),
            "{} failed handshakes, e.g. {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
        let unknown: Vec<_> = self
            .attempts
            .iter()
            .filter_map(|a| a.outcome.as_ref().ok())
            .filter(|serial| !written.contains_key(*serial))
            .collect();
        assert!(
            unknown.is_empty(),
            "served certificates that were never written: {unknown:?}"
        );
        let late = self.late();
        assert!(!late.is_empty(), "no handshake after the deadline to check");
        for attempt in &late {
            assert_eq!(
                attempt.outcome.as_ref().unwrap(),
                &self.final_serial,
                "a handshake {:?} after rotation stopped did not see the final certificate",
                attempt.started - self.stopped
            );
        }
        let final_status = status.certificate.as_ref().unwrap();
        assert_eq!(final_status.serial, self.final_serial);
        assert_eq!(status.consecutive_failures, 0, "{status:#?}");
    }
}

/// Rotates the certificate every 20–50 ms until both minimums are met.
fn rotate(
    mut volume: K8sVolume,
    ca: &Ca,
    written: &Written,
    min_time: Duration,
    min_rotations: usize,
) -> Vec<Rotation> {
    let start = Instant::now();
    let mut rotations = Vec::new();
    let mut rng = Rng::seeded();
    // Through `..data`, rename and in-place writes land in the directory the
    // symlinks currently resolve to, so all three methods share the same paths.
    let data = volume.dir.join("..data");
    while start.elapsed() < min_time || rotations.len() < min_rotations {
        let n = rotations.len() + 1;
        let leaf = ca.leaf(&format!("rotation {n}"));
        let (cert, key) = (leaf.cert_pem(), leaf.key_pem());
        written.lock().unwrap().insert(leaf.serial.clone(), None);
        match METHODS[n % METHODS.len()] {
            Method::Rename => {
                support::write_atomic(&data.join("cert.pem"), &cert);
                support::write_atomic(&data.join("key.pem"), &key);
            }
            Method::InPlace => {
                support::write_in_place(&data.join("cert.pem"), &cert);
                support::write_in_place(&data.join("key.pem"), &key);
            }
            Method::SymlinkSwap => {
                volume.update(&[("cert.pem", &cert), ("key.pem", &key)]);
                remove_stale_data_dirs(&volume.dir);
            }
        }
        let now = Instant::now();
        written
            .lock()
            .unwrap()
            .insert(leaf.serial.clone(), Some(now));
        rotations.push(Rotation {
            serial: leaf.serial,
            written: now,
        });
        std::thread::sleep(Duration::from_millis(20 + rng.below(31)));
    }
    rotations
}

/// Deletes the timestamped directories that `..data` no longer points to, as the
/// kubelet does after a swap.
fn remove_stale_data_dirs(dir: &Path) {
    let current = std::fs::read_link(dir.join("..data")).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name();
        let is_stamp = name.to_string_lossy().starts_with("..2");
        if is_stamp && Path::new(&name) != current {
            std::fs::remove_dir_all(dir.join(&name)).unwrap();
        }
    }
}

/// A small xorshift generator: the jitter needs no statistical quality.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Self(u64::from(nanos) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// 10,000 reload cycles (after 1,000 of warm-up), alternating two certificates
/// through `reload_now`, with a handshake every tenth cycle.
///
/// It measures the RSS and the descriptor table of the whole process, so it runs
/// in a child process of its own (see [`support::isolated`]): in the shared test
/// process other tests allocate and open sockets at the same time.
#[test]
fn reload_cycles_hold_memory_and_fds() {
    support::isolated("stress::reload_cycles_hold_memory_and_fds", reload_cycles);
}

const WARM_UP: usize = 1_000;
const CYCLES: usize = 10_000;
const HANDSHAKE_EVERY: usize = 10;
const MAX_GROWTH: u64 = 1024 * 1024;

async fn reload_cycles() {
    let fds_at_start = support::open_fds();
    let cycling = Cycling::start().await;
    // The listener is open, no connection is: what the table holds between handshakes.
    let fds_serving = support::open_fds();

    let started = Instant::now();
    let mut handshakes = 0;
    let mut baseline = None;
    for i in 0..WARM_UP + CYCLES {
        if i == WARM_UP {
            settle_fds(fds_serving).await;
            baseline = Some((support::rss_bytes(), Instant::now()));
        }
        if cycling.cycle(i).await {
            handshakes += 1;
        }
    }
    settle_fds(fds_serving).await;
    let rss_after = support::rss_bytes();
    let (rss_before, measured_from) = baseline.unwrap();
    let status = cycling.tls.status();
    let growth = rss_after.saturating_sub(rss_before);
    println!(
        "reload cycles: {} reloads ({WARM_UP} warm-up) and {handshakes} handshakes in {:.1} s \
         ({:.1} s measured); RSS {} KiB -> {} KiB, growth {} bytes (limit {MAX_GROWTH}); \
         open fds {fds_serving} while serving, {fds_at_start} at start",
        WARM_UP + CYCLES,
        started.elapsed().as_secs_f64(),
        measured_from.elapsed().as_secs_f64(),
        rss_before / 1024,
        rss_after / 1024,
        i128::from(rss_after) - i128::from(rss_before),
    );
    assert_eq!(status.reloads, (WARM_UP + CYCLES) as u64);
    assert_eq!(status.failures, 0);
    assert!(
        growth < MAX_GROWTH,
        "RSS grew by {growth} bytes over {CYCLES} reload cycles"
    );

    drop(cycling);
    settle_fds(fds_at_start).await;
}

/// Two certificates alternated through `reload_now`, and a server and client
/// to check which is served.
struct Cycling {
    _tmp: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    /// PEM certificate, PEM key and serial of each.
    pairs: Vec<(Vec<u8>, Vec<u8>, String)>,
    tls: ReloadingAcceptor,
    server: support::Server,
    connector: SslConnector,
}

impl Cycling {
    async fn start() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let ca = Ca::new("cycle CA");
        let pairs: Vec<_> = ["A", "B"]
            .iter()
            .map(|cn| {
                let leaf = ca.leaf(cn);
                (leaf.cert_pem(), leaf.key_pem(), leaf.serial)
            })
            .collect();
        let (cert, key) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
        support::write_atomic(&cert, &pairs[0].0);
        support::write_atomic(&key, &pairs[0].1);
        // The poller stays out of the way: every reload is a `reload_now`.
        let tls = ReloadingAcceptor::builder()
            .identity(&cert, &key)
            .poll_interval(Duration::from_secs(3600))
            .build()
            .unwrap();
        let server = support::serve(tls.clone()).await;
        let connector = support::client(&ca.pem());
        Self {
            _tmp: tmp,
            cert,
            key,
            pairs,
            tls,
            server,
            connector,
        }
    }

    /// Cycle `i`: writes the other pair and reloads it; every
    /// [`HANDSHAKE_EVERY`]th cycle checks it is served. Returns whether it did.
    async fn cycle(&self, i: usize) -> bool {
        let (c, k, serial) = &self.pairs[(i + 1) % 2];
        support::write_atomic(&self.cert, c);
        support::write_atomic(&self.key, k);
        let outcome = self.tls.reload_now().unwrap();
        assert!(
            matches!(outcome, Reload::Published(_)),
            "cycle {i}: {outcome:?}"
        );
        if i % HANDSHAKE_EVERY != 0 {
            return false;
        }
        let seen = support::exchange(&self.connector, self.server.addr, None)
            .await
            .unwrap();
        assert_eq!(&seen.serial, serial, "cycle {i}");
        true
    }
}

/// Waits until the process has `expected` descriptors open again: connections
/// close on the server's tasks shortly after the client's side.
async fn settle_fds(expected: usize) {
    let start = Instant::now();
    loop {
        let open = support::open_fds();
        if open == expected {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{open} descriptors open, expected {expected}: {:?}",
            std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
