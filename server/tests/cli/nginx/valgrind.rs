//! The module under valgrind's memcheck: Debian's nginx as one process
//! (`master_process off; daemon off;`), serving, refusing a bad file,
//! serving a rotation, then stopped with SIGQUIT; no definite leak may name
//! the module or the library, and memcheck may report no other error.

use std::fs;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::run::{assert_serves, get, write_conf};
use super::{block, rotate};
use crate::fixture::Files;
use crate::support::write_atomic;

/// Valgrind is slow: how long nginx gets to start, to serve a rotation, to stop.
const SLOW: Duration = Duration::from_secs(120);

/// nginx under memcheck, killed when dropped if it is still running.
struct Memchecked(Child);

impl Drop for Memchecked {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `done` holds, sleeping 20 ms between looks, failing after `SLOW`.
fn within(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < SLOW, "{what} not within {SLOW:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// The loss records of memcheck's `log` ("... are definitely lost in loss
/// record ..." and the stack under it), each as one text.
fn definitely_lost(log: &str) -> Vec<String> {
    let mut records = Vec::new();
    let mut current: Option<String> = None;
    for line in log.lines() {
        // "==PID== text": a record ends at a line with no text.
        let text = line.split_once("== ").map_or("", |(_, t)| t);
        if text.contains("are definitely lost in loss record") {
            current = Some(String::new());
        }
        if let Some(record) = current.as_mut() {
            if text.trim().is_empty() {
                records.push(current.take().unwrap());
            } else {
                record.push_str(text);
                record.push('\n');
            }
        }
    }
    records
}

/// Whether a loss record's stack has a frame of the module or of the library
/// linked into it (`ngx_http_openssl_reload_*`, `openssl_reload_*`,
/// `openssl_reload::`, or a frame without a symbol in the module's file).
fn ours(record: &str) -> bool {
    record.contains("openssl_reload")
}

/// nginx's own, left for exit: allocated with ngx_alloc outside the cycle's
/// pool by the single process's start (ngx_set_environment's environment,
/// the event module's connections and events), never freed by nginx 1.22.
fn nginx_own(record: &str) -> bool {
    !ours(record) && record.contains("ngx_single_process_cycle")
}

#[test]
#[ignore = "needs the nginx module: run by ci/nginx.sh"]
fn under_valgrind_the_module_serves_a_rotation_and_stops_with_no_leak_of_its_own() {
    let f = Files::new();
    let prefix = f.dir.path();
    let addr = write_conf(prefix, "", &block("localhost", &f.cert, &f.key, ""));
    let log = f.path("memcheck.log");
    let mut nginx = Memchecked(
        Command::new("valgrind")
            .args(["--tool=memcheck", "--leak-check=full"])
            .args(["--errors-for-leak-kinds=definite", "--num-callers=40"])
            .arg(format!("--log-file={}", log.display()))
            .args(["nginx", "-p"])
            .arg(prefix)
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .args(["-g", "daemon off; master_process off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("valgrind (ci/nginx.sh installs it)"),
    );
    let started = Instant::now();
    within("nginx listening", || TcpStream::connect(addr).is_ok());
    assert_serves(addr, &f.ca_pem, "localhost", &f.leaf.serial);

    // A bad certificate: a failed reload, logged, the old one served.
    write_atomic(&f.cert, b"-----BEGIN CERTIFICATE-----\ngarbage\n");
    let error_log = |needle: &str| {
        fs::read_to_string(prefix.join("error.log"))
            .unwrap_or_default()
            .contains(needle)
    };
    within("the failed reload logged", || {
        error_log("the certificate in service stays")
    });
    assert_serves(addr, &f.ca_pem, "localhost", &f.leaf.serial);
    let next = f.ca.leaf("localhost");
    rotate(&f.cert, &f.key, &next);
    within("the rotation served", || {
        get(addr, &f.ca_pem, "localhost", &[]).serial.as_deref() == Some(&*next.serial)
    });

    let pid = nginx.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-QUIT", &pid])
        .status()
        .unwrap()
        .success());
    within("nginx exited", || nginx.0.try_wait().unwrap().is_some());
    let status = nginx.0.wait().unwrap();
    let report = fs::read_to_string(&log).unwrap();
    check(&report, status.success(), prefix);
    println!(
        "nginx under valgrind: served, a failed reload, a rotation, stopped in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Fails on a definite leak of ours or any memcheck error but nginx's own
/// leaks (`nginx_own`); prints the leak summary.
fn check(report: &str, exited_cleanly: bool, prefix: &Path) {
    let error_log = fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
    assert!(
        exited_cleanly,
        "nginx under valgrind failed:\n{report}\n{error_log}"
    );
    assert!(report.contains("LEAK SUMMARY"), "no leak check:\n{report}");
    let lost = definitely_lost(report);
    let leaks: Vec<_> = lost.iter().filter(|r| !nginx_own(r)).collect();
    assert!(
        leaks.is_empty(),
        "definitely lost, not nginx's own:\n{}",
        leaks.iter().map(|r| r.as_str()).collect::<String>()
    );
    // Every error memcheck counted is one of nginx's own leaks.
    let errors = report
        .lines()
        .find_map(|l| l.split_once("ERROR SUMMARY: ").map(|(_, r)| r))
        .and_then(|r| r.split(' ').next()?.parse::<usize>().ok())
        .expect("an ERROR SUMMARY");
    assert_eq!(
        errors,
        lost.len(),
        "memcheck errors beyond nginx's leaks:\n{report}"
    );
    for line in report.lines().filter(|l| l.contains("lost:")) {
        println!(
            "memcheck: {}",
            line.split_once("== ").map_or(line, |(_, t)| t.trim())
        );
    }
    println!("nginx's own definite leaks, allowed: {}", lost.len());
}
