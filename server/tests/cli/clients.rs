//! The real clients the binary is tried with: curl and `openssl s_client`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::x509::X509;

use crate::harness::eventually;

/// Runs curl with `-sS`, a time limit, `args` and then `urls`.
pub(crate) fn curl(args: &[String], urls: &[&str]) -> Output {
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
pub(crate) fn s_client(addr: SocketAddr, ca: &Path, extra: &[&str]) -> (String, String) {
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
    (crate::support::serial_hex(&cert), text)
}

/// An ASN.1 time in seconds since the Unix epoch.
pub(crate) fn unix_time(time: &Asn1TimeRef) -> i64 {
    let diff = Asn1Time::from_unix(0).unwrap().diff(time).unwrap();
    i64::from(diff.days) * 86_400 + i64::from(diff.secs)
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
pub(crate) fn output_within_deadline(cmd: &mut Command, input: &[u8]) -> Output {
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
pub(crate) fn s_client_resumed(
    addr: SocketAddr,
    ca: &Path,
    version: &str,
    session: &[&Path],
) -> bool {
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
