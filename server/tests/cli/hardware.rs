//! Keys that stay in hardware: a SoftHSM2 token through the libp11 engine and
//! a software TPM through tpm2-openssl, with real handshakes against the
//! binary. ci/hardware-keys.sh provisions them (ci/hsm-fixtures.sh) and runs
//! these with `--ignored`, naming the fixture directory in
//! `OPENSSL_RELOAD_HSM_DIR`.

mod client;
mod fork;
mod nginx;
mod outage;
mod token;
mod tpm;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use openssl::pkey::{PKey, Public};
use openssl::x509::X509;

use crate::fixture::private;
use crate::harness::{command, eventually, Server};
use crate::support::{write_atomic, Ca, LeafSpec};

/// The variables of a fixture's env file (`NAME='value'` lines).
pub(crate) struct Fixture {
    vars: HashMap<String, String>,
}

impl Fixture {
    /// The fixture `file` (`env`, `tpm-env`) in `OPENSSL_RELOAD_HSM_DIR`.
    pub(crate) fn load(file: &str) -> Self {
        let dir = std::env::var("OPENSSL_RELOAD_HSM_DIR")
            .expect("OPENSSL_RELOAD_HSM_DIR: run ci/hardware-keys.sh");
        let text = fs::read_to_string(Path::new(&dir).join(file)).unwrap();
        let vars = text
            .lines()
            .filter_map(|line| line.trim_start_matches("export ").split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
            .collect();
        Self { vars }
    }

    pub(crate) fn var(&self, name: &str) -> &str {
        self.vars
            .get(name)
            .unwrap_or_else(|| panic!("{name} in the fixture"))
    }

    /// The public key of the fixture's certificate `var` (its key is in the token).
    pub(crate) fn public_key(&self, var: &str) -> PKey<Public> {
        X509::from_pem(&fs::read(self.var(var)).unwrap())
            .unwrap()
            .public_key()
            .unwrap()
    }

    /// `serve` on a free loopback port, polling every 20 ms, with the
    /// fixture's variables.
    pub(crate) fn serve_command(&self) -> Command {
        let mut cmd = self.command();
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--poll-interval",
            "20ms",
        ]);
        cmd
    }

    /// The binary with the fixture's variables that OpenSSL, libp11 and the
    /// TPM stack read.
    pub(crate) fn command(&self) -> Command {
        let mut cmd = command();
        for name in [
            "SOFTHSM2_CONF",
            "PKCS11_MODULE_PATH",
            "DBUS_SESSION_BUS_ADDRESS",
            "TPM2OPENSSL_TCTI",
        ] {
            if let Some(value) = self.vars.get(name) {
                cmd.env(name, value);
            }
        }
        cmd
    }
}

/// A temp dir with a CA of the test's own, its `ca.pem`, a PIN file and the
/// certificate file served with a key in hardware.
pub(crate) struct Site {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) ca: Ca,
    pub(crate) ca_pem: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) pin: PathBuf,
}

impl Site {
    pub(crate) fn new(pin: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("hardware key test CA");
        let ca_pem = dir.path().join("ca.pem");
        fs::write(&ca_pem, ca.pem()).unwrap();
        let pin_path = dir.path().join("pin");
        fs::write(&pin_path, format!("{pin}\n")).unwrap();
        private(&pin_path);
        Self {
            cert: dir.path().join("cert.pem"),
            dir,
            ca,
            ca_pem,
            pin: pin_path,
        }
    }

    /// Writes (by rename) a certificate for `key` with `serial`; returns the
    /// serial as the server reports it.
    pub(crate) fn certify(&self, key: &PKey<Public>, serial: u32) -> String {
        let cert = self
            .ca
            .certify(LeafSpec::new("localhost").serial(serial), key);
        write_atomic(&self.cert, &cert.to_pem().unwrap());
        crate::support::serial_hex(&cert)
    }

    /// `serve` on the certificate file with `key` (a URI or a key file), the
    /// PIN file, polling every 20 ms, and `extra`.
    pub(crate) fn serve(&self, fixture: &Fixture, key: &str, extra: &[&str]) -> Server {
        let mut cmd = fixture.serve_command();
        cmd.arg("--cert")
            .arg(&self.cert)
            .args(["--key", key])
            .arg("--key-passphrase-file")
            .arg(&self.pin)
            .args(extra);
        Server::spawn(cmd)
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Serves `first`, checks the key's route (`route`, `by`), then rotates
    /// the certificate around `key` (served within the interval) and writes
    /// one for another key (refused, the pair in service stays); the key is
    /// opened once throughout.
    pub(crate) fn rotates_around(
        &self,
        server: &Server,
        key: &PKey<Public>,
        (first, next_serial): (String, u32),
        (route, by): (&str, &str),
    ) {
        assert_eq!(server.served_serial(&self.ca_pem), first);
        let status = server.status(&self.ca_pem);
        let held = &status["sites"][0]["key"];
        assert_eq!(
            (held["route"].as_str(), held["by"].as_str()),
            (Some(route), Some(by)),
            "{held}"
        );
        assert_eq!(held["available"], true);

        let next = self.certify(key, next_serial);
        eventually("the certificate rotated around the key", || {
            (server.served_serial(&self.ca_pem) == next).then_some(())
        });
        write_atomic(&self.cert, &self.ca.leaf("localhost").cert_pem());
        eventually("the mismatch in /status", || {
            let status = server.status(&self.ca_pem);
            let message = status["last_error"]["message"].as_str()?.to_owned();
            message.contains("does not match certificate").then_some(())
        });
        assert_eq!(server.served_serial(&self.ca_pem), next);
        let status = server.status(&self.ca_pem);
        assert_eq!(
            status["sites"][0]["key"]["opened"], 1,
            "opened once, not per reload"
        );
    }
}
