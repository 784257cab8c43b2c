//! The admin address: `/status` and `/metrics` there (plain HTTP on loopback,
//! HTTPS elsewhere) and 404 on the public port; `/slow` only with `--diagnostics`.

use std::net::SocketAddr;
use std::process::{Command, Output};

use crate::clients::curl;
use crate::fixture::Files;
use crate::harness::{clients_available, Server};

/// The HTTP status code of `GET url` with curl and `args`.
fn status_code(args: &[String], url: &str) -> (u16, Output) {
    let mut args = args.to_vec();
    args.extend(["-o".to_owned(), "/dev/null".to_owned()]);
    args.extend(["-w".to_owned(), "%{http_code}".to_owned()]);
    let out = curl(&args, &[url]);
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    (code, out)
}

fn public_code(server: &Server, f: &Files, path: &str) -> u16 {
    status_code(&server.curl_args(&f.ca_pem), &server.url(path)).0
}

#[test]
fn status_and_metrics_move_to_the_admin_address() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let server = f.start(&["--admin-listen", "127.0.0.1:0"]);
    let admin: SocketAddr = server.admin_addr();
    assert!(server.log_has("scheme=\"http\""), "plain HTTP on loopback");
    // Plain HTTP/1.1, and HTTP/2 with prior knowledge.
    for flag in ["--http1.1", "--http2-prior-knowledge"] {
        for path in ["/status", "/metrics"] {
            let (code, _) = status_code(&[flag.to_owned()], &format!("http://{admin}{path}"));
            assert_eq!(code, 200, "admin {path} over {flag}");
        }
    }
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(format!("http://{admin}/metrics"))
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&out.stdout);
    assert!(
        metrics.contains("openssl_reload_connections_max "),
        "{metrics}"
    );
    assert_eq!(status_code(&[], &format!("http://{admin}/")).0, 404);
    // The public port keeps / and no longer tells its internals.
    assert_eq!(public_code(&server, &f, "/"), 200);
    assert_eq!(public_code(&server, &f, "/status"), 404);
    assert_eq!(public_code(&server, &f, "/metrics"), 404);
    assert_eq!(public_code(&server, &f, "/slow?ms=1"), 404);
}

#[test]
fn admin_on_a_non_loopback_address_is_https() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let server = f.start(&["--admin-listen", "0.0.0.0:0"]);
    let port = server.admin_addr().port();
    assert!(server.log_has("scheme=\"https\""));
    let args = vec![
        "--cacert".to_owned(),
        f.ca_pem.display().to_string(),
        "--resolve".to_owned(),
        format!("localhost:{port}:127.0.0.1"),
    ];
    let (code, _) = status_code(&args, &format!("https://localhost:{port}/status"));
    assert_eq!(code, 200);
    // Not plain HTTP there.
    let out = curl(&[], &[&format!("http://127.0.0.1:{port}/status")]);
    assert!(
        !out.status.success(),
        "plain HTTP answered on a public admin address"
    );
}

#[test]
fn slow_needs_diagnostics() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let server = f.start(&[]);
    assert_eq!(public_code(&server, &f, "/slow?ms=1"), 404);
    // Without an admin address, /status and /metrics stay on the public port.
    assert_eq!(public_code(&server, &f, "/status"), 200);
    drop(server);
    let server = f.start(&["--diagnostics"]);
    assert_eq!(public_code(&server, &f, "/slow?ms=1"), 200);
}
