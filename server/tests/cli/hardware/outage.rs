//! The token goes away (SoftHSM2's token deleted, swtpm stopped): handshakes
//! fail as OpenSSL reports them, the poller's probe sees it within the
//! interval and `/status` shows the outage, while the certificate in service
//! stays. Once the device is back, the key is opened again through a fresh
//! instance of the tpm2 provider or of the pkcs11 engine and served, with no
//! restart (docs/hardware-keys.md, "Outages").

use std::process::Command;

use super::token::serves;
use super::{Fixture, Site};
use crate::fixture::private;
use crate::harness::{eventually, Server};
use crate::sites::served;
use crate::support::{serial_hex, write_atomic, LeafSpec};

/// Runs `ci/hsm-fixtures.sh SUBCOMMAND DIR`.
pub(super) fn fixtures(subcommand: &str, dir: &str) {
    fixtures_args(&[subcommand, dir]);
}

/// Runs `ci/hsm-fixtures.sh ARGS...`.
pub(super) fn fixtures_args(args: &[&str]) {
    let ok = Command::new("ci/hsm-fixtures.sh")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(args)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ci/hsm-fixtures.sh {args:?}");
}

/// Handshakes fail and `/status` (read over the admin port, plain HTTP)
/// reports the outage of the key in service.
fn outage_is_reported(server: &Server, site: &Site, serial: &str) {
    eventually("handshakes failing", || {
        (!serves(server, &site.ca_pem, serial)).then_some(())
    });
    let status = eventually("the outage in /status", || {
        let status = admin_status(server)?;
        (status["sites"][0]["key"]["available"] == false).then_some(status)
    });
    let key = &status["sites"][0]["key"];
    assert_eq!(key["outages"], 1, "{key}");
    assert!(key["unavailable_since"].is_string(), "{key}");
    assert!(
        key["last_error"]
            .as_str()
            .unwrap()
            .starts_with("private key "),
        "{key}"
    );
    assert_eq!(
        status["certificate"]["serial"], serial,
        "the certificate in service stays"
    );
}

#[test]
#[ignore = "needs a SoftHSM2 token: run by ci/hardware-keys.sh"]
fn a_deleted_token_fails_handshakes_shows_in_status_and_serves_again_once_back() {
    let hsm = Fixture::load("env");
    let site = Site::new(hsm.var("HSM_PIN"));
    let serial = site.certify(&hsm.public_key("HSM_EC_CERT"), 11_001);
    let admin = ["--admin-listen", "127.0.0.1:0"];
    let server = site.serve(&hsm, hsm.var("HSM_EC_URI"), &admin);
    assert!(serves(&server, &site.ca_pem, &serial));
    fixtures("softhsm-outage", hsm.var("HSM_DIR"));
    let restore = Restore("softhsm-restore", hsm.var("HSM_DIR").to_owned());
    outage_is_reported(&server, &site, &serial);
    // While the token is away, each tick tries a fresh engine instance, which
    // finds no token and is dropped: none is put in service.
    assert!(!server.log_has("engine instance replaced"));
    drop(restore);
    served_again(&server, &site, &serial, "pkcs11");
    let replaced = "engine instance replaced to open the key again after an outage";
    assert_eq!(server.log_count(replaced), 1);
    assert!(server.log_has("old=engine pkcs11 new=engine pkcs11 #2"));
}

#[test]
#[ignore = "needs a software TPM: run by ci/hardware-keys.sh"]
fn a_stopped_tpm_fails_handshakes_shows_in_status_and_serves_again_once_back() {
    let tpm = Fixture::load("tpm-env");
    let site = Site::new("");
    let serial = site.certify(&tpm.public_key("TPM_EC_CERT"), 12_001);
    let uri = format!("store:{}", tpm.var("TPM_EC_URI"));
    let args = ["--provider", "tpm2", "--admin-listen", "127.0.0.1:0"];
    let server = site.serve(&tpm, &uri, &args);
    assert!(serves(&server, &site.ca_pem, &serial));
    fixtures("tpm-stop", tpm.var("TPM_DIR"));
    let restart = Restore("tpm-start", tpm.var("TPM_DIR").to_owned());
    outage_is_reported(&server, &site, &serial);
    // While it is away, each tick tries a fresh provider instance.
    let replaced_while_away = server.log_count("provider instance replaced");
    drop(restart);
    served_again(&server, &site, &serial, "tpm2");
    assert!(server.log_count("provider instance replaced") > replaced_while_away);
}

