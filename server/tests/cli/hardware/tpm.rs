//! Keys in a TPM 2.0 (swtpm behind tpm2-abrmd) through the tpm2-openssl
//! provider's `OSSL_STORE` loader: rotation around the key, a refused
//! certificate, and parallel clients, whose signatures take turns
//! (tpm2-openssl 1.1 shares one ESYS context between threads).

use super::token::parallel_failures;
use super::{Fixture, Site};
use crate::fixture::replace_private;
use crate::harness::eventually;

const PROVIDER: [&str; 2] = ["--provider", "tpm2"];

#[test]
#[ignore = "needs a software TPM: run by ci/hardware-keys.sh"]
fn tpm_keys_serve_through_the_provider_and_certificates_rotate_around_them() {
    let tpm = Fixture::load("tpm-env");
    for (serial, (uri, cert)) in [
        (7000, ("TPM_EC_URI", "TPM_EC_CERT")),
        (8000, ("TPM_RSA_URI", "TPM_RSA_CERT")),
    ] {
        let site = Site::new("");
        let key = tpm.public_key(cert);
        let first = site.certify(&key, serial + 1);
        let uri = format!("store:{}", tpm.var(uri));
        let server = site.serve(&tpm, &uri, &PROVIDER);
        site.rotates_around(&server, &key, (first, serial + 2), ("provider", "tpm2"));
    }
}

#[test]
#[ignore = "needs a software TPM: run by ci/hardware-keys.sh"]
fn eight_parallel_clients_make_two_hundred_handshakes_each_with_a_tpm_key() {
    let tpm = Fixture::load("tpm-env");
    let site = Site::new("");
    let serial = site.certify(&tpm.public_key("TPM_EC_CERT"), 9001);
    let uri = format!("store:{}", tpm.var("TPM_EC_URI"));
    let server = site.serve(&tpm, &uri, &PROVIDER);
    let started = std::time::Instant::now();
    let failures = parallel_failures(&server, &site.ca_pem, &serial, 200);
    eprintln!(
        "1600 handshakes from 8 parallel clients with the TPM key in {:?}: {failures} failed",
        started.elapsed()
    );
    assert_eq!(failures, 0);
    assert_eq!(
        server.log_count("ERROR:esys"),
        0,
        "the TPM stack reported errors"
    );
}

#[test]
#[ignore = "needs a software TPM: run by ci/hardware-keys.sh"]
fn a_key_file_naming_another_tpm_handle_is_adopted_with_its_certificate() {
    let tpm = Fixture::load("tpm-env");
    let site = Site::new("");
    let key_file = site.path("tls.key");
    let line = |var: &str| format!("store:{}\n", tpm.var(var));
    replace_private(&key_file, line("TPM_EC_URI").as_bytes());
    let first = site.certify(&tpm.public_key("TPM_EC_CERT"), 14_001);
    let server = site.serve(&tpm, key_file.to_str().unwrap(), &PROVIDER);
    assert_eq!(server.served_serial(&site.ca_pem), first);

    replace_private(&key_file, line("TPM_RSA_URI").as_bytes());
    let next = site.certify(&tpm.public_key("TPM_RSA_CERT"), 14_002);
    eventually("the other handle and its certificate", || {
        (server.served_serial(&site.ca_pem) == next).then_some(())
    });
    let status = server.status(&site.ca_pem);
    assert_eq!(
        status["sites"][0]["key"]["uri"],
        line("TPM_RSA_URI").trim_end()
    );
}
