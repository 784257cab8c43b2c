//! Shutdown: SIGTERM lets a request in flight finish, within a bounded grace
//! period, and the exit status is 0.

use std::net::TcpStream;
use std::process::{Command, Stdio};

use crate::fixture::Files;
use crate::harness::{clients_available, eventually};

#[test]
fn sigterm_lets_a_slow_request_finish_and_exits_0() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let mut server = f.start(&["--log", "openssl_reload=debug", "--diagnostics"]);
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
    let mut server = f.start(&[
        "--shutdown-grace",
        "300ms",
        "--log",
        "openssl_reload=debug",
        "--diagnostics",
    ]);
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
