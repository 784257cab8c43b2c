//! Debian's nginx with the module, in a prefix of its own: a master and two
//! workers, `error_log` and `pid` in the prefix, stopped when dropped; and one
//! request over `openssl s_client`.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::clients::output_within_deadline;
use crate::support::serial_hex;

/// How long nginx gets to start, reload or stop.
const SLOW: Duration = Duration::from_secs(30);

/// The module ci/nginx.sh built.
fn module() -> PathBuf {
    std::env::var_os("OPENSSL_RELOAD_NGINX_MODULE")
        .expect("OPENSSL_RELOAD_NGINX_MODULE names the module: run ci/nginx.sh")
        .into()
}

/// A free port on 127.0.0.1 (nginx binds it itself).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether the tests run as root.
pub(crate) fn is_root() -> bool {
    std::os::unix::fs::MetadataExt::uid(&fs::metadata("/proc/self").unwrap()) == 0
}

/// The `user` directive of most tests: workers run as root when the tests do
/// (CI runs as root, and the test files are in a private temporary
/// directory); docs/nginx.md says what the user needs.
pub(crate) fn default_user() -> &'static str {
    if is_root() {
        "user root;"
    } else {
        ""
    }
}

/// `nginx.conf` with `main` (directives of the main context: a `user`
/// directive, `env`, or nothing) and `servers` (whose `PORT` becomes the port)
/// inside `http`.
fn conf(prefix: &Path, port: u16, main: &str, servers: &str) -> String {
    let p = prefix.display();
    format!(
        "load_module {module};\n{main}\nworker_processes 2;\npid {p}/nginx.pid;\n\
         error_log {p}/error.log notice;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n\
         fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n\
         {servers}\n}}\n",
        module = module().display(),
        servers = servers.replace("PORT", &port.to_string()),
    )
}

/// A running nginx.
pub(crate) struct Nginx {
    pub(crate) prefix: PathBuf,
    pub(crate) addr: SocketAddr,
    pub(crate) master: i32,
}

/// `nginx -p PREFIX -c PREFIX/nginx.conf` with `extra` arguments.
fn nginx(prefix: &Path, extra: &[&str]) -> Output {
    nginx_in(prefix, extra, &[])
}

/// [`nginx`] with the variables `env` set.
fn nginx_in(prefix: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("nginx");
    cmd.envs(env.iter().copied());
    cmd.arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(prefix.join("nginx.conf"));
    cmd.args(extra);
    output_within_deadline(&mut cmd, b"")
}

