//! Debian's nginx with the module and its keys in a SoftHSM2 token, named as
//! nginx names engine keys (`engine:pkcs11:pkcs11:...`): nginx loads them at
//! start through the engine that `openssl.cnf` configures; the module opens
//! them again in each worker (a PKCS#11 session is not shared across `fork`),
//! and the workers follow a certificate rotation and a token outage with no
//! `nginx -s reload`. ci/hardware-keys.sh builds the module for it.

use std::path::Path;

use openssl::pkey::{PKey, Public};

use super::outage::{fixtures_args, Restore};
use super::{Fixture, Site};
use crate::nginx::every_worker_serves_with;
use crate::nginx::run::{default_user, Nginx};
use crate::support::{serial_hex, write_atomic, LeafSpec};

/// A client that accepts only an ECDSA certificate, and one only RSA.
const ECDSA: &[&str] = &["-tls1_3", "-sigalgs", "ECDSA+SHA256"];
const RSA: &[&str] = &["-tls1_3", "-sigalgs", "RSA-PSS+SHA256"];

/// Writes (by rename) a certificate for `key` with `serial` to `path`.
fn certify(site: &Site, path: &Path, key: &PKey<Public>, serial: u32) -> String {
    let cert = site
        .ca
        .certify(LeafSpec::new("localhost").serial(serial), key);
    write_atomic(path, &cert.to_pem().unwrap());
    serial_hex(&cert)
}

#[test]
#[ignore = "needs a SoftHSM2 token and the nginx module: run by ci/hardware-keys.sh"]
fn nginx_workers_serve_token_keys_follow_a_rotation_and_come_back_after_an_outage() {
    let hsm = Fixture::load("env");
    let site = Site::new(hsm.var("HSM_PIN"));
    let (ec_cert, rsa_cert) = (site.path("ec.pem"), site.path("rsa.pem"));
    let (ec_key, rsa_key) = (
        hsm.public_key("HSM_EC_CERT"),
        hsm.public_key("HSM_RSA_CERT"),
    );
    let ec = certify(&site, &ec_cert, &ec_key, 14_001);
    let rsa = certify(&site, &rsa_cert, &rsa_key, 14_101);
    // The PIN from the URI (pin-source), for nginx's load and the module's.
    let key = |uri| format!("\"engine:pkcs11:{}\"", hsm.var(uri));
    let servers = format!(
        "server {{\n  listen 127.0.0.1:PORT ssl;\n  server_name localhost;\n  ssl_protocols TLSv1.3;\n\
         ssl_certificate {};\n  ssl_certificate_key {};\n\
         ssl_certificate {};\n  ssl_certificate_key {};\n\
         openssl_reload on;\n  openssl_reload_interval 20ms;\n\
         location / {{ add_header X-Pid $pid always; return 200 \"ok\\n\"; }}\n}}\n",
        ec_cert.display(),
        key("HSM_EC_URI_PIN"),
        rsa_cert.display(),
        key("HSM_RSA_URI_PIN"),
    );
    // Workers keep only the variables named by `env`.
    let main = format!(
        "{}\nenv SOFTHSM2_CONF;\nenv PKCS11_MODULE_PATH;",
        default_user()
    );
    let env = [
        ("OPENSSL_CONF", hsm.var("HSM_OPENSSL_CONF")),
        ("SOFTHSM2_CONF", hsm.var("SOFTHSM2_CONF")),
        ("PKCS11_MODULE_PATH", hsm.var("PKCS11_MODULE_PATH")),
    ];
    let nginx = Nginx::start_in(site.dir.path(), &main, &env, &servers);
    let workers = nginx.wait_workers(2);
    let ca = &site.ca_pem;
    every_worker_serves_with(&nginx, ca, "localhost", ECDSA, &workers, &ec);
    // The second pair (`_add_site` with a URI) serves the RSA-only client.
    every_worker_serves_with(&nginx, ca, "localhost", RSA, &workers, &rsa);

    let ec_next = certify(&site, &ec_cert, &ec_key, 14_002);
    every_worker_serves_with(&nginx, ca, "localhost", ECDSA, &workers, &ec_next);

    // The token's directory moves away and back: the same files return at
    // once. (Re-importing the keys while three processes poll the token
    // has left SoftHSM2 with a key object without its label.)
    fixtures_args(&["softhsm-outage", hsm.var("HSM_DIR"), "move"]);
    let restore = Restore("softhsm-restore", hsm.var("HSM_DIR").to_owned());
    // A worker's key fails its probe or cannot be opened: the module says so.
    // (SoftHSM2 in a worker can go on signing with a key it holds in memory
    // for a while: the handshakes themselves need not fail.)
    nginx.wait_error_naming("pkcs11:token=web");
    drop(restore);
    every_worker_serves_with(&nginx, ca, "localhost", ECDSA, &workers, &ec_next);
    every_worker_serves_with(&nginx, ca, "localhost", RSA, &workers, &rsa);
    assert_eq!(nginx.workers(), workers, "the same workers, no reload");
}
