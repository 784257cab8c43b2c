//! 500 rotations at a 50 ms interval under continuous traffic: curl makes
//! one new, verified connection per request (no keep-alive, no session
//! reuse) and notes the serial each handshake got, h2load opens rounds of
//! concurrent h2 connections; not one request or handshake may fail, and
//! every serial renamed into place is served.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::run::Nginx;
use super::{block, rotate};
use crate::fixture::Files;

/// Rotations of the run.
const ROTATIONS: usize = 500;
/// How long one rotation may take to be served by a worker (50 ms interval).
const EACH: Duration = Duration::from_secs(10);
/// Requests of one curl run, each over a connection of its own.
const PER_CURL: usize = 10;
/// Connections of one h2load round, opened at once, one request each.
const PER_H2LOAD: usize = 8;

/// What the traffic saw.
#[derive(Default, Debug)]
struct Tally {
    curl: u64,
    h2load: u64,
    failures: u64,
    first_failure: Option<String>,
    /// The serials curl's handshakes got, as upper-case hex without
    /// leading zeros.
    serials: HashSet<String>,
}

impl Tally {
    fn fail(&mut self, n: u64, why: String) {
        self.failures += n;
        self.first_failure.get_or_insert(why);
    }
}

/// A serial as hex, upper case, without leading zeros.
fn normal(serial: &str) -> String {
    serial.trim().trim_start_matches('0').to_ascii_uppercase()
}

/// The traffic threads, stopped and joined when dropped.
struct Traffic {
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    threads: Vec<JoinHandle<()>>,
}

impl Traffic {
    fn start(addr: SocketAddr, ca: &Path) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let spawn = |run: fn(SocketAddr, &Path, &Mutex<Tally>)| {
            let (stop, tally, ca) = (stop.clone(), tally.clone(), ca.to_owned());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    run(addr, &ca, &tally);
                }
            })
        };
        let threads = vec![spawn(curl_run), spawn(h2load_round)];
        Self {
            stop,
            tally,
            threads,
        }
    }

    /// The counts so far, and the first failure if there was one.
    fn summary(&self) -> String {
        let t = self.tally.lock().unwrap();
        let failure = t
            .first_failure
            .as_ref()
            .map(|f| format!(", first failure: {f}"));
        format!(
            "curl {} requests, h2load {}, {} failed, {} serials{}",
            t.curl,
            t.h2load,
            t.failures,
            t.serials.len(),
            failure.unwrap_or_default()
        )
    }

    fn seen(&self, serial: &str) -> bool {
        self.tally.lock().unwrap().serials.contains(&normal(serial))
    }

    /// Stops the traffic after the runs in flight: what it saw.
    fn stop(mut self) -> Tally {
        self.join();
        std::mem::take(&mut *self.tally.lock().unwrap())
    }

    fn join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.join();
    }
}

