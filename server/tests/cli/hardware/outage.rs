//! The token goes away (SoftHSM2's token deleted, swtpm stopped): handshakes
//! fail as OpenSSL reports them, the poller's probe sees it within the
//! interval and `/status` shows the outage, while the certificate in service
//! stays. Once the TPM is back, the key is opened again through a fresh
//! tpm2 provider instance and served, with no restart. (A PKCS#11 key through
//! libp11 0.4.12 is not opened again in the same process: docs/hardware-keys.md,
//! "Outages".)

use std::process::Command;

use super::token::serves;
use super::{Fixture, Site};
use crate::harness::{eventually, Server};

/// Runs `ci/hsm-fixtures.sh SUBCOMMAND DIR`.
fn fixtures(subcommand: &str, dir: &str) {
    let ok = Command::new("ci/hsm-fixtures.sh")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args([subcommand, dir])
        .status()
        .unwrap()
        .success();
    assert!(ok, "ci/hsm-fixtures.sh {subcommand}");
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
fn a_deleted_token_fails_handshakes_and_shows_in_status() {
    let hsm = Fixture::load("env");
    let site = Site::new(hsm.var("HSM_PIN"));
    let serial = site.certify(&hsm.public_key("HSM_EC_CERT"), 11_001);
    let admin = ["--admin-listen", "127.0.0.1:0"];
    let server = site.serve(&hsm, hsm.var("HSM_EC_URI"), &admin);
    assert!(serves(&server, &site.ca_pem, &serial));
    fixtures("softhsm-outage", hsm.var("HSM_DIR"));
    let restore = Restore("softhsm-restore", hsm.var("HSM_DIR").to_owned());
    outage_is_reported(&server, &site, &serial);
    // The engine cannot open it again in this process: the log says so.
    server.wait_log("restart the server once the token is back");
    drop(restore);
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
    eventually("handshakes served again", || {
        serves(&server, &site.ca_pem, &serial).then_some(())
    });
    let key = admin_status(&server).unwrap()["sites"][0]["key"].clone();
    assert_eq!(key["available"], true, "{key}");
    assert_eq!(key["outages"], 1, "{key}");
    assert!(key["opened"].as_u64().unwrap() >= 2, "{key}");
    assert!(key["unavailable_since"].is_null(), "{key}");
    assert_eq!(key["by"], "tpm2", "{key}");
    assert!(server.log_has("hardware key opened again; the outage is over"));
    assert!(server.log_count("provider instance replaced") > replaced_while_away);
    assert!(!server.log_has("restart the server"));
    // Served from now on, by the fresh instance: many handshakes, no failure.
    for _ in 0..20 {
        assert!(serves(&server, &site.ca_pem, &serial));
    }
}

/// `/status`, read over the admin port (plain HTTP); `None` until it parses.
fn admin_status(server: &Server) -> Option<serde_json::Value> {
    let body = crate::clients::curl(&[], &[&format!("http://{}/status", server.admin_addr())]);
    serde_json::from_slice(&body.stdout).ok()
}

/// Brings the device back when dropped, also when the test fails, so that
/// the tests after it find it.
struct Restore(&'static str, String);

impl Drop for Restore {
    fn drop(&mut self) {
        fixtures(self.0, &self.1);
    }
}
