//! The C library from C: `tests/c/server.c` (the application's own `SSL_CTX`,
//! ALPN callback and blocking accept loop) in both modes, and
//! `tests/c/client.c` against this crate's server with mutual TLS. Every C
//! program runs under valgrind: no error, nothing definitely lost, whatever
//! the order of attach, rotation and free.
//!
//! `sessions` checks session resumption across the application's contexts
//! (`tests/c/sessions.c`) and after a client CA is dropped; `forking` a
//! pre-forking server (`tests/c/forking.c`).
//!
//! ci/capi.sh builds the library, installs it in a staging directory, compiles
//! the programs with the flags of `pkg-config openssl-reload` and runs these
//! tests with `--ignored`, naming the directory in `OPENSSL_RELOAD_C_PROGRAMS`.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use openssl::symm::Cipher;

use crate::clients::output_within_deadline;
use crate::fixture::{private, replace_private, Files};
use crate::support::{serial_hex, write_atomic, write_in_place, Leaf};

/// A pre-forking server: deferred polling started in each child; refused in
/// the children of a parent that polled.
mod forking;
/// A C program under valgrind, fed commands on its standard input.
pub(crate) mod program;
/// Session resumption: contexts attached to one reloader, a servername switch
/// to another, install after a CA drop.
mod sessions;

use self::program::{CProgram, MEMCHECK, SLOW};

/// The C server, started with `args`, and its address.
fn c_server(args: &[&str]) -> (CProgram, SocketAddr) {
    let mut server = CProgram::start("server", args);
    let line = server.wait_line("the listening line", |l| l.starts_with("listening "));
    let port: u16 = line["listening ".len()..].parse().unwrap();
    (server, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// What one `openssl s_client` connection saw.
pub(crate) struct Seen {
    /// The serial of the server's certificate, if it sent one.
    pub(crate) serial: Option<String>,
    pub(crate) alpn: Option<String>,
    /// Whether the C server's `hello` line arrived: its `SSL_accept` succeeded.
    pub(crate) served: bool,
    pub(crate) text: String,
}

/// Connects with `openssl s_client`, verifying the server against the CA;
/// `-ign_eof` reads until the server closes, so its line arrives.
pub(crate) fn connect(addr: SocketAddr, ca: &Path, extra: &[&str]) -> Seen {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &addr.to_string(), "-servername"])
        .args(["localhost", "-verify_hostname", "localhost", "-ign_eof"])
        .arg("-CAfile")
        .arg(ca)
        .args(extra);
    let out = output_within_deadline(&mut cmd, b"");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let serial = text.find("-----BEGIN CERTIFICATE-----").map(|begin| {
        let end = text.find("-----END CERTIFICATE-----").unwrap() + 25;
        serial_hex(&openssl::x509::X509::from_pem(&text.as_bytes()[begin..end]).unwrap())
    });
    let alpn = text
        .lines()
        .find_map(|l| l.strip_prefix("ALPN protocol: "))
        .map(str::to_owned);
    let served = text.contains("hello alpn=");
    if served {
        assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    }
    Seen {
        serial,
        alpn,
        served,
        text,
    }
}

