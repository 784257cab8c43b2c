//! OCSP staples against the binary: `openssl s_client -status` sees the staple
//! that `openssl ocsp -respout` made, a rotated one, none for a bad file;
//! `/status`, `/metrics` and `check` report it.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::clients::output_within_deadline;
use crate::fixture::private;
use crate::harness::{clients_available, command, eventually, Server};
use crate::support::{write_atomic, Ca, CliCa, Leaf};

/// A CA run by `openssl ca`/`ocsp`, a leaf whose file holds its chain, and
/// the files in a temp dir.
struct Files {
    dir: tempfile::TempDir,
    ca: CliCa,
    leaf: Leaf,
    ca_pem: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = CliCa::new(Ca::new("cli OCSP test CA"));
        let leaf = ca.ca.leaf("localhost");
        let (ca_pem, cert, key) = (
            dir.path().join("ca.pem"),
            dir.path().join("tls.crt"),
            dir.path().join("tls.key"),
        );
        fs::write(&ca_pem, ca.ca.pem()).unwrap();
        fs::write(&cert, leaf.pem_with_issuer(&ca.ca)).unwrap();
        fs::write(&key, leaf.key_pem()).unwrap();
        private(&key);
        Self {
            dir,
            ca,
            leaf,
            ca_pem,
            cert,
            key,
        }
    }

    fn staple(&self, extra: &[&str]) -> Vec<u8> {
        self.ca.ocsp(&self.leaf.cert, None, false, extra)
    }

    fn beside(&self) -> PathBuf {
        self.dir.path().join("tls.crt.ocsp")
    }

    fn args<'a>(&'a self, cert: &'a str, key: &'a str) -> Vec<&'a str> {
        vec![
            "--cert",
            cert,
            "--key",
            key,
            "--listen",
            "127.0.0.1:0",
            "--poll-interval",
            "50ms",
        ]
    }
}

/// `check` succeeded and reports the staple good.
fn assert_staple_good(out: &std::process::Output) {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("OCSP:       good"), "{text}");
}

/// `openssl s_client -status`: the OCSP part of its output.
fn s_client_status(addr: SocketAddr, ca: &Path) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &addr.to_string(), "-servername"])
        .args(["localhost", "-status", "-verify_return_error", "-CAfile"])
        .arg(ca);
    let out = output_within_deadline(&mut cmd, b"");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    let start = text
        .find("OCSP response:")
        .expect("s_client printed no OCSP part");
    let end = text[start..]
        .find("---\n")
        .map_or(text.len(), |i| start + i);
    text[start..end].to_owned()
}

#[test]
fn s_client_sees_the_staple_and_its_rotation_and_none_for_a_bad_file() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    write_atomic(&f.beside(), &f.staple(&[]));
    let (cert, key) = (f.cert.display().to_string(), f.key.display().to_string());
    let server = Server::start(&f.args(&cert, &key));

    let first = s_client_status(server.addr, &f.ca_pem);
    assert!(
        first.contains("OCSP Response Status: successful") && first.contains("Cert Status: good"),
        "{first}"
    );
    let status = server.status(&f.ca_pem);
    let ocsp = &status["certificate"]["ocsp"];
    assert_eq!(ocsp["stapled"], true, "{status:#}");
    assert_eq!(ocsp["status"], "good");
    let metrics = server.get(&f.ca_pem, "/metrics");
    assert!(
        metrics.contains("openssl_reload_ocsp_next_update_timestamp_seconds{site="),
        "{metrics}"
    );

    // A new staple, valid for two days: its Next Update is served.
    write_atomic(&f.beside(), &f.staple(&["-ndays", "2"]));
    let next_update = |text: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with("Next Update:"))
            .map(str::to_owned)
    };
    let before = next_update(&first);
    eventually("the rotated staple", || {
        let now = s_client_status(server.addr, &f.ca_pem);
        (next_update(&now) != before && now.contains("Cert Status: good")).then_some(())
    });

    // Garbage: no staple, the certificate keeps serving, /status says why.
    write_atomic(&f.beside(), b"garbage");
    eventually("no staple", || {
        let now = s_client_status(server.addr, &f.ca_pem);
        now.contains("no response sent").then_some(())
    });
    assert_eq!(server.served_serial(&f.ca_pem), f.leaf.serial);
    let status = server.status(&f.ca_pem);
    let ocsp = &status["certificate"]["ocsp"];
    assert_eq!(ocsp["stapled"], false, "{status:#}");
    assert!(
        ocsp["error"]
            .as_str()
            .unwrap()
            .contains("not a DER OCSP response"),
        "{status:#}"
    );
}

#[test]
fn check_validates_a_given_staple() {
    let f = Files::new();
    let given = f.dir.path().join("staple.der");
    write_atomic(&given, &f.staple(&[]));
    let (cert, key, staple) = (
        f.cert.display().to_string(),
        f.key.display().to_string(),
        given.display().to_string(),
    );
    let check = || {
        command()
            .args([
                "check",
                "--cert",
                &cert,
                "--key",
                &key,
                "--ocsp-staple",
                &staple,
            ])
            .output()
            .unwrap()
    };
    assert_staple_good(&check());

    // A response for another certificate fails the check, naming the file.
    let other = f.ca.ca.leaf("localhost");
    write_atomic(&given, &f.ca.ocsp(&other.cert, None, false, &[]));
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&staple) && err.contains("not a response for the certificate in service"),
        "{err}"
    );
}

/// A leaf issued by the root directly, in a certificate file that holds the
/// leaf alone (the root is not shipped to clients): the staple is checked
/// against `<cert file>.issuer` (HAProxy's name) or `--ocsp-issuer`, and
/// stapled; without either it cannot be checked and is not.
#[test]
fn a_root_issued_leaf_is_stapled_with_its_issuer_beside_it_or_given() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    fs::write(&f.cert, f.leaf.cert_pem()).unwrap();
    write_atomic(&f.beside(), &f.staple(&[]));
    let (cert, key) = (f.cert.display().to_string(), f.key.display().to_string());
    let server = Server::start(&f.args(&cert, &key));
    let status = server.status(&f.ca_pem);
    let ocsp = &status["certificate"]["ocsp"];
    assert_eq!(ocsp["stapled"], false, "{status:#}");
    assert!(
        ocsp["error"].as_str().unwrap().contains(".issuer"),
        "the error says where the issuer may go: {status:#}"
    );

    let issuer = f.dir.path().join("tls.crt.issuer");
    write_atomic(&issuer, &f.ca.ca.pem());
    eventually("the staple checked against tls.crt.issuer", || {
        let now = s_client_status(server.addr, &f.ca_pem);
        now.contains("Cert Status: good").then_some(())
    });
    drop(server);

    fs::remove_file(&issuer).unwrap();
    let given = f.dir.path().join("root.pem");
    write_atomic(&given, &f.ca.ca.pem());
    let given = given.display().to_string();
    let out = command()
        .args(["check", "--cert", &cert, "--key", &key])
        .args(["--ocsp-staple", &f.beside().display().to_string()])
        .args(["--ocsp-issuer", &given])
        .output()
        .unwrap();
    assert_staple_good(&out);
}
