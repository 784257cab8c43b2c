//! nginx's own session tickets (`ssl_session_ticket_key` files, no session
//! cache) with mutual TLS under the module: a ticket sealed with the file's
//! key resumes in every worker and across a certificate rotation; once its
//! client's CA is dropped from `ssl_client_certificate`, the saved session is
//! refused within the interval, while a client of the CA that stays gets in
//! and resumes again with a new ticket.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use super::run::{Nginx, Seen};
use super::trust::{client, with};
use super::{block, every_worker_serves_with, rotate, DEADLINE};
use crate::fixture::Files;
use crate::support::{write_atomic, Ca, LeafSpec};

/// The first 16 bytes of the ticket s_client printed (TLS 1.2: "TLS session
/// ticket:" then a hex dump): the name of the key that sealed it.
fn ticket_key_name(seen: &Seen) -> Vec<u8> {
    let dump = seen
        .text
        .split_once("TLS session ticket:\n")
        .unwrap_or_else(|| panic!("no ticket: {}", seen.text))
        .1;
    // "    0000 - 8a 3e 1d 5e 9c 05 6f 18-b1 2b 9e ba 0a c2 c6 43   .>.^..o..+....."
    let first = dump.lines().next().unwrap().split_once(" - ").unwrap().1;
    first[..47]
        .replace('-', " ")
        .split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// `times` resumptions of the session in `file` by the client `paths`, each
/// asserted to resume and be served.
fn resumes(nginx: &Nginx, ca: &Path, paths: &[String; 2], file: &str, times: usize) {
    for _ in 0..times {
        let again = with(nginx, ca, paths, &["-sess_in", file]);
        assert!(again.reused && again.status == Some(200), "{}", again.text);
    }
}

/// `bob`, a client of a CA of its own: the CA and the client's two paths.
fn other_client(f: &Files) -> (Ca, [String; 2]) {
    let ca = Ca::new("bob's CA");
    let (cert, key) = (f.path("bob.pem"), f.path("bob-key.pem"));
    rotate(&cert, &key, &ca.leaf_with(LeafSpec::new("bob")));
    (ca, [cert.display().to_string(), key.display().to_string()])
}

/// A random 80-byte `ssl_session_ticket_key` file, and the directives of
/// mutual TLS against `client_ca` with nginx's tickets and no session cache.
fn mtls_with_ticket_key(f: &Files, client_ca: &Path) -> ([u8; 80], String) {
    let mut key = [0; 80];
    openssl::rand::rand_bytes(&mut key).unwrap();
    let file = f.path("ticket.key");
    fs::write(&file, key).unwrap();
    let mtls = format!(
        "ssl_client_certificate {};\n  ssl_verify_client on;\n  ssl_session_cache off;\n  \
         ssl_session_tickets on;\n  ssl_session_ticket_key {};",
        client_ca.display(),
        file.display()
    );
    (key, mtls)
}

#[test]
#[ignore = "needs the nginx module: run by ci/nginx.sh"]
fn nginx_ticket_keys_resume_until_the_client_ca_is_dropped() {
    let f = Files::new();
    let (_, alice) = client(&f, "alice");
    let (bob_ca, bob) = other_client(&f);
    let client_ca = f.path("client-ca.pem");
    write_atomic(&client_ca, &[f.ca.pem(), bob_ca.pem()].concat());
    let (key, mtls) = mtls_with_ticket_key(&f, &client_ca);
    let nginx = Nginx::start(f.dir.path(), &block("localhost", &f.cert, &f.key, &mtls));
    let workers = nginx.workers();
    let session = |name: &str| f.path(name).display().to_string();
    let (alice_session, bob_session) = (session("alice.sess"), session("bob.sess"));
    for (paths, file) in [(&alice, &alice_session), (&bob, &bob_session)] {
        let first = with(&nginx, &f.ca_pem, paths, &["-sess_out", file]);
        assert_eq!(first.status, Some(200), "{}", first.text);
        assert_eq!(ticket_key_name(&first), key[..16], "not nginx's ticket key");
        // Both workers hold the key: a connection may land on either.
        resumes(&nginx, &f.ca_pem, paths, file, 6);
    }

    // A certificate rotation leaves the trust as it was: tickets still resume.
    let next = f.ca.leaf("localhost");
    rotate(&f.cert, &f.key, &next);
    let as_alice = ["-cert", &*alice[0], "-key", &*alice[1]];
    every_worker_serves_with(
        &nginx,
        &f.ca_pem,
        "localhost",
        &as_alice,
        &workers,
        &next.serial,
    );
    resumes(&nginx, &f.ca_pem, &alice, &alice_session, 4);

    write_atomic(&client_ca, &bob_ca.pem());
    let start = Instant::now();
    while with(&nginx, &f.ca_pem, &alice, &[]).status == Some(200) {
        assert!(
            start.elapsed() < DEADLINE,
            "alice's dropped CA still lets her in"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..6 {
        let again = with(&nginx, &f.ca_pem, &alice, &["-sess_in", &alice_session]);
        assert!(!again.reused, "resumed after the CA drop: {}", again.text);
        assert_ne!(again.status, Some(200), "{}", again.text);
        // Bob's old ticket names the old trust: a full handshake, which he
        // passes, and a new ticket that resumes.
        let bob_again = with(&nginx, &f.ca_pem, &bob, &["-sess_in", &bob_session]);
        assert!(!bob_again.reused, "an old-trust ticket: {}", bob_again.text);
        assert_eq!(bob_again.status, Some(200), "{}", bob_again.text);
    }
    let fresh = with(&nginx, &f.ca_pem, &bob, &["-sess_out", &bob_session]);
    assert_eq!(ticket_key_name(&fresh), key[..16]);
    resumes(&nginx, &f.ca_pem, &bob, &bob_session, 6);
}
