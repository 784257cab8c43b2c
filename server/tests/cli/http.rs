//! HTTP and what it reports: HTTP/2 and HTTP/1.1 through ALPN, `/metrics` as
//! Prometheus text, `/status`, mutual TLS and the server certificate's chain.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use crate::clients::{curl, output_within_deadline, s_client, unix_time};
use crate::fixture::Files;
use crate::harness::{clients_available, command, eventually, Server};
use crate::prometheus::parse_prometheus;
use crate::support::{write_atomic, Ca, DEADLINE};
use crate::tickets::ticket_status;

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

/// Makes a handshake fail (a client speaking plain HTTP) and another time out
/// (a client that never starts one, which stalls no one else), and waits until
/// both are logged with the peer's address.
fn fail_two_handshakes(server: &Server, f: &Files) {
    let mut plain = TcpStream::connect(server.addr).unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
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
}

/// `/metrics` parsed, or the test fails with the text.
fn metrics(server: &Server, f: &Files) -> BTreeMap<String, f64> {
    let text = server.get(&f.ca_pem, "/metrics");
    parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The notAfter series of the one site, named by its certificate path.
fn not_after_key(f: &Files) -> String {
    format!(
        r#"openssl_reload_certificate_not_after_seconds{{site="{}"}}"#,
        f.cert.display()
    )
}

/// The metrics (`text`) of a server that has served `f`'s leaf since start-up, polling
/// every 20 ms, after [`fail_two_handshakes`].
fn assert_fresh_metrics(text: &str, f: &Files) {
    let samples = parse_prometheus(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
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
    assert_eq!(value(&not_after_key(f)), not_after as f64);
    assert_eq!(value("openssl_reload_sites"), 1.0);
    assert_eq!(value("openssl_reload_poll_interval_seconds"), 0.02);
    assert!(value("openssl_reload_handshakes_total") >= 1.0);
    assert!(value(r#"openssl_reload_handshake_failures_total{reason="error"}"#) >= 1.0);
    assert!(value(r#"openssl_reload_handshake_failures_total{reason="timeout"}"#) >= 1.0);
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
    fail_two_handshakes(&server, &f);
    assert_fresh_metrics(&server.get(&f.ca_pem, "/metrics"), &f);

    // After a failed and a successful reload the counters move.
    write_atomic(&f.cert, b"junk");
    eventually("a failed reload in /metrics", || {
        let samples = metrics(&server, &f);
        (samples[r#"openssl_reload_reloads_total{result="failure"}"#] >= 1.0).then_some(())
    });
    let next = f.ca.leaf("localhost");
    next.write(f.dir.path());
    let samples = eventually("a successful reload in /metrics", || {
        let samples = metrics(&server, &f);
        (samples[r#"openssl_reload_reloads_total{result="success"}"#] == 1.0).then_some(samples)
    });
    assert_eq!(samples["openssl_reload_generation"], 2.0);
    assert_eq!(
        samples[&not_after_key(&f)],
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
    assert_eq!(out.status.code(), Some(78), "{stderr}");
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

    let samples = metrics(&server, &f);
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
        (metrics(&server, &f)["openssl_reload_last_poll_timestamp_seconds"] > polled).then_some(())
    });
}
