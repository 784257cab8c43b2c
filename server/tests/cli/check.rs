//! `openssl-reload check`: exit status 0 and a description for valid material,
//! 1 and a one-line reason for invalid material, 2 for a usage error.

use std::fs;
use std::process::Output;

use openssl::pkcs12::Pkcs12;
use openssl::symm::Cipher;

use crate::fixture::{private, Files};
use crate::harness::command;
use crate::support::{Ca, LeafSpec};

use Expect::{Invalid, Usage, Valid};

/// What `check` should say about a case.
enum Expect {
    Valid,
    Invalid(&'static str),
    Usage,
}

/// One `check` invocation.
struct Case<'a> {
    name: &'static str,
    args: Vec<&'a str>,
    passphrase_env: Option<&'static str>,
    expect: Expect,
}

impl<'a> Case<'a> {
    fn new(name: &'static str, args: &[&'a str], expect: Expect) -> Self {
        Self {
            name,
            args: args.to_vec(),
            passphrase_env: None,
            expect,
        }
    }
}

/// Every file the cases name, as arguments, next to `f`'s certificate, key and CA.
struct Material {
    f: Files,
    cert: String,
    key: String,
    ca: String,
    /// Another leaf's key: it does not match `cert`.
    other_key: String,
    expired_cert: String,
    expired_key: String,
    /// A CA that did not sign `cert`.
    stranger_ca: String,
    /// The leaf, then a certificate that did not sign it.
    broken_chain: String,
    /// `key` encrypted under the passphrase in `pass`.
    encrypted_key: String,
    pass: String,
    wrong_pass: String,
    /// The leaf and its key under the passphrase in `pass`.
    p12: String,
    missing: String,
}

impl Material {
    fn new() -> Self {
        let f = Files::new();
        let p = |name: &str| f.path(name).display().to_string();
        let other_key = write_private(&f, "other-key.pem", &f.ca.leaf("localhost").key_pem());
        let expired =
            f.ca.leaf_with(LeafSpec::new("old").validity(-2 * 86_400, -86_400));
        fs::create_dir(f.path("expired")).unwrap();
        let (expired_cert, expired_key) = expired.write(&f.path("expired"));
        private(&expired_key);
        let stranger = Ca::new("stranger").pem();
        fs::write(f.path("stranger.pem"), &stranger).unwrap();
        fs::write(
            f.path("broken-chain.pem"),
            [f.leaf.cert_pem(), stranger].concat(),
        )
        .unwrap();
        let encrypted = f
            .leaf
            .key
            .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), b"s3cret")
            .unwrap();
        let bundle = Pkcs12::builder()
            .name("server")
            .pkey(&f.leaf.key)
            .cert(&f.leaf.cert)
            .build2("s3cret")
            .unwrap();
        Self {
            cert: f.cert.display().to_string(),
            key: f.key.display().to_string(),
            ca: f.ca_pem.display().to_string(),
            other_key,
            expired_cert: expired_cert.display().to_string(),
            expired_key: expired_key.display().to_string(),
            stranger_ca: p("stranger.pem"),
            broken_chain: p("broken-chain.pem"),
            encrypted_key: write_private(&f, "encrypted-key.pem", &encrypted),
            pass: write_private(&f, "pass.txt", b"s3cret\n"),
            wrong_pass: write_private(&f, "wrong.txt", b"nope\n"),
            p12: write_private(&f, "server.p12", &bundle.to_der().unwrap()),
            missing: p("missing.pem"),
            f,
        }
    }
}

/// Writes `bytes` to `name` in `f`'s directory, mode 0600; returns the path.
fn write_private(f: &Files, name: &str, bytes: &[u8]) -> String {
    let path = f.path(name);
    fs::write(&path, bytes).unwrap();
    private(&path);
    path.display().to_string()
}