#[test]
#[ignore = "needs a SoftHSM2 token: run by ci/hardware-keys.sh"]
fn two_token_keys_come_back_after_an_outage_through_fresh_engine_instances() {
    let hsm = Fixture::load("env");
    let site = Site::new(hsm.var("HSM_PIN"));
    let sites = site.path("sites");
    std::fs::create_dir(&sites).unwrap();
    let mut serials = Vec::new();
    for (name, uri, cert) in [
        ("ec", "HSM_EC_URI", "HSM_EC_CERT"),
        ("rsa", "HSM_RSA_URI", "HSM_RSA_CERT"),
    ] {
        let dns = format!("{name}.test");
        let spec = LeafSpec::new(&dns).dns(&[dns.as_str()]).serial(13_001);
        let leaf = site.ca.certify(spec, &hsm.public_key(cert));
        write_atomic(&sites.join(format!("{name}.crt")), &leaf.to_pem().unwrap());
        let key = sites.join(format!("{name}.key"));
        write_atomic(&key, format!("{}\n", hsm.var(uri)).as_bytes());
        private(&key);
        serials.push((format!("{name}.test"), serial_hex(&leaf)));
    }
    let mut cmd = hsm.serve_command();
    cmd.arg("--cert-dir")
        .arg(&sites)
        .arg("--key-passphrase-file")
        .arg(&site.pin);
    let server = Server::spawn(cmd);
    let each_served = || {
        serials.iter().all(|(name, serial)| {
            served(server.addr, &site.ca_pem, Some(name)).is_ok_and(|s| s == *serial)
        })
    };
    assert!(each_served());
    fixtures("softhsm-outage", hsm.var("HSM_DIR"));
    let restore = Restore("softhsm-restore", hsm.var("HSM_DIR").to_owned());
    eventually("both keys failing", || {
        serials
            .iter()
            .all(|(name, _)| served(server.addr, &site.ca_pem, Some(name)).is_err())
            .then_some(())
    });
    drop(restore);
    eventually("both keys served again", || each_served().then_some(()));
    // The first key to come back puts the fresh instance in service; the
    // other opens through it, or through one more if the instance in service
    // saw the token half restored (a key without its public key object).
    let replaced = server.log_count("engine instance replaced");
    assert!((1..=2).contains(&replaced), "{replaced} engine instances");
    assert_eq!(server.log_count("the outage is over"), 2);
}

/// Once the device is back: handshakes are served again, `/status` shows
/// the outage over and the key opened again `by` the same provider or
/// engine, and many more handshakes pass.
fn served_again(server: &Server, site: &Site, serial: &str, by: &str) {
    eventually("handshakes served again", || {
        serves(server, &site.ca_pem, serial).then_some(())
    });
    let key = admin_status(server).unwrap()["sites"][0]["key"].clone();
    assert_eq!(key["available"], true, "{key}");
    assert_eq!(key["outages"], 1, "{key}");
    assert!(key["opened"].as_u64().unwrap() >= 2, "{key}");
    assert!(key["unavailable_since"].is_null(), "{key}");
    assert_eq!(key["by"], by, "{key}");
    assert!(server.log_has("hardware key opened again; the outage is over"));
    assert!(!server.log_has("restart the server"));
    for _ in 0..20 {
        assert!(serves(server, &site.ca_pem, serial));
    }
}

/// `/status`, read over the admin port (plain HTTP); `None` until it parses.
fn admin_status(server: &Server) -> Option<serde_json::Value> {
    let body = crate::clients::curl(&[], &[&format!("http://{}/status", server.admin_addr())]);
    serde_json::from_slice(&body.stdout).ok()
}

/// Brings the device back when dropped, also when the test fails, so that
/// the tests after it find it.
pub(super) struct Restore(pub(super) &'static str, pub(super) String);

impl Drop for Restore {
    fn drop(&mut self) {
        fixtures(self.0, &self.1);
    }
}
