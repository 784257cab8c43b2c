//! The `openssl-reload` binary, spawned for real and driven with curl and
//! `openssl s_client` from PATH.
//!
//! Every server listens on `127.0.0.1:0`; the test reads the bound address from the
//! server's "listening" log line, so there is no port race. Waits are deadline
//! loops; a server is killed when its guard drops, also when a test fails.
//! Without curl or openssl the tests are skipped with a note, except under CI
//! (`CI` set), where they fail.

#![cfg(feature = "cli")]

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::pkcs12::Pkcs12;
use openssl::symm::Cipher;
use openssl::x509::X509;

use crate::util::{Ca, Leaf, LeafSpec, DEADLINE};

const BIN: &str = env!("CARGO_BIN_EXE_openssl-reload");

/// Whether curl and openssl are on PATH; outside CI a missing tool skips the test.
fn clients_available() -> bool {
    let missing: Vec<_> = [("curl", "--version"), ("openssl", "version")]
        .into_iter()
        .filter(|(tool, arg)| {
            Command::new(tool)
                .arg(arg)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_or(true, |s| !s.success())
        })
        .map(|(tool, _)| tool)
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{missing:?} not found on PATH; CI must provide them (ci/test.sh installs curl and openssl)"
    );
    eprintln!("skipping: {missing:?} not found on PATH");
    false
}

