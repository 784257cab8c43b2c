//! Bounded resources: idle HTTP/2 and HTTP/1.1 connections are closed after
//! `--idle-timeout`, `--max-connections` leaves further clients in the listen
//! backlog until a place frees, and running out of file descriptors is logged
//! at most once a second.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use openssl::ssl::{SslConnector, SslMethod, SslStream};

use crate::clients::curl;
use crate::fixture::Files;
use crate::harness::{clients_available, eventually, Server, BIN};
use crate::support::DEADLINE;

/// The idle timeout the tests run with, and how much later than it a
/// connection may close (a loaded CI machine, the GOAWAY's bounded wait).
const IDLE: Duration = Duration::from_secs(1);
const MARGIN: Duration = Duration::from_secs(4);

/// A TLS connection to `addr` as `localhost`, verified against `ca`, offering `alpn`.
fn tls(addr: SocketAddr, ca: &std::path::Path, alpn: &[u8]) -> SslStream<TcpStream> {
    let mut connector = SslConnector::builder(SslMethod::tls_client()).unwrap();
    let ca = openssl::x509::X509::from_pem(&fs::read(ca).unwrap()).unwrap();
    connector.cert_store_mut().add_cert(ca).unwrap();
    connector.set_alpn_protos(alpn).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    let stream = connector.build().connect("localhost", tcp).unwrap();
    let negotiated = stream.ssl().selected_alpn_protocol().map(<[u8]>::to_vec);
    assert_eq!(negotiated.as_deref(), Some(&alpn[1..]), "ALPN");
    stream
}

/// Sends `first`, then reads (discarding) until the server closes; returns how
/// long after the sending that was.
fn time_until_closed(mut stream: SslStream<TcpStream>, first: &[u8]) -> Duration {
    stream
        .get_ref()
        .set_read_timeout(Some(IDLE + MARGIN + DEADLINE))
        .unwrap();
    if !first.is_empty() {
        stream.write_all(first).unwrap();
    }
    let started = Instant::now();
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                panic!("still open after {:?}", started.elapsed())
            }
            // A close without close_notify (the server dropped an idle h2 client).
            Err(_) => break,
        }
    }
    started.elapsed()
}

#[test]
fn idle_http2_and_http1_connections_are_closed() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let server = f.start(&["--idle-timeout", "1s"]);
    // The client preface and an empty SETTINGS frame.
    let preface_and_settings =
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    let request = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let cases: [(&str, &[u8], &[u8]); 4] = [
        ("h2, no preface", b"\x02h2", b""),
        ("h2, preface and SETTINGS", b"\x02h2", preface_and_settings),
        ("HTTP/1.1, no request", b"\x08http/1.1", b""),
        ("HTTP/1.1, after a request", b"\x08http/1.1", request),
    ];
    // Concurrently: the four take about one idle timeout together.
    let waits: Vec<_> = cases
        .into_iter()
        .map(|(what, alpn, first)| {
            let stream = tls(server.addr, &f.ca_pem, alpn);
            (
                what,
                thread::spawn(move || time_until_closed(stream, first)),
            )
        })
        .collect();
    for (what, wait) in waits {
        let open = wait.join().unwrap();
        assert!(open < IDLE + MARGIN, "{what}: closed after {open:?}");
        // Not before the timeout (less a little for the clocks' granularity).
        assert!(
            open + Duration::from_millis(100) >= IDLE,
            "{what}: closed after {open:?}"
        );
    }
    // A connection in use is not idle: a request every half timeout keeps it.
    let mut stream = tls(server.addr, &f.ca_pem, b"\x08http/1.1");
    for _ in 0..3 {
        stream.write_all(request).unwrap();
        let mut buf = [0; 4096];
        let n = stream.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        thread::sleep(IDLE / 2);
    }
}

/// The accept queue of the listening socket on `port` (`/proc/net/tcp`: for a
/// listener, `rx_queue` is the number of connections waiting to be accepted).
fn accept_queue(port: u16) -> usize {
    let table = fs::read_to_string("/proc/net/tcp").unwrap();
    // Should there be several listening sockets on the port, their queues add up.
    let queues: Vec<usize> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<_> = line.split_whitespace().collect();
            let local_port = u16::from_str_radix(fields[1].rsplit(':').next()?, 16).ok()?;
            let listening = fields[3] == "0A";
            let rx = fields[4].split(':').nth(1)?;
            (listening && local_port == port).then(|| usize::from_str_radix(rx, 16).unwrap())
        })
        .collect();
    assert!(
        !queues.is_empty(),
        "no listener on port {port} in /proc/net/tcp"
    );
    queues.iter().sum()
}

