//! PKCS#11 keys in a SoftHSM2 token, opened through the libp11 engine (Debian
//! 12 packages no pkcs11-provider): rotation around the key, a refused
//! certificate, a new label, PINs, `check`, parallel handshakes.

use std::path::Path;
use std::thread;

use super::{Fixture, Site};
use crate::clients::curl;
use crate::fixture::replace_private;
use crate::harness::{eventually, serial_in, Server};

const EC: (&str, &str) = ("HSM_EC_URI", "HSM_EC_CERT");
const RSA: (&str, &str) = ("HSM_RSA_URI", "HSM_RSA_CERT");

#[test]
#[ignore = "needs a SoftHSM2 token: run by ci/hardware-keys.sh"]
fn ec_and_rsa_token_keys_serve_and_certificates_rotate_around_them() {
    let hsm = Fixture::load("env");
    for (serial, (uri, cert)) in [(1000, EC), (2000, RSA)] {
        let site = Site::new(hsm.var("HSM_PIN"));
        let key = hsm.public_key(cert);
        let first = site.certify(&key, serial + 1);
        let server = site.serve(&hsm, hsm.var(uri), &[]);
        site.rotates_around(&server, &key, (first, serial + 2), ("engine", "pkcs11"));
    }
}

#[test]
#[ignore = "needs a SoftHSM2 token: run by ci/hardware-keys.sh"]
fn a_key_file_naming_a_new_label_is_adopted_with_its_certificate() {
    let hsm = Fixture::load("env");
    let site = Site::new(hsm.var("HSM_PIN"));
    let key_file = site.path("tls.key");
    replace_private(&key_file, format!("{}\n", hsm.var("HSM_EC_URI")).as_bytes());
    let first = site.certify(&hsm.public_key("HSM_EC_CERT"), 3001);
    let server = site.serve(&hsm, key_file.to_str().unwrap(), &[]);
    assert_eq!(server.served_serial(&site.ca_pem), first);

    // The key first, then its certificate, as a rotation writes them.
    replace_private(
        &key_file,
        format!("{}\n", hsm.var("HSM_EC2_URI")).as_bytes(),
    );
    let next = site.certify(&hsm.public_key("HSM_EC2_CERT"), 3002);
    eventually("the new key and certificate", || {
        (server.served_serial(&site.ca_pem) == next).then_some(())
    });
    let status = server.status(&site.ca_pem);
    let uri = status["sites"][0]["key"]["uri"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(uri.contains("object=ec-key-2"), "{uri}");
}

#[test]
#[ignore = "needs a SoftHSM2 token: run by ci/hardware-keys.sh"]
fn a_wrong_pin_is_refused_without_showing_it() {
    let hsm = Fixture::load("env");
    let wrong = "8642";
    let site = Site::new(wrong);
    site.certify(&hsm.public_key("HSM_EC_CERT"), 4001);
    for subcommand in ["check", "serve"] {
        let out = hsm
            .command()
            .args([subcommand, "--cert"])
            .arg(&site.cert)
            .args(["--key", hsm.var("HSM_EC_URI")])
            .arg("--key-passphrase-file")
            .arg(&site.pin)
            .args(if subcommand == "serve" {
                &["--listen", "127.0.0.1:0"][..]
            } else {
                &[]
            })
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = if subcommand == "serve" { 78 } else { 1 };
        assert_eq!(out.status.code(), Some(code), "{subcommand}: {stderr}");
        assert!(
            stderr.contains("object=ec-key") && stderr.contains("refused the PIN"),
            "{stderr}"
        );
        assert!(
            !stderr.contains(wrong),
            "{subcommand} shows the PIN: {stderr}"
        );
    }
}

#[test]
#[ignore = "needs a SoftHSM2 token: run by ci/hardware-keys.sh"]
fn a_pin_file_rotated_while_the_token_is_logged_in_changes_nothing_served() {
    // PKCS#11 logins last for the process: a new PIN is used at the next
    // login (a restart, or the key opened again after an outage).
    let hsm = Fixture::load("env");
    let site = Site::new(hsm.var("HSM_PIN"));
    let first = site.certify(&hsm.public_key("HSM_EC_CERT"), 4101);
    let server = site.serve(&hsm, hsm.var("HSM_EC_URI"), &[]);
    assert_eq!(server.served_serial(&site.ca_pem), first);
    replace_private(&site.pin, b"4321\n");
    let next = site.certify(&hsm.public_key("HSM_EC_CERT"), 4102);
    eventually("the next certificate, with the key still held", || {
        (server.served_serial(&site.ca_pem) == next).then_some(())
    });
    let status = server.status(&site.ca_pem);
    assert_eq!(status["consecutive_failures"], 0, "{status}");
    assert_eq!(server.log_count("4321"), 0, "the PIN is in the log");
}

#[test]
#[ignore = "needs a SoftHSM2 token: run by ci/hardware-keys.sh"]
fn check_reports_the_key_type_its_route_and_whether_it_matches() {
    let hsm = Fixture::load("env");
    let site = Site::new(hsm.var("HSM_PIN"));
    let check = |uri: &str| {
        hsm.command()
            .arg("check")
            .arg("--cert")
            .arg(&site.cert)
            .args(["--key", uri])
            .arg("--key-passphrase-file")
            .arg(&site.pin)
            .output()
            .unwrap()
    };
    for ((uri, cert), key_type) in [(EC, "ECDSA prime256v1"), (RSA, "RSA 2048")] {
        site.certify(&hsm.public_key(cert), 5001);
        let out = check(hsm.var(uri));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("key matches the certificate"), "{stdout}");
        let line = format!(
            "key:        {key_type}, in hardware: {} through engine pkcs11",
            hsm.var(uri)
        );
        assert!(stdout.contains(&line), "{stdout}");
    }
    site.certify(&hsm.public_key("HSM_EC2_CERT"), 5002);
    let out = check(hsm.var("HSM_EC_URI"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("does not match certificate"), "{stderr}");
}

#[test]
#[ignore = "needs a SoftHSM2 token: run by ci/hardware-keys.sh"]
fn eight_parallel_clients_sign_through_one_token_key() {
    let hsm = Fixture::load("env");
    let site = Site::new(hsm.var("HSM_PIN"));
    let serial = site.certify(&hsm.public_key("HSM_EC_CERT"), 6001);
    let server = site.serve(&hsm, hsm.var("HSM_EC_URI"), &[]);
    let failures = parallel_failures(&server, &site.ca_pem, &serial, 50);
    eprintln!("400 handshakes from 8 parallel clients with the token key: {failures} failed");
    assert_eq!(failures, 0);
}

/// How many of `each` new connections from each of 8 parallel clients fail
/// to get `GET /` served with `serial`.
pub(super) fn parallel_failures(server: &Server, ca: &Path, serial: &str, each: usize) -> usize {
    thread::scope(|s| {
        let clients: Vec<_> = (0..8)
            .map(|_| s.spawn(|| (0..each).filter(|_| !serves(server, ca, serial)).count()))
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).sum()
    })
}

/// Whether one new connection's `GET /` succeeds with `serial`.
pub(super) fn serves(server: &Server, ca: &Path, serial: &str) -> bool {
    let out = curl(&server.curl_args(ca), &[&server.url("/")]);
    out.status.success() && serial_in(&String::from_utf8_lossy(&out.stdout)) == serial
}
