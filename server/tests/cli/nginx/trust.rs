//! nginx's `ssl_crl` and `ssl_password_file` under the module: a CRL renamed
//! over the old one refuses a revoked client in every worker, also with its
//! saved session, while a good client keeps getting in; an encrypted key
//! under the block's `ssl_password_file` rotates with its certificate.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use openssl::symm::Cipher;

use super::run::{assert_serves, get, Nginx, Seen};
use super::{block, every_worker_serves, rotate, DEADLINE};
use crate::fixture::{replace_private, Files};
use crate::support::{write_atomic, Ca, CliCa, Leaf, LeafSpec};

/// A client certificate of `f.ca` for `name`, written as `<name>.pem` and
/// `<name>-key.pem`: the leaf and the two paths.
pub(super) fn client(f: &Files, name: &str) -> (Leaf, [String; 2]) {
    let leaf = f.ca.leaf_with(LeafSpec::new(name));
    let (cert, key) = (
        f.path(&format!("{name}.pem")),
        f.path(&format!("{name}-key.pem")),
    );
    rotate(&cert, &key, &leaf);
    let paths = [cert.display().to_string(), key.display().to_string()];
    (leaf, paths)
}

/// `GET /` presenting the client certificate `paths`, with `flags`.
pub(super) fn with(nginx: &Nginx, ca: &Path, paths: &[String; 2], flags: &[&str]) -> Seen {
    let mut all = vec!["-cert", &*paths[0], "-key", &*paths[1]];
    all.extend(flags);
    get(nginx.addr, ca, "localhost", &all)
}

#[test]
#[ignore = "needs the nginx module: run by ci/nginx.sh"]
fn a_client_revoked_by_a_rotated_crl_is_refused_also_with_a_saved_session() {
    let f = Files::new();
    let cli = CliCa::new(Ca {
        cert: f.ca.cert.clone(),
        key: f.ca.key.clone(),
    });
    let (alice, alice_files) = client(&f, "alice");
    let (_, bob) = client(&f, "bob");
    let (client_ca, crl) = (f.path("client-ca.pem"), f.path("clients.crl"));
    write_atomic(&client_ca, &f.ca.pem());
    write_atomic(&crl, &cli.crl(&[]));
    let mtls = format!(
        "ssl_client_certificate {};\n  ssl_crl {};\n  ssl_verify_client on;\n  \
         ssl_session_cache shared:SSL:1m;\n  ssl_session_tickets on;",
        client_ca.display(),
        crl.display()
    );
    let nginx = Nginx::start(f.dir.path(), &block("localhost", &f.cert, &f.key, &mtls));
    let session = f.path("alice-session.pem").display().to_string();
    let alice_with = |flags: &[&str]| with(&nginx, &f.ca_pem, &alice_files, flags);
    let bob_gets_in = || with(&nginx, &f.ca_pem, &bob, &[]).status == Some(200);
    assert_eq!(alice_with(&["-sess_out", &session]).status, Some(200));
    let resumed = alice_with(&["-sess_in", &session]);
    assert!(
        resumed.reused && resumed.status == Some(200),
        "{}",
        resumed.text
    );

    cli.revoke(&alice.cert);
    write_atomic(&crl, &cli.crl(&[]));
    let start = Instant::now();
    while alice_with(&[]).status == Some(200) {
        assert!(bob_gets_in(), "the good client was refused");
        assert!(
            start.elapsed() < DEADLINE,
            "the revoked client still gets in"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every worker: a session, or a connection, may land on either.
    for _ in 0..6 {
        let again = alice_with(&["-sess_in", &session]);
        assert!(
            !again.reused,
            "resumed after the revocation: {}",
            again.text
        );
        assert_ne!(again.status, Some(200), "{}", again.text);
        assert!(bob_gets_in(), "the good client was refused");
    }
}

#[test]
#[ignore = "needs the nginx module: run by ci/nginx.sh"]
fn an_encrypted_key_under_ssl_password_file_rotates_with_its_certificate() {
    let f = Files::new();
    let password = f.path("password");
    fs::write(&password, "a passphrase\n").unwrap();
    let encrypted = |leaf: &Leaf, pass: &[u8]| {
        leaf.key
            .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), pass)
            .unwrap()
    };
    let (cert, key) = (f.path("enc.pem"), f.path("enc-key.pem"));
    // The key first, then the certificate, each by rename.
    let put = |leaf: &Leaf, pass: &[u8]| {
        replace_private(&key, &encrypted(leaf, pass));
        write_atomic(&cert, &leaf.cert_pem());
    };
    put(&f.leaf, b"a passphrase");
    let extra = format!("ssl_password_file {};", password.display());
    let nginx = Nginx::start(f.dir.path(), &block("localhost", &cert, &key, &extra));
    let workers = nginx.workers();
    assert_serves(nginx.addr, &f.ca_pem, "localhost", &f.leaf.serial);

    let next = f.ca.leaf("localhost");
    put(&next, b"a passphrase");
    every_worker_serves(&nginx, &f.ca_pem, "localhost", &workers, &next.serial);

    // A key under another passphrase: logged, naming the key; the pair in
    // service stays in every worker.
    put(&f.ca.leaf("localhost"), b"another passphrase");
    nginx.wait_error_naming(&key.display().to_string());
    every_worker_serves(&nginx, &f.ca_pem, "localhost", &workers, &next.serial);
}