/// The binary, with none of its configuration variables inherited from the
/// environment of the test run.
fn command() -> Command {
    let mut cmd = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("OPENSSL_RELOAD_") || name == "RUST_LOG" || name == "XDG_DATA_HOME" {
            cmd.env_remove(&*name);
        }
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

/// Polls `check` until it returns `Some`, failing the test after `DEADLINE`.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

type Lines = Arc<Mutex<Vec<String>>>;

/// Collects the lines of a child's output, echoing them for a failing test's report.
fn collect(stream: impl Read + Send + 'static, prefix: &'static str) -> Lines {
    let lines = Lines::default();
    let sink = Arc::clone(&lines);
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            eprintln!("[{prefix}] {line}");
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// A running `openssl-reload serve`, killed on drop.
struct Server {
    child: Child,
    stdout: Lines,
    stderr: Lines,
    addr: SocketAddr,
}

impl Server {
    /// Starts `serve` with `args` (which should include `--listen 127.0.0.1:0`)
    /// and waits until it listens.
    fn start(args: &[&str]) -> Self {
        let mut cmd = command();
        cmd.arg("serve").args(args);
        Self::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn openssl-reload");
        let stdout = collect(child.stdout.take().unwrap(), "server out");
        let stderr = collect(child.stderr.take().unwrap(), "server err");
        let mut server = Self {
            child,
            stdout,
            stderr,
            addr: ([0, 0, 0, 0], 0).into(),
        };
        server.addr = eventually("the server's listening line", || {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "the server exited ({status}) before listening: {:?}",
                    server.stderr.lock().unwrap()
                );
            }
            server
                .stderr
                .lock()
                .unwrap()
                .iter()
                .find_map(|line| listening_addr(line))
        });
        server
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `https://localhost:<port><path>`.
    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port())
    }

    /// curl arguments that reach this server as `localhost`, trusting `ca`.
    fn curl_args(&self, ca: &Path) -> Vec<String> {
        vec![
            "--cacert".to_owned(),
            ca.display().to_string(),
            "--resolve".to_owned(),
            format!("localhost:{}:127.0.0.1", self.port()),
        ]
    }

    /// The body of `GET path`, or panics.
    fn get(&self, ca: &Path, path: &str) -> String {
        let out = curl(&self.curl_args(ca), &[&self.url(path)]);
        assert!(
            out.status.success(),
            "curl {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The serial of the certificate `/` says this new connection was served.
    fn served_serial(&self, ca: &Path) -> String {
        serial_in(&self.get(ca, "/"))
    }

    fn status(&self, ca: &Path) -> serde_json::Value {
        serde_json::from_str(&self.get(ca, "/status")).unwrap()
    }

    fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal}");
    }

    fn log_has(&self, needle: &str) -> bool {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    fn wait_log(&self, needle: &str) {
        eventually(&format!("log line containing {needle:?}"), || {
            self.log_has(needle).then_some(())
        });
    }

    /// Standard output, once the development banner has been read whole (its
    /// last line is the curl command): it is printed before the "listening"
    /// line, but on another pipe, read by another thread.
    fn dev_banner(&self) -> String {
        eventually("the development banner's curl line", || {
            let lines = self.stdout.lock().unwrap();
            let done = lines.iter().any(|l| l.trim_start().starts_with("curl "));
            done.then(|| lines.join("\n"))
        })
    }

    fn wait_exit(&mut self) -> ExitStatus {
        eventually("the server to exit", || self.child.try_wait().unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The address of a "listening" log line, in text (`addr=...`) or JSON form.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    if !line.contains("listening") {
        return None;
    }
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(line) {
        return json["addr"].as_str()?.parse().ok();
    }
    line.split_whitespace()
        .find_map(|word| word.strip_prefix("addr="))?
        .trim_matches('"')
        .parse()
        .ok()
}

/// The serial named by the body of `GET /`.
fn serial_in(body: &str) -> String {
    body.lines()
        .find_map(|l| l.trim().strip_prefix("serial:"))
        .unwrap_or_else(|| panic!("no serial in {body:?}"))
        .trim()
        .to_owned()
}

/// Runs curl with `-sS`, a time limit, `args` and then `urls`.
fn curl(args: &[String], urls: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .args(urls)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Connects with `openssl s_client`, verifying the chain to `ca` and the name
/// `localhost`; returns the serial of the certificate the server sent and the
/// whole output.
fn s_client(addr: SocketAddr, ca: &Path, extra: &[&str]) -> (String, String) {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
        ])
        .args([
            "-verify_hostname",
            "localhost",
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(ca)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("Verify return code: 0 (ok)"),
        "openssl s_client failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("no certificate in s_client output");
    let end = text.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    let cert = X509::from_pem(&text.as_bytes()[begin..end]).unwrap();
    (crate::util::serial_hex(&cert), text)
}

/// Makes a key file private, as the server expects (it warns otherwise).
fn private(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

/// An ASN.1 time in seconds since the Unix epoch.
fn unix_time(time: &Asn1TimeRef) -> i64 {
    let diff = Asn1Time::from_unix(0).unwrap().diff(time).unwrap();
    i64::from(diff.days) * 86_400 + i64::from(diff.secs)
}

/// A CA, a leaf written as `cert.pem`/`key.pem`, and `ca.pem`, in a temp dir.
struct Files {
    dir: tempfile::TempDir,
    ca: Ca,
    ca_pem: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    leaf: Leaf,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("cli test CA");
        let ca_pem = dir.path().join("ca.pem");
        fs::write(&ca_pem, ca.pem()).unwrap();
        let leaf = ca.leaf("localhost");
        let (cert, key) = leaf.write(dir.path());
        private(&key);
        Self {
            dir,
            ca,
            ca_pem,
            cert,
            key,
            leaf,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn serve_args(&self) -> Vec<String> {
        vec![
            "--cert".to_owned(),
            self.cert.display().to_string(),
            "--key".to_owned(),
            self.key.display().to_string(),
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
        ]
    }

    fn start(&self, extra: &[&str]) -> Server {
        let mut args = self.serve_args();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Server::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

// ---------------------------------------------------------------------------
// Start-up, the dev certificate, configuration.

#[test]
fn dev_certificate_by_default_then_reused() {
    if !clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let start = || {
        let mut cmd = command();
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env("XDG_DATA_HOME", &data)
            .env("HOME", tmp.path().join("home"));
        Server::spawn(cmd)
    };

    let mut server = start();
    let dev = data.join("openssl-reload/dev");
    let ca = dev.join("ca.pem");
    let out = server.dev_banner();
    assert!(out.contains("created now"), "{out}");
    for file in ["ca.pem", "ca-key.pem", "cert.pem", "key.pem"] {
        assert!(
            out.contains(&dev.join(file).display().to_string()),
            "{file} not printed: {out}"
        );
    }
    for key in ["key.pem", "ca-key.pem"] {
        let mode = fs::metadata(dev.join(key)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }

    // The printed line, run as a user would paste it.
    let curl_line = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("curl "))
        .unwrap_or_else(|| panic!("no curl line in {out}"))
        .to_owned();
    assert_eq!(
        curl_line,
        format!(
            "curl --cacert {} https://localhost:{}/",
            ca.display(),
            server.port()
        )
    );
    let run = Command::new("sh")
        .arg("-c")
        .arg(format!("{curl_line} -sS --max-time 20"))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(body.contains("CN=localhost"), "{body}");
    let first_serial = serial_in(&body);
    let (serial, _) = s_client(server.addr, &ca, &[]);
    assert_eq!(serial, first_serial);

    server.signal("TERM");
    assert!(server.wait_exit().success());
    let ca_bytes = fs::read(&ca).unwrap();

    // A second run reuses the CA and the certificate.
    let server = start();
    assert!(server.dev_banner().contains("reused from an earlier run"));
    assert_eq!(fs::read(&ca).unwrap(), ca_bytes);
    assert_eq!(server.served_serial(&ca), first_serial);
}

#[test]
fn dev_dir_flag_and_expired_dev_certificate_is_reissued() {
    if !clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dev = tmp.path().join("dev");
    let dev_arg = dev.display().to_string();
    let args = ["--dev-dir", &dev_arg, "--listen", "127.0.0.1:0"];
    let mut server = Server::start(&args);
    let ca = dev.join("ca.pem");
    let first = server.served_serial(&ca);
    server.signal("TERM");
    assert!(server.wait_exit().success());

    // Replace the leaf with an expired one from another CA: it is issued again,
    // and the dev CA stays.
    let other = Ca::new("other");
    let expired = other.leaf_with(LeafSpec::new("localhost").validity(-86_400 * 2, -86_400));
    fs::write(dev.join("cert.pem"), expired.cert_pem()).unwrap();
    fs::write(dev.join("key.pem"), expired.key_pem()).unwrap();
    let server = Server::start(&args);
    assert!(server
        .dev_banner()
        .contains("certificate issued again, CA reused"));
    let second = server.served_serial(&ca);
    assert_ne!(first, second);
}

#[test]
fn environment_variables_configure_serve_and_json_logs() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let mut cmd = command();
    cmd.arg("serve")
        .env("OPENSSL_RELOAD_CERT", &f.cert)
        .env("OPENSSL_RELOAD_KEY", &f.key)
        .env("OPENSSL_RELOAD_LISTEN", "127.0.0.1:0,127.0.0.1:0")
        .env("OPENSSL_RELOAD_POLL_INTERVAL", "250ms")
        .env("OPENSSL_RELOAD_LOG_FORMAT", "json")
        .env("OPENSSL_RELOAD_LOG", "debug");
    let server = Server::spawn(cmd);
    let status = server.status(&f.ca_pem);
    assert_eq!(status["poll_interval_seconds"], 0.25);
    assert_eq!(status["poll_interval"], "250ms");
    let lines = server.stderr.lock().unwrap().clone();
    let listening: HashSet<_> = lines.iter().filter_map(|l| listening_addr(l)).collect();
    assert_eq!(listening.len(), 2, "two listeners: {lines:?}");
    for line in &lines {
        let json: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            json["level"].is_string() && json["message"].is_string(),
            "{line}"
        );
    }
    // --log debug shows each request.
    server.wait_log("\"path\":\"/status\"");
}

#[test]
fn start_up_errors_are_one_line_and_exit_1() {
    let f = Files::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let missing = f.path("missing.pem").display().to_string();
    let cert = f.cert.display().to_string();
    let key = f.key.display().to_string();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--cert", &cert, "--key", &key, "--listen", &addr],
            "Address already in use",
        ),
        (
            &["--cert", &missing, "--key", &key, "--listen", "127.0.0.1:0"],
            "missing.pem",
        ),
        (
            &["--cert", &key, "--key", &key, "--listen", "127.0.0.1:0"],
            "no certificate found in",
        ),
    ];
    for (args, reason) in cases {
        let out = command().arg("serve").args(*args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{args:?}: one line expected: {stderr}"
        );
        assert!(stderr.starts_with("openssl-reload: error: "), "{stderr}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
    // Usage errors are clap's: exit 2.
    for args in [
        &["--poll-interval", "5"][..],
        &["--listen", "localhost"],
        &["--client-auth", "required"],
        &["--cert", &cert],
        &["--no-such-flag"],
    ] {
        let out = command().arg("serve").args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let out = command()
        .args(["--log", "debug[", "serve"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "invalid log filter");
}

#[test]
fn help_reads_like_a_manual() {
    for (sub, needles) in [
        (
            "serve",
            &[
                "EXAMPLES:",
                "SIGHUP",
                "--poll-interval",
                "OPENSSL_RELOAD_",
                "/metrics",
                "--dev-dir",
                "--ticket-keys",
                "--ticket-key-rotation",
                "--require-chain-to-ca",
                "last_poll",
            ][..],
        ),
        (
            "check",
            &[
                "EXAMPLES:",
                "EXIT STATUS:",
                "--pkcs12",
                "--key-passphrase-file",
            ],
        ),
    ] {
        let out = command().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        for needle in needles {
            assert!(text.contains(needle), "`{sub} --help` lacks {needle:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// Reloading.

#[test]
fn rotated_files_are_served_within_the_poll_interval() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let server = f.start(&["--poll-interval", "20ms"]);
    assert_eq!(server.served_serial(&f.ca_pem), f.leaf.serial);

    let next = f.ca.leaf("localhost");
    next.write(f.dir.path());
    let started = Instant::now();
    eventually("the new serial over curl", || {
        (server.served_serial(&f.ca_pem) == next.serial).then_some(())
    });
    eprintln!("new certificate served after {:?}", started.elapsed());
    let (serial, _) = s_client(server.addr, &f.ca_pem, &[]);
    assert_eq!(serial, next.serial);
    let status = server.status(&f.ca_pem);
    assert_eq!(status["certificate"]["serial"], next.serial.as_str());
    assert_eq!(status["generation"], 2);
    assert_eq!(status["reloads"], 1);
}

#[test]
fn sighup_reloads_at_once_with_a_long_poll_interval() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let server = f.start(&["--poll-interval", "1m"]);
    let (serial, _) = s_client(server.addr, &f.ca_pem, &[]);
    assert_eq!(serial, f.leaf.serial);

    let next = f.ca.leaf("localhost");
    next.write(f.dir.path());
    // Nothing but the signal can reload within the next minute.
    assert_eq!(server.served_serial(&f.ca_pem), f.leaf.serial);
    let signalled = Instant::now();
    server.signal("HUP");
    eventually("the new serial after SIGHUP", || {
        (s_client(server.addr, &f.ca_pem, &[]).0 == next.serial).then_some(())
    });
    assert!(
        signalled.elapsed() < Duration::from_secs(30),
        "too slow for SIGHUP"
    );
    server.wait_log("SIGHUP: new certificate in service");

    // A second SIGHUP with nothing new says so.
    server.signal("HUP");
    server.wait_log("nothing to do");

    // A bad file and SIGHUP: logged, old certificate kept.
    crate::util::write_atomic(&f.cert, b"not a certificate");
    server.signal("HUP");
    server.wait_log("SIGHUP: reload failed; keeping previous certificate");
    assert_eq!(server.served_serial(&f.ca_pem), next.serial);
}

#[test]
fn bad_replacement_keeps_the_old_certificate_and_status_shows_the_error() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let server = f.start(&["--poll-interval", "20ms"]);
    assert_eq!(server.served_serial(&f.ca_pem), f.leaf.serial);

    crate::util::write_atomic(&f.cert, b"-----BEGIN CERTIFICATE-----\ngarbage\n");
    let status = eventually("/status to show the error", || {
        let status = server.status(&f.ca_pem);
        (!status["last_error"].is_null()).then_some(status)
    });
    let message = status["last_error"]["message"].as_str().unwrap();
    assert!(message.contains("cert.pem"), "{message}");
    assert_eq!(status["last_error"]["path"], f.cert.display().to_string());
    assert!(status["last_error"]["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(status["certificate"]["serial"], f.leaf.serial.as_str());
    assert_eq!(status["generation"], 1);
    assert!(status["failures"].as_u64().unwrap() >= 1);
    assert_eq!(server.served_serial(&f.ca_pem), f.leaf.serial);
    assert_eq!(s_client(server.addr, &f.ca_pem, &[]).0, f.leaf.serial);

    // A certificate with someone else's key: refused too, and said why.
    let next = f.ca.leaf("localhost");
    crate::util::write_atomic(&f.cert, &next.cert_pem());
    eventually("/status to show the mismatch", || {
        let status = server.status(&f.ca_pem);
        let message = status["last_error"]["message"].as_str()?.to_owned();
        message.contains("does not match").then_some(())
    });
    assert_eq!(server.served_serial(&f.ca_pem), f.leaf.serial);

    // Its key arrives: served, and the failure streak ends.
    crate::util::write_atomic(&f.key, &next.key_pem());
    eventually("the repaired pair to be served", || {
        (server.served_serial(&f.ca_pem) == next.serial).then_some(())
    });
    let status = server.status(&f.ca_pem);
    assert_eq!(status["consecutive_failures"], 0);
    assert_eq!(status["generation"], 2);
}

// ---------------------------------------------------------------------------
// HTTP, metrics, handshakes.

#[test]
fn http2_is_negotiated_and_http1_still_works() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let server = f.start(&[]);
    let url = server.url("/");
    for (flag, version, text) in [("--http2", "2", "HTTP/2"), ("--http1.1", "1.1", "HTTP/1.1")] {
        let mut args = server.curl_args(&f.ca_pem);
        args.extend([
            flag.to_owned(),
            "-w".to_owned(),
            "\n%{http_version}".to_owned(),
        ]);
        let out = curl(&args, &[&url]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let body = String::from_utf8(out.stdout).unwrap();
        assert_eq!(body.lines().last(), Some(version), "{body}");
        assert!(body.contains(&format!("and {text}.")), "{body}");
    }
    // HEAD over both: HTTP/2 must not carry a body.
    for flag in ["--http2", "--http1.1"] {
        let mut args = server.curl_args(&f.ca_pem);
        args.extend([flag.to_owned(), "--head".to_owned()]);
        let out = curl(&args, &[&url]);
        assert!(
            out.status.success(),
            "HEAD {flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(" 200"),
            "HEAD {flag}"
        );
    }
    let (_, text) = s_client(server.addr, &f.ca_pem, &["-alpn", "h2,http/1.1"]);
    assert!(text.contains("ALPN protocol: h2"), "{text}");
    let (_, text) = s_client(server.addr, &f.ca_pem, &["-alpn", "http/1.1"]);
    assert!(text.contains("ALPN protocol: http/1.1"), "{text}");
}

#[test]
fn metrics_parse_as_prometheus_text_and_count_failed_handshakes() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let server = f.start(&[
        "--poll-interval",
        "20ms",
        "--handshake-timeout",
        "300ms",
        "--log",
        "debug",
    ]);

    // A client speaking plain HTTP to the TLS port.
    let mut plain = TcpStream::connect(server.addr).unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // An idle client that never starts a handshake: it does not stall anyone else.
    let mut idle = TcpStream::connect(server.addr).unwrap();
    assert_eq!(server.served_serial(&f.ca_pem), f.leaf.serial);
    idle.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buf = [0; 64];
    let started = Instant::now();
    assert!(
        matches!(idle.read(&mut buf), Ok(0) | Err(_)),
        "the idle client is disconnected"
    );
    assert!(
        started.elapsed() < DEADLINE,
        "the handshake timeout did not fire"
    );
    server.wait_log("TLS handshake failed");
    server.wait_log("TLS handshake timed out");
    assert!(server.log_has(&format!("peer={}", plain.local_addr().unwrap())));

    let text = server.get(&f.ca_pem, "/metrics");
    let samples = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let value = |key: &str| {
        *samples
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in\n{text}"))
    };
    assert_eq!(value("openssl_reload_generation"), 1.0);
    assert_eq!(
        value(r#"openssl_reload_reloads_total{result="success"}"#),
        0.0
    );
    assert_eq!(
        value(r#"openssl_reload_reloads_total{result="failure"}"#),
        0.0
    );
    let not_after = unix_time(f.leaf.cert.not_after());
    assert_eq!(
        value("openssl_reload_certificate_not_after_seconds"),
        not_after as f64
    );
    assert_eq!(value("openssl_reload_poll_interval_seconds"), 0.02);
    assert!(value("openssl_reload_handshakes_total") >= 1.0);
    assert!(value(r#"openssl_reload_handshake_failures_total{reason="error"}"#) >= 1.0);
    assert!(value(r#"openssl_reload_handshake_failures_total{reason="timeout"}"#) >= 1.0);

    // After a failed and a successful reload the counters move.
    crate::util::write_atomic(&f.cert, b"junk");
    eventually("a failed reload in /metrics", || {
        let samples = parse_prometheus(&server.get(&f.ca_pem, "/metrics")).unwrap();
        (samples[r#"openssl_reload_reloads_total{result="failure"}"#] >= 1.0).then_some(())
    });
    let next = f.ca.leaf("localhost");
    next.write(f.dir.path());
    let samples = eventually("a successful reload in /metrics", || {
        let samples = parse_prometheus(&server.get(&f.ca_pem, "/metrics")).unwrap();
        (samples[r#"openssl_reload_reloads_total{result="success"}"#] == 1.0).then_some(samples)
    });
    assert_eq!(samples["openssl_reload_generation"], 2.0);
    assert_eq!(
        samples["openssl_reload_certificate_not_after_seconds"],
        unix_time(next.cert.not_after()) as f64
    );
}

#[test]
fn mutual_tls_requires_a_client_certificate() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let client = f.ca.leaf("client");
    let client_cert = f.path("client.pem");
    let client_key = f.path("client-key.pem");
    fs::write(&client_cert, client.cert_pem()).unwrap();
    fs::write(&client_key, client.key_pem()).unwrap();
    let ca = f.ca_pem.display().to_string();
    let server = f.start(&["--ca", &ca, "--client-auth", "required"]);

    let out = curl(&server.curl_args(&f.ca_pem), &[&server.url("/")]);
    assert!(!out.status.success(), "served without a client certificate");

    let mut args = server.curl_args(&f.ca_pem);
    args.extend([
        "--cert".to_owned(),
        client_cert.display().to_string(),
        "--key".to_owned(),
        client_key.display().to_string(),
    ]);
    let out = curl(&args, &[&server.url("/"), &server.url("/status")]);
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        body.contains("Your client certificate: CN=client"),
        "{body}"
    );
    assert!(body.contains("\"ca_certificates\": 1"), "{body}");
}

// ---------------------------------------------------------------------------
// Session tickets, the server certificate and the client CA, polling.

/// Writes `count` fresh ticket keys (80 random bytes each, base64, one per line)
/// to `path` by rename, private like a key.
fn write_ticket_keys(path: &Path, count: usize) {
    let mut text = String::new();
    for _ in 0..count {
        let mut key = [0; 80];
        openssl::rand::rand_bytes(&mut key).unwrap();
        text.push_str(&openssl::base64::encode_block(&key));
        text.push('\n');
    }
    replace_private(path, text.as_bytes());
}

/// Replaces `path` by rename with a file of mode 0600 holding `bytes`.
fn replace_private(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("new");
    fs::write(&tmp, bytes).unwrap();
    private(&tmp);
    fs::rename(&tmp, path).unwrap();
}

/// Kills a child that is still running when dropped (a failed test included).
struct Reaped(Option<Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `cmd` with `input` on its standard input and returns its output, failing
/// the test (and killing it) if it has not exited within `DEADLINE`.
fn output_within_deadline(cmd: &mut Command, input: &[u8]) -> Output {
    let child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reaped = Reaped(Some(child));
    let child = reaped.0.as_mut().unwrap();
    // Closed when dropped: the end of the input.
    let _ = child.stdin.take().unwrap().write_all(input);
    let what = format!("{:?} to exit", cmd.get_program());
    eventually(&what, || child.try_wait().unwrap());
    reaped.0.take().unwrap().wait_with_output().unwrap()
}

/// One HTTP/1.0 request over `openssl s_client` with `version` (`-tls1_2` or
/// `-tls1_3`) and `session` flags (`-sess_out FILE`, `-sess_in FILE`); asserts
/// that the handshake and the request succeeded and returns whether the session
/// was resumed. `-ign_eof` keeps s_client reading until the server closes, so a
/// TLS 1.3 ticket, sent after the handshake, is saved before it exits.
fn s_client_resumed(addr: SocketAddr, ca: &Path, version: &str, session: &[&Path]) -> bool {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &addr.to_string()])
        .args(["-servername", "localhost", "-ign_eof", version, "-CAfile"])
        .arg(ca);
    if let [flag, file] = session {
        cmd.arg(flag).arg(file);
    }
    let out = output_within_deadline(&mut cmd, b"GET / HTTP/1.0\r\n\r\n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(" 200 OK") && text.contains("Hello from"),
        "s_client {version} {session:?} to {addr}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let protocol = match version {
        "-tls1_2" => "TLSv1.2",
        _ => "TLSv1.3",
    };
    if text.contains(&format!("Reused, {protocol}")) {
        true
    } else {
        assert!(text.contains(&format!("New, {protocol}")), "{text}");
        false
    }
}

/// The `ticket_keys` object of a server's `/status`.
fn ticket_status(server: &Server, ca: &Path) -> serde_json::Value {
    server.status(ca)["ticket_keys"].clone()
}

/// Whether a session saved in `session` resumes on `server` over `version`.
fn offer(server: &Server, ca: &Path, version: &str, session: &Path) -> bool {
    s_client_resumed(server.addr, ca, version, &[Path::new("-sess_in"), session])
}

/// Makes a new session on `server` over `version` and saves it in `session`.
fn new_session(server: &Server, ca: &Path, version: &str, session: &Path) {
    let resumed = s_client_resumed(server.addr, ca, version, &[Path::new("-sess_out"), session]);
    assert!(!resumed, "{version}: resumed without a session");
}

/// Waits until `server`'s /status shows a failure to load the ticket-key file
/// `keys`, named, its content (`secret`) nowhere; returns the `ticket_keys` object.
fn ticket_key_error_shown(
    server: &Server,
    ca: &Path,
    keys: &str,
    secret: &str,
) -> serde_json::Value {
    let tickets = eventually("/status to show the ticket-key error", || {
        let tickets = ticket_status(server, ca);
        (!tickets["last_error"].is_null()).then_some(tickets)
    });
    let message = tickets["last_error"]["message"].as_str().unwrap();
    assert!(message.contains(keys), "{message}");
    assert!(!message.contains(secret), "{message}");
    assert_eq!(tickets["last_error"]["path"], keys);
    assert!(tickets["failures"].as_u64().unwrap() >= 1, "{tickets}");
    assert!(!server.log_has(secret));
    tickets
}

#[test]
fn two_servers_share_ticket_keys() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let keys = f.path("ticket.keys");
    write_ticket_keys(&keys, 2);
    let keys_arg = keys.display().to_string();
    let args = ["--poll-interval", "20ms", "--ticket-keys", &keys_arg];
    let (a, b) = (f.start(&args), f.start(&args));
    let ca = &f.ca_pem;
    for server in [&a, &b] {
        let tickets = ticket_status(server, ca);
        assert_eq!(tickets["file"], keys_arg.as_str(), "{tickets}");
        assert_eq!(tickets["keys"], 2, "{tickets}");
        assert_eq!(tickets["rotations"], 0, "{tickets}");
        assert!(tickets["rotation_period"].is_null(), "{tickets}");
    }

    // A session from A resumes on B, over TLS 1.2 and TLS 1.3.
    let versions = ["-tls1_2", "-tls1_3"];
    let session = |name: &str, version: &str| f.path(&format!("{name}{version}.session"));
    for version in versions {
        new_session(&a, ca, version, &session("old", version));
        let resumed = offer(&b, ca, version, &session("old", version));
        assert!(resumed, "{version}: A's session did not resume on B");
    }

    // A new key alone: the old sessions no longer resume, but connect in full.
    write_ticket_keys(&keys, 1);
    for server in [&a, &b] {
        eventually("the new ticket key in service", || {
            let tickets = ticket_status(server, ca);
            (tickets["rotations"].as_u64()? >= 1).then_some(())
        });
        assert_eq!(ticket_status(server, ca)["keys"], 1);
    }
    for version in versions {
        let resumed = offer(&b, ca, version, &session("old", version));
        assert!(!resumed, "{version}: a session under a dropped key resumed");
    }

    // Garbage: reported, naming the file and not the content; the keys stay.
    replace_private(&keys, b"no base64 here: SECRET-LOOKING-CONTENT");
    for server in [&a, &b] {
        let tickets = ticket_key_error_shown(server, ca, &keys_arg, "SECRET-LOOKING");
        assert_eq!(tickets["keys"], 1, "{tickets}");
    }
    for version in versions {
        new_session(&a, ca, version, &session("new", version));
        let resumed = offer(&b, ca, version, &session("new", version));
        assert!(resumed, "{version}: the keys in service did not stay");
    }
}

#[test]
fn sighup_rereads_the_ticket_key_file() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let keys = f.path("ticket.keys");
    write_ticket_keys(&keys, 1);
    let keys_arg = keys.display().to_string();
    let server = f.start(&["--poll-interval", "1m", "--ticket-keys", &keys_arg]);
    write_ticket_keys(&keys, 3);
    // No poll can come within the next minute: only the signal reloads.
    server.signal("HUP");
    server.wait_log("SIGHUP: new session ticket keys in service");
    let tickets = ticket_status(&server, &f.ca_pem);
    assert_eq!(tickets["keys"], 3, "{tickets}");
    assert_eq!(tickets["rotations"], 1, "{tickets}");

    replace_private(&keys, b"junk\n");
    server.signal("HUP");
    server.wait_log("SIGHUP: ticket-key file not usable; keeping the ticket keys in service");
    assert_eq!(ticket_status(&server, &f.ca_pem)["keys"], 3);
}

#[test]
fn ticket_key_rotation_flags() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let server = f.start(&[
        "--poll-interval",
        "20ms",
        "--ticket-key-rotation",
        "100ms",
        "--ticket-keys-kept",
        "2",
    ]);
    let tickets = eventually("two rotations of the ticket keys", || {
        let tickets = ticket_status(&server, &f.ca_pem);
        (tickets["rotations"].as_u64()? >= 2).then_some(tickets)
    });
    assert!(tickets["file"].is_null(), "{tickets}");
    assert_eq!(tickets["rotation_period"], "100ms", "{tickets}");
    assert_eq!(tickets["rotation_period_seconds"], 0.1, "{tickets}");
    assert_eq!(tickets["keys"], 2, "{tickets}");
    let samples = parse_prometheus(&server.get(&f.ca_pem, "/metrics")).unwrap();
    assert_eq!(samples["openssl_reload_ticket_keys"], 2.0);

    // --ticket-keys replaces rotation: both at once is a usage error.
    let out = command()
        .args(["serve", "--ticket-keys", "k", "--ticket-keys-kept", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn require_chain_to_ca_flag() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let other_ca = f.path("other-ca.pem");
    fs::write(&other_ca, Ca::new("other clients' CA").pem()).unwrap();
    let other_ca = other_ca.display().to_string();
    let mtls = ["--ca", other_ca.as_str(), "--client-auth", "optional"];

    // By default the client CA says nothing about the server's own certificate.
    let server = f.start(&mtls);
    assert_eq!(server.served_serial(&f.ca_pem), f.leaf.serial);
    drop(server);

    let mut cmd = command();
    cmd.arg("serve")
        .args(f.serve_args())
        .args(mtls)
        .arg("--require-chain-to-ca");
    let out = output_within_deadline(&mut cmd, b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr}");
    assert!(stderr.starts_with("openssl-reload: error: "), "{stderr}");
    assert!(stderr.contains(&f.cert.display().to_string()), "{stderr}");
    assert!(stderr.contains("does not chain"), "{stderr}");

    // With the CA that did sign it, the flag lets it start.
    let ca = f.ca_pem.display().to_string();
    let server = f.start(&[
        "--ca",
        &ca,
        "--client-auth",
        "optional",
        "--require-chain-to-ca",
    ]);
    assert_eq!(server.served_serial(&f.ca_pem), f.leaf.serial);
}

#[test]
fn status_last_poll_moves_and_metrics_have_the_new_series() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let server = f.start(&["--poll-interval", "20ms"]);
    let first = eventually("a first poll in /status", || {
        server.status(&f.ca_pem)["last_poll"]
            .as_str()
            .map(str::to_owned)
    });
    assert!(first.ends_with('Z') && first.contains('.'), "{first}");
    // RFC 3339 UTC with milliseconds: later times sort later as text.
    eventually("last_poll to move forward", || {
        let status = server.status(&f.ca_pem);
        (status["last_poll"].as_str()? > first.as_str()).then_some(())
    });
    let tickets = ticket_status(&server, &f.ca_pem);
    assert!(tickets["file"].is_null(), "{tickets}");
    assert_eq!(tickets["rotation_period"], "1h", "{tickets}");
    assert_eq!(tickets["rotation_period_seconds"], 3600.0, "{tickets}");
    assert_eq!(tickets["keys"], 1, "{tickets}");
    assert_eq!(tickets["rotations"], 0, "{tickets}");
    assert_eq!(tickets["failures"], 0, "{tickets}");
    assert!(tickets["last_error"].is_null(), "{tickets}");
    assert!(tickets["last_rotation"].as_str().unwrap().ends_with('Z'));

    let metrics = || {
        let text = server.get(&f.ca_pem, "/metrics");
        parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    };
    let samples = metrics();
    let polled = samples["openssl_reload_last_poll_timestamp_seconds"];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - 60.0..=now + 1.0).contains(&polled),
        "{polled} vs {now}"
    );
    assert_eq!(samples["openssl_reload_ticket_keys"], 1.0);
    assert_eq!(samples["openssl_reload_ticket_key_failures_total"], 0.0);
    eventually("the poll timestamp to move forward", || {
        (metrics()["openssl_reload_last_poll_timestamp_seconds"] > polled).then_some(())
    });
}

// ---------------------------------------------------------------------------
// Shutdown.

#[test]
fn sigterm_lets_a_slow_request_finish_and_exits_0() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let mut server = f.start(&["--log", "openssl_reload=debug"]);
    let mut args = server.curl_args(&f.ca_pem);
    args.push(server.url("/slow?ms=5000"));
    let mut slow = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    server.wait_log("slow request: waiting before answering");
    server.signal("TERM");
    server.wait_log("shutting down");

    // New connections are refused while the request is still in flight.
    eventually("the listener to close", || {
        TcpStream::connect(server.addr).is_err().then_some(())
    });
    assert!(
        slow.try_wait().unwrap().is_none(),
        "the slow request ended early"
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server exited early"
    );

    let out = eventually("the slow request to finish", || slow.try_wait().unwrap())
        .success()
        .then(|| slow.wait_with_output().unwrap())
        .expect("the slow request failed");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "slept 5000 ms\n");
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(server.log_has("all connections closed"));
}

#[test]
fn the_grace_period_is_bounded() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let mut server = f.start(&["--shutdown-grace", "300ms", "--log", "openssl_reload=debug"]);
    let mut args = server.curl_args(&f.ca_pem);
    args.push(server.url("/slow?ms=30000"));
    let mut slow = Command::new("curl")
        .args(["-sS", "--max-time", "60"])
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    server.wait_log("slow request: waiting before answering");
    server.signal("TERM");
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(server.log_has("grace period over"));
    let curl_status = eventually("curl to see the connection close", || {
        slow.try_wait().unwrap()
    });
    assert!(!curl_status.success());
}

// ---------------------------------------------------------------------------
// check.

#[test]
fn check_exit_codes() {
    let f = Files::new();
    let p = |path: &Path| path.display().to_string();
    let (cert, key, ca) = (p(&f.cert), p(&f.key), p(&f.ca_pem));

    let other = f.ca.leaf("localhost");
    let other_key = f.path("other-key.pem");
    fs::write(&other_key, other.key_pem()).unwrap();
    private(&other_key);
    let expired =
        f.ca.leaf_with(LeafSpec::new("old").validity(-2 * 86_400, -86_400));
    let expired_dir = f.path("expired");
    fs::create_dir(&expired_dir).unwrap();
    let (expired_cert, expired_key) = expired.write(&expired_dir);
    private(&expired_key);
    let stranger_ca = f.path("stranger.pem");
    fs::write(&stranger_ca, Ca::new("stranger").pem()).unwrap();
    // The leaf, then a certificate that did not sign it.
    let broken_chain = f.path("broken-chain.pem");
    fs::write(
        &broken_chain,
        [f.leaf.cert_pem(), fs::read(&stranger_ca).unwrap()].concat(),
    )
    .unwrap();
    let encrypted_key = f.path("encrypted-key.pem");
    fs::write(
        &encrypted_key,
        f.leaf
            .key
            .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), b"s3cret")
            .unwrap(),
    )
    .unwrap();
    let pass = f.path("pass.txt");
    fs::write(&pass, "s3cret\n").unwrap();
    let wrong_pass = f.path("wrong.txt");
    fs::write(&wrong_pass, "nope\n").unwrap();
    let p12 = f.path("server.p12");
    let bundle = Pkcs12::builder()
        .name("server")
        .pkey(&f.leaf.key)
        .cert(&f.leaf.cert)
        .build2("s3cret")
        .unwrap();
    fs::write(&p12, bundle.to_der().unwrap()).unwrap();
    for secret in [&encrypted_key, &pass, &wrong_pass, &p12] {
        private(secret);
    }

    let (other_key, expired_cert, expired_key) = (p(&other_key), p(&expired_cert), p(&expired_key));
    let (stranger_ca, encrypted_key, pass, wrong_pass, p12) = (
        p(&stranger_ca),
        p(&encrypted_key),
        p(&pass),
        p(&wrong_pass),
        p(&p12),
    );
    let missing = p(&f.path("missing.pem"));
    let broken_chain = p(&broken_chain);
    let cases = [
        Case::new("valid", &["--cert", &cert, "--key", &key], Valid),
        Case::new(
            "valid, CA",
            &["--cert", &cert, "--key", &key, "--ca", &ca],
            Valid,
        ),
        Case::new(
            "mismatched key",
            &["--cert", &cert, "--key", &other_key],
            Invalid("does not match"),
        ),
        Case::new(
            "expired",
            &["--cert", &expired_cert, "--key", &expired_key],
            Invalid("expired"),
        ),
        Case::new(
            "foreign CA",
            &["--cert", &cert, "--key", &key, "--ca", &stranger_ca],
            Invalid("does not chain"),
        ),
        Case::new(
            "chain out of order",
            &["--cert", &broken_chain, "--key", &key],
            Invalid("is broken"),
        ),
        Case::new(
            "unreadable",
            &["--cert", &missing, "--key", &key],
            Invalid("missing.pem"),
        ),
        Case::new(
            "passphrase file",
            &[
                "--cert",
                &cert,
                "--key",
                &encrypted_key,
                "--key-passphrase-file",
                &pass,
            ],
            Valid,
        ),
        Case {
            passphrase_env: Some("s3cret"),
            ..Case::new(
                "passphrase env",
                &["--cert", &cert, "--key", &encrypted_key],
                Valid,
            )
        },
        Case::new(
            "wrong passphrase",
            &[
                "--cert",
                &cert,
                "--key",
                &encrypted_key,
                "--key-passphrase-file",
                &wrong_pass,
            ],
            Invalid("cannot decrypt"),
        ),
        Case::new(
            "no passphrase",
            &["--cert", &cert, "--key", &encrypted_key],
            Invalid("encrypted"),
        ),
        Case::new(
            "pkcs12",
            &["--pkcs12", &p12, "--key-passphrase-file", &pass],
            Valid,
        ),
        Case::new("no identity", &[], Usage),
        Case::new("cert without key", &["--cert", &cert], Usage),
        Case::new(
            "pair and pkcs12",
            &["--cert", &cert, "--key", &key, "--pkcs12", &p12],
            Usage,
        ),
        Case::new(
            "unknown flag",
            &["--cert", &cert, "--key", &key, "--bogus"],
            Usage,
        ),
    ];
    for case in cases {
        let name = case.name;
        let mut cmd = command();
        cmd.arg("check").args(&case.args);
        if let Some(pass) = case.passphrase_env {
            cmd.env("OPENSSL_RELOAD_KEY_PASSPHRASE", pass);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        match case.expect {
            Valid => {
                assert_eq!(out.status.code(), Some(0), "{name}: {stdout}{stderr}");
                for label in [
                    "subject:",
                    "SANs:",
                    "issuer:",
                    "serial:",
                    "notBefore:",
                    "notAfter:",
                    "days left:",
                    "SHA-256:",
                ] {
                    assert!(stdout.contains(label), "{name}: no {label} in {stdout}");
                }
                assert!(stdout.contains(&f.leaf.serial), "{name}: {stdout}");
                assert!(
                    stdout.contains("localhost, 127.0.0.1, ::1"),
                    "{name}: {stdout}"
                );
                assert!(
                    stdout.contains("days left:  29") || stdout.contains("days left:  30"),
                    "{name}: {stdout}"
                );
            }
            Invalid(reason) => {
                assert_eq!(out.status.code(), Some(1), "{name}: {stdout}{stderr}");
                assert_eq!(
                    stderr.lines().count(),
                    1,
                    "{name}: one line expected: {stderr}"
                );
                assert!(
                    stderr.starts_with("openssl-reload: error: "),
                    "{name}: {stderr}"
                );
                assert!(stderr.contains(reason), "{name}: {stderr}");
                assert!(stdout.is_empty(), "{name}: {stdout}");
            }
            Usage => {
                assert_eq!(out.status.code(), Some(2), "{name}: {stdout}{stderr}");
                assert!(stderr.contains("Usage"), "{name}: {stderr}");
            }
        }
    }
}

/// What `check` should say about a case.
enum Expect {
    Valid,
    Invalid(&'static str),
    Usage,
}
use Expect::{Invalid, Usage, Valid};

/// One `check` invocation.
struct Case<'a> {
    name: &'static str,
    args: Vec<&'a str>,
    passphrase_env: Option<&'static str>,
    expect: Expect,
}

impl<'a> Case<'a> {
    fn new(name: &'static str, args: &[&'a str], expect: Expect) -> Self {
        Self {
            name,
            args: args.to_vec(),
            passphrase_env: None,
            expect,
        }
    }
}

// ---------------------------------------------------------------------------
// A Prometheus text-format (0.0.4) parser, strict enough to catch what
// Prometheus would reject.

/// Parses and validates `text`; returns every sample keyed by its series, as
/// `name{label="value",...}` with labels in written order.
fn parse_prometheus(text: &str) -> Result<BTreeMap<String, f64>, String> {
    fn valid_name(name: &str) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    fn parse_value(v: &str) -> Result<f64, String> {
        match v {
            "+Inf" | "Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            "NaN" => Ok(f64::NAN),
            _ => v.parse().map_err(|_| format!("bad value {v:?}")),
        }
    }
    if !text.ends_with('\n') {
        return Err("the exposition must end with a newline".to_owned());
    }
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helps: HashSet<String> = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut samples = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let err = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("HELP"), Some(name), _) => {
                    let first = helps.insert(name.to_owned());
                    if !(valid_name(name) && first) {
                        return Err(err("bad or repeated HELP"));
                    }
                }
                (Some("TYPE"), Some(name), Some(kind)) => {
                    let known = ["counter", "gauge", "histogram", "summary", "untyped"];
                    if !valid_name(name) || !known.contains(&kind) {
                        return Err(err("bad TYPE"));
                    }
                    if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                        return Err(err("repeated TYPE"));
                    }
                    if finished.contains(name) {
                        return Err(err("TYPE after the family's samples"));
                    }
                }
                _ => {}
            }
            continue;
        }
        // name{labels} value [timestamp]
        let name_end = line.find(['{', ' ']).ok_or_else(|| err("no value"))?;
        let name = &line[..name_end];
        if !valid_name(name) {
            return Err(err("bad metric name"));
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(after) = rest.strip_prefix('{') {
            let mut chars = after.char_indices().peekable();
            let mut end = None;
            loop {
                while chars.next_if(|(_, c)| *c == ' ').is_some() {}
                match chars.peek() {
                    Some((i, '}')) => {
                        end = Some(*i);
                        break;
                    }
                    None => break,
                    _ => {}
                }
                let mut label = String::new();
                while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=') {
                    label.push(c);
                }
                if !valid_name(&label) || label.starts_with("__") {
                    return Err(err("bad label name"));
                }
                if chars.next().map(|(_, c)| c) != Some('=')
                    || chars.next().map(|(_, c)| c) != Some('"')
                {
                    return Err(err("label value must be quoted"));
                }
                let mut value = String::new();
                loop {
                    match chars.next().map(|(_, c)| c) {
                        Some('"') => break,
                        Some('\\') => match chars.next().map(|(_, c)| c) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            _ => return Err(err("bad escape in label value")),
                        },
                        Some(c) => value.push(c),
                        None => return Err(err("unterminated label value")),
                    }
                }
                labels.push(format!(
                    "{label}=\"{}\"",
                    value
                        .replace('\\', r"\\")
                        .replace('"', "\\\"")
                        .replace('\n', r"\n")
                ));
                if chars.next_if(|(_, c)| *c == ',').is_none() {
                    while chars.next_if(|(_, c)| *c == ' ').is_some() {}
                    match chars.peek() {
                        Some((i, '}')) => {
                            end = Some(*i);
                            break;
                        }
                        _ => return Err(err("expected , or }")),
                    }
                }
            }
            let end = end.ok_or_else(|| err("unterminated label set"))?;
            rest = &after[end + 1..];
        }
        let mut fields = rest.split_whitespace();
        let value =
            parse_value(fields.next().ok_or_else(|| err("no value"))?).map_err(|e| err(&e))?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| err("bad timestamp"))?;
        }
        if fields.next().is_some() || !rest.starts_with(' ') {
            return Err(err("trailing garbage"));
        }
        // The family a sample belongs to, and where it must have been declared.
        let family = ["_total", "_count", "_sum", "_bucket", "_created"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| types.contains_key(*base))
            })
            .unwrap_or(name)
            .to_owned();
        let kind = types
            .get(&family)
            .or_else(|| types.get(name))
            .ok_or_else(|| err("sample without TYPE"))?;
        if kind == "counter" && !name.ends_with("_total") && !name.ends_with("_created") {
            return Err(err("counter samples end in _total"));
        }
        if kind == "counter" && value < 0.0 {
            return Err(err("negative counter"));
        }
        if current.as_deref() != Some(family.as_str()) {
            if finished.contains(&family) {
                return Err(err("samples of a family must be contiguous"));
            }
            if let Some(previous) = current.replace(family.clone()) {
                finished.insert(previous);
            }
        }
        let key = if labels.is_empty() {
            name.to_owned()
        } else {
            format!("{name}{{{}}}", labels.join(","))
        };
        if samples.insert(key, value).is_some() {
            return Err(err("duplicate series"));
        }
    }
    Ok(samples)
}

#[test]
fn the_prometheus_parser_rejects_what_prometheus_rejects() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"\"} 3\n# TYPE b gauge\nb -Inf 1700000000\n";
    let parsed = parse_prometheus(good).unwrap();
    assert_eq!(parsed["a_total{x=\"1\\\"\"}"], 3.0);
    for bad in [
        "a 1\n",                                                   // no TYPE
        "# TYPE a gauge\na 1",                                     // no final newline
        "# TYPE a gauge\na{x=1} 1\n",                              // unquoted label
        "# TYPE a gauge\na x\n",                                   // bad value
        "# TYPE a counter\na 1\n",                                 // counter without _total
        "# TYPE a gauge\n# TYPE a gauge\na 1\n",                   // repeated TYPE
        "# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x=\"\"} 1\n", // not contiguous
        "# TYPE a gauge\na 1\na 2\n",                              // duplicate
    ] {
        assert!(parse_prometheus(bad).is_err(), "accepted {bad:?}");
    }
}