/// One curl run: `PER_CURL` requests for `localhost`, verified against `ca`,
/// each on a new connection with a full handshake (`Connection: close`,
/// `--no-sessionid`); `%{certs}` gives each handshake's serial.
fn curl_run(addr: SocketAddr, ca: &Path, tally: &Mutex<Tally>) {
    let url = format!("https://localhost:{}/", addr.port());
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--http1.1", "--max-time", "10", "--no-sessionid"])
        .arg("--cacert")
        .arg(ca)
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", addr.port())])
        .args(["-H", "Connection: close"])
        .args(["-w", "STATUS %{http_code} %{num_connects}\n%{certs}"]);
    for _ in 0..PER_CURL {
        cmd.args(["-o", "/dev/null", &url]);
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut tally = tally.lock().unwrap();
    let mut done = 0;
    for answer in text.split("STATUS ").skip(1) {
        done += 1;
        let serial = answer
            .lines()
            .find_map(|l| l.strip_prefix("Serial Number:"))
            .map(normal);
        match (answer.get(..6), serial) {
            (Some("200 1\n"), Some(serial)) => {
                tally.serials.insert(serial);
            }
            _ => tally.fail(1, format!("curl: {answer}")),
        }
    }
    tally.curl += done;
    if done != PER_CURL as u64 || !out.status.success() {
        let missing = PER_CURL as u64 - done.min(PER_CURL as u64);
        tally.curl += missing;
        tally.fail(
            missing.max(1),
            format!(
                "curl ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
        );
    }
}

/// One h2load round: `PER_H2LOAD` h2 connections at once, one request each.
/// (h2load does not verify the chain; a handshake over a mismatched pair
/// still fails its signature check.)
fn h2load_round(addr: SocketAddr, _ca: &Path, tally: &Mutex<Tally>) {
    let n = PER_H2LOAD.to_string();
    let out = Command::new("h2load")
        .args(["-n", &n, "-c", &n, "-m", "1", "-T", "10"])
        .args(["--connect-to", &addr.to_string()])
        .arg(format!("https://localhost:{}/", addr.port()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // "requests: 8 total, 8 started, 8 done, 8 succeeded, 0 failed, ..."
    let succeeded = text
        .lines()
        .find_map(|l| l.strip_prefix("requests: "))
        .and_then(|l| l.split(", ").find_map(|f| f.strip_suffix(" succeeded")))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    let protocol = text.contains("Application protocol: h2");
    let mut tally = tally.lock().unwrap();
    tally.h2load += PER_H2LOAD as u64;
    if succeeded != PER_H2LOAD as u64 || !protocol || !out.status.success() {
        tally.fail(
            PER_H2LOAD as u64 - succeeded.min(PER_H2LOAD as u64),
            format!("h2load ({}): {text}", out.status),
        );
    }
}

/// Renames `ROTATIONS` new pairs over `cert` and `key`, each once traffic has
/// been served the last: the longest wait.
fn rotations(f: &Files, cert: &Path, key: &Path, traffic: &Traffic) -> Duration {
    let mut slowest = Duration::ZERO;
    for i in 0..ROTATIONS {
        let next = f.ca.leaf("localhost");
        rotate(cert, key, &next);
        let start = Instant::now();
        while !traffic.seen(&next.serial) {
            let tally = traffic.summary();
            assert!(!tally.contains("first failure"), "rotation {i}: {tally}");
            assert!(
                start.elapsed() < EACH,
                "rotation {i}: {} not served within {EACH:?}: {tally}",
                next.serial
            );
            thread::sleep(Duration::from_millis(2));
        }
        slowest = slowest.max(start.elapsed());
    }
    slowest
}

#[test]
#[ignore = "needs the nginx module: run by ci/nginx.sh"]
fn five_hundred_rotations_at_50ms_under_traffic_fail_no_request() {
    let f = Files::new();
    let servers = block("localhost", &f.cert, &f.key, "").replace(
        "openssl_reload_interval 20ms",
        "openssl_reload_interval 50ms",
    );
    let nginx = Nginx::start(f.dir.path(), &servers);
    let workers = nginx.workers();
    let traffic = Traffic::start(nginx.addr, &f.ca_pem);
    let start = Instant::now();
    while !traffic.seen(&f.leaf.serial) {
        assert!(start.elapsed() < EACH, "{}", traffic.summary());
        thread::sleep(Duration::from_millis(2));
    }

    let start = Instant::now();
    let slowest = rotations(&f, &f.cert, &f.key, &traffic);
    let took = start.elapsed();
    let tally = traffic.stop();
    let cert = f.cert.display().to_string();
    let failed_reloads = nginx
        .error_log()
        .lines()
        .filter(|l| l.contains("[error]") && l.contains("openssl_reload:") && l.contains(&cert))
        .count();
    println!(
        "nginx churn: {ROTATIONS} rotations in {:.1} s (slowest {} ms), {} requests \
         (curl {}, h2load {}), {} failures, {} serials seen by curl, {failed_reloads} \
         failed reloads logged (half-renamed pairs)",
        took.as_secs_f64(),
        slowest.as_millis(),
        tally.curl + tally.h2load,
        tally.curl,
        tally.h2load,
        tally.failures,
        tally.serials.len(),
    );
    assert_eq!(
        tally.failures, 0,
        "first failure: {:?}",
        tally.first_failure
    );
    assert_eq!(
        tally.serials.len(),
        ROTATIONS + 1,
        "every serial was served"
    );
    assert!(tally.curl > 2 * ROTATIONS as u64, "too little curl traffic");
    assert!(
        tally.h2load > 2 * ROTATIONS as u64,
        "too little h2load traffic"
    );
    assert_eq!(nginx.workers(), workers, "a worker was replaced");
}
