//! An RSA and an ECDSA pair in one server block: a client that accepts only
//! ECDSA gets the ECDSA certificate, one that accepts only RSA the RSA one,
//! in TLS 1.2 (by cipher suite) and TLS 1.3 (by signature algorithm); each
//! pair rotates on its own while the other keeps its serial.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use super::run::{get, Nginx};
use super::{block, every_worker_serves_with, rotate, DEADLINE};
use crate::fixture::Files;
use crate::support::{Alg, Leaf, LeafSpec};

/// Clients limited to ECDSA certificates.
const ECDSA: [&[&str]; 2] = [
    &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
    &["-tls1_3", "-sigalgs", "ECDSA+SHA256"],
];
/// Clients limited to RSA certificates.
const RSA: [&[&str]; 2] = [
    &["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"],
    &["-tls1_3", "-sigalgs", "RSA-PSS+SHA256"],
];

/// Requests as `flags` until each of `workers` has answered, each answer
/// with `serial`.
fn every_worker_keeps(nginx: &Nginx, ca: &Path, flags: &[&str], workers: &[i32], serial: &str) {
    let mut answered = BTreeSet::new();
    let start = Instant::now();
    while answered.len() < workers.len() {
        let got = get(nginx.addr, ca, "localhost", flags);
        assert_eq!(
            got.serial.as_deref(),
            Some(serial),
            "{flags:?}: {}",
            got.text
        );
        assert_eq!(got.status, Some(200), "{}", got.text);
        answered.insert(got.pid.expect("X-Pid"));
        assert!(start.elapsed() < DEADLINE, "only {answered:?} answered");
    }
}

/// Rotation of one pair: each of `rotated`'s clients is served `new` by
/// every worker, each of `kept`'s still `old`.
fn rotation_seen(
    nginx: &Nginx,
    ca: &Path,
    workers: &[i32],
    (rotated, new): ([&[&str]; 2], &Leaf),
    (kept, old): ([&[&str]; 2], &Leaf),
) {
    for flags in rotated {
        every_worker_serves_with(nginx, ca, "localhost", flags, workers, &new.serial);
    }
    for flags in kept {
        every_worker_keeps(nginx, ca, flags, workers, &old.serial);
    }
}

#[test]
#[ignore = "needs the nginx module: run by ci/nginx.sh"]
fn an_rsa_and_an_ecdsa_pair_in_one_block_are_chosen_by_the_client_and_rotate_on_their_own() {
    let f = Files::new();
    let rsa_leaf = || f.ca.leaf_with(LeafSpec::new("localhost").alg(Alg::Rsa2048));
    let ec_leaf = || f.ca.leaf_with(LeafSpec::new("localhost").alg(Alg::P256));
    let (rsa_cert, rsa_key) = (f.path("rsa.pem"), f.path("rsa-key.pem"));
    let (ec_cert, ec_key) = (f.path("ecdsa.pem"), f.path("ecdsa-key.pem"));
    let (rsa, ec) = (rsa_leaf(), ec_leaf());
    rotate(&rsa_cert, &rsa_key, &rsa);
    rotate(&ec_cert, &ec_key, &ec);
    // The RSA pair first (nginx's default), the ECDSA pair second.
    let both = format!(
        "ssl_certificate {};\n  ssl_certificate_key {};\n  ssl_protocols TLSv1.2 TLSv1.3;",
        ec_cert.display(),
        ec_key.display()
    );
    let nginx = Nginx::start(
        f.dir.path(),
        &block("localhost", &rsa_cert, &rsa_key, &both),
    );
    let workers = nginx.workers();
    for flags in ECDSA {
        every_worker_keeps(&nginx, &f.ca_pem, flags, &workers, &ec.serial);
    }
    for flags in RSA {
        every_worker_keeps(&nginx, &f.ca_pem, flags, &workers, &rsa.serial);
    }

    let rsa2 = rsa_leaf();
    rotate(&rsa_cert, &rsa_key, &rsa2);
    rotation_seen(&nginx, &f.ca_pem, &workers, (RSA, &rsa2), (ECDSA, &ec));
    let ec2 = ec_leaf();
    rotate(&ec_cert, &ec_key, &ec2);
    rotation_seen(&nginx, &f.ca_pem, &workers, (ECDSA, &ec2), (RSA, &rsa2));
}