/// `GET /` with curl, in the background.
fn spawn_curl(server: &Server, f: &Files) -> Child {
    Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(server.curl_args(&f.ca_pem))
        .arg(server.url("/"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `GET /status` on the plain-HTTP admin address.
fn admin_status(admin: SocketAddr) -> serde_json::Value {
    let out = curl(&[], &[&format!("http://{admin}/status")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Asserts that no message was logged more than once in any second.
fn assert_no_message_more_than_once_a_second(server: &Server) {
    let mut seen: HashMap<String, Vec<f64>> = HashMap::new();
    for line in server.stderr.lock().unwrap().iter() {
        let json: serde_json::Value = serde_json::from_str(line).unwrap();
        let message = json["message"].as_str().unwrap().to_owned();
        let at = json["timestamp"].as_str().unwrap();
        seen.entry(message).or_default().push(seconds_of_day(at));
    }
    for (message, times) in seen {
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= 0.99,
                "{message:?} logged twice within a second: {times:?}"
            );
        }
    }
}

/// Seconds since midnight of an RFC 3339 UTC timestamp (`...T05:36:42.28Z`).
fn seconds_of_day(timestamp: &str) -> f64 {
    let time = timestamp.split('T').nth(1).unwrap().trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next().unwrap().parse().unwrap();
    let m: f64 = parts.next().unwrap().parse().unwrap();
    let s: f64 = parts.next().unwrap().parse().unwrap();
    h * 3600.0 + m * 60.0 + s
}

#[test]
fn at_max_connections_new_clients_wait_in_the_backlog() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let server = f.start(&[
        "--max-connections",
        "8",
        "--handshake-timeout",
        "60s",
        "--admin-listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
    ]);
    let admin = server.admin_addr();
    // Eight clients that connect and say nothing hold every place.
    let mut idle: Vec<_> = (0..8)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    eventually("8 connections open", || {
        (admin_status(admin)["connections_open"] == 8).then_some(())
    });
    // The ninth waits in the kernel's queue, not accepted and not refused.
    let mut ninth = spawn_curl(&server, &f);
    eventually("the ninth connection queued", || {
        (accept_queue(server.port()) == 1).then_some(())
    });
    assert!(
        ninth.try_wait().unwrap().is_none(),
        "the ninth was answered"
    );
    assert_eq!(admin_status(admin)["connections_open"], 8);
    assert_eq!(admin_status(admin)["connections_max"], 8);

    // One leaves: the ninth is served.
    drop(idle.pop());
    let status = eventually("the ninth request to finish", || ninth.try_wait().unwrap());
    let out = ninth.wait_with_output().unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Hello from openssl-reload"));
    drop(idle);
    assert_no_message_more_than_once_a_second(&server);
}

#[test]
fn out_of_file_descriptors_is_logged_once_a_second_and_recovers() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    // A low open-file limit and a connection limit above it: accept(2) fails with EMFILE.
    let mut cmd = Command::new("sh");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .arg("-c")
        .arg("ulimit -n 48 && exec \"$0\" \"$@\"")
        .arg(BIN)
        .arg("serve")
        .args(f.serve_args())
        .args(["--max-connections", "1000", "--handshake-timeout", "60s"])
        .args(["--log-format", "json"]);
    let server = Server::spawn(cmd);
    assert!(server.log_has("--max-connections leaves too few file descriptors"));
    let idle: Vec<_> = (0..60)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    let failures = |server: &Server| -> Vec<(f64, u64)> {
        server
            .stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains("cannot accept connections"))
            .map(|line| {
                let json: serde_json::Value = serde_json::from_str(line).unwrap();
                (
                    seconds_of_day(json["timestamp"].as_str().unwrap()),
                    json["failures"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let lines = eventually("two `cannot accept` lines", || {
        let lines = failures(&server);
        (lines.len() >= 2).then_some(lines)
    });
    // The second line counts the failures of the second since the first.
    assert!(lines[1].1 > 1, "{lines:?}");
    assert_no_message_more_than_once_a_second(&server);

    // Once descriptors free up, queued and new clients are served.
    drop(idle);
    let curl = spawn_curl(&server, &f);
    let out = curl.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