/// Runs `check` on each case and asserts what it expects.
fn run(m: &Material, cases: &[Case<'_>]) {
    for case in cases {
        let name = case.name;
        let mut cmd = command();
        cmd.arg("check").args(&case.args);
        if let Some(pass) = case.passphrase_env {
            cmd.env("OPENSSL_RELOAD_KEY_PASSPHRASE", pass);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        match case.expect {
            Valid => assert_valid(name, &out, &m.f.leaf.serial),
            Invalid(reason) => assert_invalid(name, &out, reason),
            Usage => assert_usage(name, &out),
        }
    }
}

/// Exit status 0, and the description of the leaf with `serial`.
fn assert_valid(name: &str, out: &Output, serial: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{name}: {stdout}{stderr}");
    for label in [
        "subject:",
        "SANs:",
        "issuer:",
        "serial:",
        "notBefore:",
        "notAfter:",
        "days left:",
        "SHA-256:",
    ] {
        assert!(stdout.contains(label), "{name}: no {label} in {stdout}");
    }
    assert!(stdout.contains(serial), "{name}: {stdout}");
    assert!(
        stdout.contains("localhost, 127.0.0.1, ::1"),
        "{name}: {stdout}"
    );
    assert!(
        stdout.contains("days left:  29") || stdout.contains("days left:  30"),
        "{name}: {stdout}"
    );
}

/// Exit status 1, nothing on standard output, one line naming `reason`.
fn assert_invalid(name: &str, out: &Output, reason: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{name}: {stdout}{stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{name}: one line expected: {stderr}"
    );
    assert!(
        stderr.starts_with("openssl-reload: error: "),
        "{name}: {stderr}"
    );
    assert!(stderr.contains(reason), "{name}: {stderr}");
    assert!(stdout.is_empty(), "{name}: {stdout}");
}

/// Exit status 2 and clap's usage.
fn assert_usage(name: &str, out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{name}: {stdout}{stderr}");
    assert!(stderr.contains("Usage"), "{name}: {stderr}");
}

#[test]
fn check_accepts_valid_material() {
    let m = Material::new();
    let (cert, key) = (m.cert.as_str(), m.key.as_str());
    let pass = m.pass.as_str();
    run(
        &m,
        &[
            Case::new("valid", &["--cert", cert, "--key", key], Valid),
            Case::new(
                "valid, CA",
                &["--cert", cert, "--key", key, "--ca", &m.ca],
                Valid,
            ),
            Case::new(
                "passphrase file",
                &[
                    "--cert",
                    cert,
                    "--key",
                    &m.encrypted_key,
                    "--key-passphrase-file",
                    pass,
                ],
                Valid,
            ),
            Case {
                passphrase_env: Some("s3cret"),
                ..Case::new(
                    "passphrase env",
                    &["--cert", cert, "--key", &m.encrypted_key],
                    Valid,
                )
            },
            Case::new(
                "pkcs12",
                &["--pkcs12", &m.p12, "--key-passphrase-file", pass],
                Valid,
            ),
        ],
    );
}

#[test]
fn check_refuses_invalid_material() {
    let m = Material::new();
    let (cert, key, encrypted) = (m.cert.as_str(), m.key.as_str(), m.encrypted_key.as_str());
    run(
        &m,
        &[
            Case::new(
                "mismatched key",
                &["--cert", cert, "--key", &m.other_key],
                Invalid("does not match"),
            ),
            Case::new(
                "expired",
                &["--cert", &m.expired_cert, "--key", &m.expired_key],
                Invalid("expired"),
            ),
            Case::new(
                "foreign CA",
                &["--cert", cert, "--key", key, "--ca", &m.stranger_ca],
                Invalid("does not chain"),
            ),
            Case::new(
                "chain out of order",
                &["--cert", &m.broken_chain, "--key", key],
                Invalid("is broken"),
            ),
            Case::new(
                "unreadable",
                &["--cert", &m.missing, "--key", key],
                Invalid("missing.pem"),
            ),
            Case::new(
                "wrong passphrase",
                &[
                    "--cert",
                    cert,
                    "--key",
                    encrypted,
                    "--key-passphrase-file",
                    &m.wrong_pass,
                ],
                Invalid("cannot decrypt"),
            ),
            Case::new(
                "no passphrase",
                &["--cert", cert, "--key", encrypted],
                Invalid("encrypted"),
            ),
        ],
    );
}

#[test]
fn check_usage_errors() {
    let m = Material::new();
    let (cert, key) = (m.cert.as_str(), m.key.as_str());
    run(
        &m,
        &[
            Case::new("no identity", &[], Usage),
            Case::new("cert without key", &["--cert", cert], Usage),
            Case::new(
                "pair and pkcs12",
                &["--cert", cert, "--key", key, "--pkcs12", &m.p12],
                Usage,
            ),
            Case::new(
                "unknown flag",
                &["--cert", cert, "--key", key, "--bogus"],
                Usage,
            ),
        ],
    );
}