/// Connects until the server presents `serial`, for a rotation the poller
/// picks up within an interval or two.
fn wait_serial(addr: SocketAddr, ca: &Path, serial: &str) -> Seen {
    let start = Instant::now();
    loop {
        let seen = connect(addr, ca, &["-alpn", "h2,http/1.1"]);
        if seen.served && seen.serial.as_deref() == Some(serial) {
            return seen;
        }
        assert!(
            start.elapsed() < SLOW,
            "still not served {serial}: {}",
            seen.text
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Writes `leaf` over the files, by rename or in place.
fn rotate(f: &Files, leaf: &Leaf, in_place: bool) {
    if in_place {
        write_in_place(&f.key, &leaf.key_pem());
        write_in_place(&f.cert, &leaf.cert_pem());
    } else {
        replace_private(&f.key, &leaf.key_pem());
        write_atomic(&f.cert, &leaf.cert_pem());
    }
}

fn args(f: &Files, mode: &'static str) -> Vec<String> {
    [mode, "--poll-ms", "20"]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([f.cert.display().to_string(), f.key.display().to_string()])
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Both modes: the first certificate, a rotation by rename and one in place,
/// with `h2` still negotiated by the application's ALPN callback.
fn follows_rotations(mode: &'static str) -> (Files, CProgram, SocketAddr) {
    let f = Files::new();
    let (server, addr) = c_server(&strs(&args(&f, mode)));
    let seen = connect(addr, &f.ca_pem, &["-alpn", "h2"]);
    assert!(seen.served, "{}", seen.text);
    assert_eq!(seen.serial.as_deref(), Some(&*f.leaf.serial));
    assert_eq!(seen.alpn.as_deref(), Some("h2"), "{}", seen.text);

    for in_place in [false, true] {
        let next = f.ca.leaf("localhost");
        rotate(&f, &next, in_place);
        let seen = wait_serial(addr, &f.ca_pem, &next.serial);
        assert_eq!(seen.alpn.as_deref(), Some("h2"), "{}", seen.text);
    }
    (f, server, addr)
}

#[test]
#[ignore = "needs the C programs: run by ci/capi.sh"]
fn c_server_attached_follows_rotations_keeps_its_alpn_and_survives_garbage() {
    let (f, mut server, addr) = follows_rotations("attach");
    let good = connect(addr, &f.ca_pem, &[]).serial.unwrap();

    // Garbage: the certificate in service stays, and the reason is readable
    // through the API (the change callback prints the last reload error).
    write_in_place(&f.cert, b"-----BEGIN CERTIFICATE-----\ngarbage\n");
    // The failure of the garbage itself: an in-place write (the rotations
    // above, or this one) may be caught half-written first, naming the key or
    // the certificate with another reason ("no certificate found").
    let cert = f.cert.display().to_string();
    server.wait_line("the garbage refused, naming the certificate", |l| {
        l.starts_with("change ")
            && !l.contains("failures=0 ")
            && l.contains("error=cannot parse certificate chain")
            && l.contains(&cert)
    });
    let seen = connect(addr, &f.ca_pem, &["-alpn", "h2"]);
    assert!(
        seen.served && seen.serial.as_deref() == Some(&*good),
        "{}",
        seen.text
    );

    // The handle freed first: the context keeps the reloader, which goes on
    // following the files; then the context is freed at exit.
    server.send("free-handle");
    server.wait_line("the handle freed", |l| l == "freed");
    let next = f.ca.leaf("localhost");
    rotate(&f, &next, false);
    wait_serial(addr, &f.ca_pem, &next.serial);
    server.finish();
}

#[test]
#[ignore = "needs the C programs: run by ci/capi.sh"]
fn c_server_in_servername_mode_follows_rotations() {
    let (f, mut server, addr) = follows_rotations("servername");
    // reload_now, as a SIGHUP handler's thread would call it.
    let next = f.ca.leaf("localhost");
    rotate(&f, &next, false);
    server.send("reload");
    server.wait_line("reload_now's answer", |l| l.starts_with("reloaded "));
    wait_serial(addr, &f.ca_pem, &next.serial);
    server.send("status");
    let status = server.wait_line("the status", |l| l.starts_with("status "));
    assert!(status.contains(&next.serial), "{status}");
    // Context first, then the handle, at exit.
    server.finish();
}

#[test]
#[ignore = "needs the C programs: run by ci/capi.sh"]
fn c_server_verifies_clients_against_the_rotated_ca() {
    let f = Files::new();
    let other = crate::support::Ca::new("second client CA");
    let client = |ca: &crate::support::Ca, name: &str| {
        let leaf = ca.leaf(name);
        let cert = f.path(&format!("{name}.pem"));
        let key = f.path(&format!("{name}-key.pem"));
        fs::write(&cert, leaf.cert_pem()).unwrap();
        fs::write(&key, leaf.key_pem()).unwrap();
        (cert.display().to_string(), key.display().to_string())
    };
    let (old_cert, old_key) = client(&f.ca, "old-client");
    let (new_cert, new_key) = client(&other, "new-client");
    let client_ca = f.path("client-ca.pem");
    fs::write(&client_ca, f.ca.pem()).unwrap();

    let mut a = args(&f, "attach");
    a.splice(1..1, ["--ca".to_owned(), client_ca.display().to_string()]);
    let (mut server, addr) = c_server(&strs(&a));
    let try_client =
        |cert: &str, key: &str| connect(addr, &f.ca_pem, &["-cert", cert, "-key", key]).served;
    assert!(
        !connect(addr, &f.ca_pem, &[]).served,
        "served without a client certificate"
    );
    assert!(
        try_client(&old_cert, &old_key),
        "the trusted CA's client was refused"
    );
    assert!(
        !try_client(&new_cert, &new_key),
        "an untrusted CA's client got in"
    );

    write_atomic(&client_ca, &other.pem());
    server.wait_line("the new CA bundle", |l| l.starts_with("change "));
    let start = Instant::now();
    while !try_client(&new_cert, &new_key) {
        assert!(
            start.elapsed() < SLOW,
            "the new CA's client is still refused"
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !try_client(&old_cert, &old_key),
        "the dropped CA's client still gets in"
    );
    server.finish();
}

#[test]
#[ignore = "needs the C programs: run by ci/capi.sh"]
fn c_server_loads_an_encrypted_key_through_the_passphrase_callback() {
    let f = Files::new();
    let pem = f
        .leaf
        .key
        .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), b"c callback secret")
        .unwrap();
    fs::write(&f.key, pem).unwrap();
    private(&f.key);
    let mut a = args(&f, "attach");
    a.splice(
        1..1,
        [
            "--passphrase-callback".to_owned(),
            "c callback secret".to_owned(),
        ],
    );
    let (server, addr) = c_server(&strs(&a));
    let seen = connect(addr, &f.ca_pem, &[]);
    assert!(
        seen.served && seen.serial.as_deref() == Some(&*f.leaf.serial),
        "{}",
        seen.text
    );
    server.finish();
}

#[test]
#[ignore = "needs the C programs: run by ci/capi.sh"]
fn c_client_reaches_the_server_with_mutual_tls_across_its_rotation() {
    let f = Files::new();
    let ca = f.ca_pem.display().to_string();
    let server = f.start(&["--ca", &ca, "--client-auth", "required"]);
    let cert = f.path("client.pem");
    let key = f.path("client-key.pem");
    let first = f.ca.leaf("c-client-1");
    write_atomic(&cert, &first.cert_pem());
    write_atomic(&key, &first.key_pem());
    let (cert_arg, key_arg) = (cert.display().to_string(), key.display().to_string());
    let mut client = CProgram::start("client", &["--poll-ms", "20", &cert_arg, &key_arg, &ca]);
    client.wait_line("ready", |l| l == "ready");

    let get = |client: &mut CProgram| {
        client.send(&format!("get {}", server.port()));
        let answer = client.wait_line("the response", |l| l == "end" || l.starts_with("failed"));
        assert_eq!(answer, "end");
        client.count(|l| l.starts_with("body Your client certificate:"))
    };
    assert_eq!(get(&mut client), 1);
    assert!(client.count(|l| l == "body Your client certificate: CN=c-client-1") == 1);

    let second = f.ca.leaf("c-client-2");
    replace_private(&key, &second.key_pem());
    write_atomic(&cert, &second.cert_pem());
    let serial = format!("serial={}", second.serial);
    client.wait_line("the rotated identity", |l| l.contains(&serial));
    assert_eq!(get(&mut client), 2);
    assert_eq!(
        client.count(|l| l == "body Your client certificate: CN=c-client-2"),
        1
    );
    client.finish();
    drop(server);
}
