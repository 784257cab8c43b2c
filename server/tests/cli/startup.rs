//! Start-up: the development certificate, configuration through the
//! environment, one-line errors with their exit statuses, and `--help`.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::clients::s_client;
use crate::fixture::Files;
use crate::harness::{clients_available, command, listening_addr, serial_in, Server};
use crate::support::{Ca, LeafSpec};

/// Starts `serve` without an identity, its data directory under `tmp`.
fn start_dev_server(tmp: &Path) -> Server {
    let mut cmd = command();
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("XDG_DATA_HOME", tmp.join("data"))
        .env("HOME", tmp.join("home"));
    Server::spawn(cmd)
}

/// The banner names the four files in `dev`, and both keys are private.
fn assert_dev_files_listed(banner: &str, dev: &Path) {
    for file in ["ca.pem", "ca-key.pem", "cert.pem", "key.pem"] {
        assert!(
            banner.contains(&dev.join(file).display().to_string()),
            "{file} not printed: {banner}"
        );
    }
    for key in ["key.pem", "ca-key.pem"] {
        let mode = fs::metadata(dev.join(key)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
}

/// Runs the banner's curl line as a user would paste it, after checking that it
/// trusts `ca` and reaches `port`; returns the body.
fn run_printed_curl_line(banner: &str, ca: &Path, port: u16) -> String {
    let curl_line = banner
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("curl "))
        .unwrap_or_else(|| panic!("no curl line in {banner}"))
        .to_owned();
    assert_eq!(
        curl_line,
        format!("curl --cacert {} https://localhost:{port}/", ca.display())
    );
    let run = Command::new("sh")
        .arg("-c")
        .arg(format!("{curl_line} -sS --max-time 20"))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8_lossy(&run.stdout).into_owned()
}

#[test]
fn dev_certificate_by_default_then_reused() {
    if !clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut server = start_dev_server(tmp.path());
    let dev = tmp.path().join("data/openssl-reload/dev");
    let ca = dev.join("ca.pem");
    let out = server.dev_banner();
    assert!(out.contains("created now"), "{out}");
    assert_dev_files_listed(&out, &dev);

    let body = run_printed_curl_line(&out, &ca, server.port());
    assert!(body.contains("CN=localhost"), "{body}");
    let first_serial = serial_in(&body);
    let (serial, _) = s_client(server.addr, &ca, &[]);
    assert_eq!(serial, first_serial);

    server.signal("TERM");
    assert!(server.wait_exit().success());
    let ca_bytes = fs::read(&ca).unwrap();

    // A second run reuses the CA and the certificate.
    let server = start_dev_server(tmp.path());
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

/// Runs `openssl` with `args` in `dir`, failing the test if it fails.
fn openssl_in(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dev_ca_is_name_constrained() {
    if !clients_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dev = tmp.path().join("dev");
    let dev_arg = dev.display().to_string();
    let server = Server::start(&["--dev-dir", &dev_arg, "--listen", "127.0.0.1:0"]);
    let ca = dev.join("ca.pem");
    server.served_serial(&ca);
    drop(server);

    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&ca)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    for needle in [
        "X509v3 Name Constraints: critical",
        "DNS:localhost",
        "IP:127.0.0.0/255.0.0.0",
        "IP:0:0:0:0:0:0:0:1/FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF",
    ] {
        assert!(text.contains(needle), "the dev CA lacks {needle:?}: {text}");
    }
    // `check` accepts the development certificate, chained to the dev CA.
    let out = command()
        .args(["check", "--cert"])
        .arg(dev.join("cert.pem"))
        .arg("--key")
        .arg(dev.join("key.pem"))
        .arg("--ca")
        .arg(&ca)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A certificate for another name, signed with the dev CA's key, is refused
    // by a client that trusts the dev CA.
    fs::write(
        tmp.path().join("evil.ext"),
        "subjectAltName=DNS:evil.example\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ca_key = dev.join("ca-key.pem").display().to_string();
    let ca_arg = ca.display().to_string();
    openssl_in(
        tmp.path(),
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "evil.key",
            "-out",
            "evil.csr",
            "-subj",
            "/CN=evil.example",
        ],
    );
    openssl_in(
        tmp.path(),
        &[
            "x509",
            "-req",
            "-in",
            "evil.csr",
            "-CA",
            &ca_arg,
            "-CAkey",
            &ca_key,
            "-set_serial",
            "0x4242",
            "-days",
            "2",
            "-extfile",
            "evil.ext",
            "-out",
            "evil.pem",
        ],
    );
    let evil_key = tmp.path().join("evil.key");
    fs::set_permissions(&evil_key, fs::Permissions::from_mode(0o600)).unwrap();
    let cert = tmp.path().join("evil.pem").display().to_string();
    let key = evil_key.display().to_string();
    let server = Server::start(&["--cert", &cert, "--key", &key, "--listen", "127.0.0.1:0"]);
    let port = server.port();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert", &ca_arg, "--resolve"])
        .arg(format!("evil.example:{port}:127.0.0.1"))
        .arg(format!("https://evil.example:{port}/"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 60: the peer's certificate cannot be verified.
    assert_eq!(out.status.code(), Some(60), "curl accepted it: {stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
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
fn start_up_errors_are_one_line_with_their_exit_status() {
    let f = Files::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let missing = f.path("missing.pem").display().to_string();
    let cert = f.cert.display().to_string();
    let key = f.key.display().to_string();
    // A runtime error exits 1; a certificate that cannot be loaded is a
    // configuration error (78, EX_CONFIG), which the unit does not restart.
    let cases: &[(&[&str], &str, i32)] = &[
        (
            &["--cert", &cert, "--key", &key, "--listen", &addr],
            "Address already in use",
            1,
        ),
        (
            &["--cert", &missing, "--key", &key, "--listen", "127.0.0.1:0"],
            "missing.pem",
            78,
        ),
        (
            &["--cert", &key, "--key", &key, "--listen", "127.0.0.1:0"],
            "no certificate found in",
            78,
        ),
    ];
    for (args, reason, code) in cases {
        let out = command().arg("serve").args(*args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {stderr}");
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
        &["--idle-timeout", "0s"],
        &["--max-connections", "0"],
        &["--admin-listen", "localhost"],
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
                "--max-connections",
                "RLIMIT_NOFILE",
                "--idle-timeout",
                "--max-header-size",
                "--max-concurrent-streams",
                "--admin-listen",
                "--diagnostics",
                "78",
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