/// Writes `prefix/nginx.conf` with `main` and `servers` on a free port: the
/// address nginx will listen on.
pub(crate) fn write_conf(prefix: &Path, main: &str, servers: &str) -> SocketAddr {
    let port = free_port();
    fs::write(prefix.join("nginx.conf"), conf(prefix, port, main, servers)).unwrap();
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `nginx -t` over `servers` in `prefix`: its output.
pub(crate) fn test_config(prefix: &Path, servers: &str) -> Output {
    write_conf(prefix, default_user(), servers);
    nginx(prefix, &["-t"])
}

impl Nginx {
    pub(crate) fn start(prefix: &Path, servers: &str) -> Self {
        Self::start_as(prefix, default_user(), servers)
    }

    /// Starts nginx with `user` (a `user` directive) for its workers.
    pub(crate) fn start_as(prefix: &Path, user: &str, servers: &str) -> Self {
        Self::start_in(prefix, user, &[], servers)
    }

    /// Starts nginx with `main` (directives of the main context: `user`,
    /// `env`) and the variables `env` set for it.
    pub(crate) fn start_in(prefix: &Path, main: &str, env: &[(&str, &str)], servers: &str) -> Self {
        let addr = write_conf(prefix, main, servers);
        let out = nginx_in(prefix, &[], env);
        assert!(
            out.status.success(),
            "nginx: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let start = Instant::now();
        let master = loop {
            let pid = fs::read_to_string(prefix.join("nginx.pid")).unwrap_or_default();
            if let (Ok(pid), Ok(_)) = (pid.trim().parse(), TcpStream::connect(addr)) {
                break pid;
            }
            assert!(start.elapsed() < SLOW, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        let nginx = Self {
            prefix: prefix.to_owned(),
            addr,
            master,
        };
        nginx.wait_workers(2);
        nginx
    }

    pub(crate) fn error_log(&self) -> String {
        fs::read_to_string(self.prefix.join("error.log")).unwrap_or_default()
    }

    /// The module's `[error]` lines that name `path`.
    fn errors_about(&self, path: &str) -> Vec<String> {
        let log = self.error_log();
        let about =
            |l: &&str| l.contains("[error]") && l.contains("openssl_reload:") && l.contains(path);
        log.lines().filter(about).map(str::to_owned).collect()
    }

    /// How many `[error]` lines of the module's name `path`.
    pub(crate) fn errors_naming(&self, path: &str) -> usize {
        self.errors_about(path).len()
    }

    /// Waits, with a deadline, until the module has logged an `[error]` line
    /// naming `path`, and returns that line.
    pub(crate) fn wait_error_naming(&self, path: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.errors_about(path).into_iter().next() {
                return line;
            }
            assert!(
                start.elapsed() < SLOW,
                "no error naming {path}:\n{}",
                self.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The master's children that are workers, by pid.
    pub(crate) fn workers(&self) -> Vec<i32> {
        let mut workers = Vec::new();
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let stat = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
            // Field 4 of stat, after the command in parentheses: the parent.
            let ppid = stat.rsplit(") ").next().and_then(|r| r.split(' ').nth(1));
            if ppid == Some(&self.master.to_string()) && cmdline.starts_with(b"nginx: worker") {
                workers.push(pid);
            }
        }
        workers.sort_unstable();
        workers
    }

    /// Waits until the master has exactly `n` workers (old ones gone after a reload).
    pub(crate) fn wait_workers(&self, n: usize) -> Vec<i32> {
        let start = Instant::now();
        loop {
            let workers = self.workers();
            if workers.len() == n {
                return workers;
            }
            assert!(
                start.elapsed() < SLOW,
                "workers: {workers:?}\n{}",
                self.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `nginx -s reload`, then waits for a new set of two workers.
    pub(crate) fn reload(&self) -> Vec<i32> {
        let before = self.workers();
        let out = nginx(&self.prefix, &["-s", "reload"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let start = Instant::now();
        loop {
            let now = self.wait_workers(2);
            if now.iter().all(|w| !before.contains(w)) {
                return now;
            }
            assert!(start.elapsed() < SLOW, "no new workers after a reload");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // The master this test started: a fast shutdown.
        let _ = Command::new("kill")
            .args(["-TERM", &self.master.to_string()])
            .status();
        let start = Instant::now();
        while Path::new(&format!("/proc/{}", self.master)).exists() && start.elapsed() < SLOW {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What one request over `openssl s_client` saw.
pub(crate) struct Seen {
    pub(crate) serial: Option<String>,
    /// The worker that answered (`add_header X-Pid $pid`).
    pub(crate) pid: Option<i32>,
    /// The HTTP status, if a response came.
    pub(crate) status: Option<u16>,
    pub(crate) reused: bool,
    pub(crate) alpn: Option<String>,
    pub(crate) text: String,
}

/// `GET /` for `name` with `extra` s_client flags (`-cert`, `-sess_out`, ...),
/// read until nginx closes; with `-alpn` only the handshake (h2 is not
/// HTTP/1.1, and an h2 server waits for the client's preface).
/// Asserts that one handshake as `name` is served the certificate `serial`.
pub(crate) fn assert_serves(addr: SocketAddr, ca: &Path, name: &str, serial: &str) {
    let seen = get(addr, ca, name, &[]);
    assert_eq!(seen.serial.as_deref(), Some(serial), "{}", seen.text);
}

pub(crate) fn get(addr: SocketAddr, ca: &Path, name: &str, extra: &[&str]) -> Seen {
    let alpn = extra.contains(&"-alpn");
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-connect",
        &addr.to_string(),
        "-servername",
        name,
    ])
    .args(["-verify_hostname", name, "-CAfile"])
    .arg(ca)
    .args(if alpn { &[][..] } else { &["-ign_eof"][..] })
    .args(extra);
    let request = format!("GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
    let out = output_within_deadline(&mut cmd, if alpn { b"" } else { request.as_bytes() });
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // After "Server certificate": with -status the OCSP response, printed
    // before it, may carry its signer's certificate.
    let server = text.find("Server certificate").unwrap_or(0);
    let serial = text[server..]
        .find("-----BEGIN CERTIFICATE-----")
        .map(|at| {
            let begin = server + at;
            let end = begin + text[begin..].find("-----END CERTIFICATE-----").unwrap() + 25;
            serial_hex(&openssl::x509::X509::from_pem(&text.as_bytes()[begin..end]).unwrap())
        });
    let header = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim().to_owned())
    };
    Seen {
        serial,
        pid: header("X-Pid: ").and_then(|p| p.parse().ok()),
        status: header("HTTP/1.1 ").and_then(|s| s.get(..3)?.parse().ok()),
        reused: text.contains("Reused, TLS"),
        alpn: header("ALPN protocol: "),
        text,
    }
}
