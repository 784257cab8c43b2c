//! Driving the binary: the command without inherited configuration, a running
//! server killed on drop, its output collected line by line, and deadline loops.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::clients::curl;
use crate::support::DEADLINE;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_openssl-reload");

/// Whether curl and openssl are on PATH; outside CI a missing tool skips the test.
pub(crate) fn clients_available() -> bool {
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
pub(crate) fn command() -> Command {
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
pub(crate) fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
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

pub(crate) type Lines = Arc<Mutex<Vec<String>>>;

/// Collects the lines of a child's output, echoing them for a failing test's report.
pub(crate) fn collect(stream: impl Read + Send + 'static, prefix: &'static str) -> Lines {
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
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) stdout: Lines,
    pub(crate) stderr: Lines,
    pub(crate) addr: SocketAddr,
}

impl Server {
    /// Starts `serve` with `args` (which should include `--listen 127.0.0.1:0`)
    /// and waits until it listens.
    pub(crate) fn start(args: &[&str]) -> Self {
        let mut cmd = command();
        cmd.arg("serve").args(args);
        Self::spawn(cmd)
    }

    pub(crate) fn spawn(mut cmd: Command) -> Self {
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

    /// The address of `--admin-listen`, from its log line.
    pub(crate) fn admin_addr(&self) -> SocketAddr {
        eventually("the admin listening line", || {
            self.stderr.lock().unwrap().iter().find_map(|line| {
                if let Ok(json) = serde_json::from_str::<serde_json::Value>(line) {
                    return json["admin_addr"].as_str()?.parse().ok();
                }
                line.split_whitespace()
                    .find_map(|word| word.strip_prefix("admin_addr="))?
                    .trim_matches('"')
                    .parse()
                    .ok()
            })
        })
    }

    pub(crate) fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `https://localhost:<port><path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port())
    }

    /// curl arguments that reach this server as `localhost`, trusting `ca`.
    pub(crate) fn curl_args(&self, ca: &Path) -> Vec<String> {
        vec![
            "--cacert".to_owned(),
            ca.display().to_string(),
            "--resolve".to_owned(),
            format!("localhost:{}:127.0.0.1", self.port()),
        ]
    }

    /// The body of `GET path`, or panics.
    pub(crate) fn get(&self, ca: &Path, path: &str) -> String {
        let out = curl(&self.curl_args(ca), &[&self.url(path)]);
        assert!(
            out.status.success(),
            "curl {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The serial of the certificate `/` says this new connection was served.
    pub(crate) fn served_serial(&self, ca: &Path) -> String {
        serial_in(&self.get(ca, "/"))
    }

    pub(crate) fn status(&self, ca: &Path) -> serde_json::Value {
        serde_json::from_str(&self.get(ca, "/status")).unwrap()
    }

    pub(crate) fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal}");
    }

    pub(crate) fn log_has(&self, needle: &str) -> bool {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    /// How many log lines so far contain `needle`.
    pub(crate) fn log_count(&self, needle: &str) -> usize {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    pub(crate) fn wait_log(&self, needle: &str) {
        eventually(&format!("log line containing {needle:?}"), || {
            self.log_has(needle).then_some(())
        });
    }

    /// Standard output, once the development banner has been read whole (its
    /// last line is the curl command): it is printed before the "listening"
    /// line, but on another pipe, read by another thread.
    pub(crate) fn dev_banner(&self) -> String {
        eventually("the development banner's curl line", || {
            let lines = self.stdout.lock().unwrap();
            let done = lines.iter().any(|l| l.trim_start().starts_with("curl "));
            done.then(|| lines.join("\n"))
        })
    }

    pub(crate) fn wait_exit(&mut self) -> ExitStatus {
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
pub(crate) fn listening_addr(line: &str) -> Option<SocketAddr> {
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
pub(crate) fn serial_in(body: &str) -> String {
    body.lines()
        .find_map(|l| l.trim().strip_prefix("serial:"))
        .unwrap_or_else(|| panic!("no serial in {body:?}"))
        .trim()
        .to_owned()
}
