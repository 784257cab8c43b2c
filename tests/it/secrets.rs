//! Secrets never reach logs or Debug output.
//!
//! Both tests install a process-wide tracing subscriber (at TRACE) that writes
//! into a buffer, so that the poller threads' events are captured as well as the
//! test thread's. A global subscriber can be set once per process and would
//! swallow the other tests' events, so each test runs in a child process of its
//! own (see [`support::isolated`]).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openssl::pkcs12::Pkcs12;
use openssl::symm::Cipher;
use openssl_reload::{
    CertificateStatus, ClientAuth, Passphrase, Reload, ReloadingAcceptor, ReloadingConnector,
    ValidityPolicy,
};

use crate::support::{self, Ca, Leaf, INTERVAL};

/// The passphrase the keys are encrypted under.
const SECRET: &str = "Sekr1t-pass-7f3c9e";
/// A wrong guess: a secret too, as it may be a near-miss of the real one.
const WRONG: &str = "wr0ng-Guess-51a2d8";
/// The passphrase of a rotated key.
const NEXT: &str = "N3xt-pass-c0ffee42";

/// Everything the tracing subscriber writes, from every thread.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn install() -> Self {
        let capture = Self::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_thread_names(true)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        capture
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The ways a secret could show up in text: as itself, as `Debug` of its bytes,
/// in hex, in base64.
fn forms(secret: &str) -> Vec<String> {
    let bytes = format!("{:?}", secret.as_bytes());
    vec![
        secret.to_owned(),
        bytes.trim_matches(['[', ']']).to_owned(),
        secret.bytes().map(|b| format!("{b:02x}")).collect(),
        secret.bytes().map(|b| format!("{b:02X}")).collect(),
        openssl::base64::encode_block(secret.as_bytes()),
    ]
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [SECRET, WRONG, NEXT] {
        for form in forms(secret) {
            assert!(
                !text.contains(&form),
                "{what} contains a passphrase ({form:?}):\n{text}"
            );
        }
    }
}

/// The `Display`, `Debug` and source chain of an error.
fn describe(error: &openssl_reload::Error) -> String {
    let mut text = format!("{error}\n{error:?}\n{:?}\n", error.path());
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        text.push_str(&format!("{e}\n{e:?}\n"));
        source = e.source();
    }
    text
}

struct Files {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    ca: Ca,
    cert: PathBuf,
    ca_file: PathBuf,
    /// The key encrypted under [`SECRET`] as PKCS#8 PEM, traditional PEM and PKCS#8 DER.
    keys: Vec<PathBuf>,
    pkcs12: PathBuf,
}

impl Files {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_owned();
        let ca = Ca::new("secrets CA");
        let leaf = ca.leaf("secrets");
        let cert = dir.join("cert.pem");
        support::write_atomic(&cert, &leaf.cert_pem());
        let ca_file = dir.join("ca.pem");
        support::write_atomic(&ca_file, &ca.pem());
        let cipher = Cipher::aes_256_cbc();
        let pass = SECRET.as_bytes();
        let keys = [
            (
                "key-pkcs8.pem",
                leaf.key
                    .private_key_to_pem_pkcs8_passphrase(cipher, pass)
                    .unwrap(),
            ),
            (
                "key-traditional.pem",
                leaf.key
                    .ec_key()
                    .unwrap()
                    .private_key_to_pem_passphrase(cipher, pass)
                    .unwrap(),
            ),
            (
                "key-pkcs8.der",
                leaf.key
                    .private_key_to_pkcs8_passphrase(cipher, pass)
                    .unwrap(),
            ),
        ]
        .into_iter()
        .map(|(name, bytes)| {
            let path = dir.join(name);
            write_private(&path, &bytes);
            path
        })
        .collect();
        let pkcs12 = dir.join("bundle.p12");
        let bundle = Pkcs12::builder()
            .name("secrets")
            .pkey(&leaf.key)
            .cert(&leaf.cert)
            .build2(SECRET)
            .unwrap();
        write_private(&pkcs12, &bundle.to_der().unwrap());
        Self {
            _tmp: tmp,
            dir,
            ca,
            cert,
            ca_file,
            keys,
            pkcs12,
        }
    }

    /// Every way to supply `pass` (or none).
    fn sources(&self, label: &str, pass: Option<&'static str>) -> Vec<Passphrase> {
        let Some(pass) = pass else {
            return vec![Passphrase::none(), Passphrase::default()];
        };
        let file = self.dir.join(format!("pass-{label}.txt"));
        write_private(&file, format!("{pass}\n").as_bytes());
        vec![
            Passphrase::from_bytes(pass),
            Passphrase::from_file(file),
            Passphrase::from_callback(move || Ok(pass.as_bytes().to_vec())),
        ]
    }
}

fn write_private(path: &Path, bytes: &[u8]) {
    support::write_atomic(path, bytes);
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn passphrase_never_logged_or_debug_printed() {
    support::isolated(
        "secrets::passphrase_never_logged_or_debug_printed",
        passphrase_never_leaks,
    );
}

async fn passphrase_never_leaks() {
    let capture = Capture::install();
    let files = Files::new();
    let mut seen = Printed::default();
    for (label, pass) in [
        ("correct", Some(SECRET)),
        ("wrong", Some(WRONG)),
        ("missing", None),
    ] {
        for passphrase in files.sources(label, pass) {
            seen.text.push(format!("{passphrase:?}"));
            seen.acceptors(&files, label, &passphrase);
            seen.connectors(&files, &passphrase);
        }
    }
    seen.text.push(format!(
        "{:?}",
        Passphrase::from_env("OPENSSL_RELOAD_TEST_NO_SUCH_VARIABLE")
    ));
    seen.text.push(format!(
        "{:?} {:?} {:?}",
        ValidityPolicy::Enforce,
        ClientAuth::Required,
        Reload::Unchanged
    ));
    poller_reloads(&files, &mut seen.text).await;
    seen.assert_no_leak(&capture.text());
}

/// Every Debug and Display string of every public value met on the way, and how
/// many acceptors loaded and were refused.
#[derive(Default)]
struct Printed {
    text: Vec<String>,
    loaded: usize,
    refused: usize,
}

impl Printed {
    /// Checks and builds an acceptor from every key file, the PKCS#12 bundle, and
    /// with a client CA, under `passphrase`: only the correct one loads.
    fn acceptors(&mut self, files: &Files, label: &str, passphrase: &Passphrase) {
        let mut builders: Vec<_> = files
            .keys
            .iter()
            .map(|key| ReloadingAcceptor::builder().identity(&files.cert, key))
            .collect();
        builders.push(ReloadingAcceptor::builder().identity_pkcs12(&files.pkcs12));
        builders.push(
            ReloadingAcceptor::builder()
                .identity(&files.cert, &files.keys[0])
                .ca(&files.ca_file)
                .client_auth(ClientAuth::Optional)
                .validity(ValidityPolicy::Warn),
        );
        for builder in builders {
            let builder = builder
                .passphrase(passphrase.clone())
                .poll_interval(INTERVAL);
            self.text.push(format!("{builder:?}"));
            match builder.check() {
                Ok(info) => self.text.push(format!("{info:?}")),
                Err(e) => self.text.push(describe(&e)),
            }
            match builder.build() {
                Ok(tls) => {
                    assert_eq!(label, "correct");
                    self.text.push(format!("{tls:?}\n{:?}", tls.status()));
                    self.text.push(format!("{:?}", tls.reload_now()));
                    self.loaded += 1;
                }
                Err(e) => {
                    assert_ne!(label, "correct", "{e}");
                    self.text.push(describe(&e));
                    self.refused += 1;
                }
            }
        }
    }

    /// Builds a connector presenting every key file under `passphrase`.
    fn connectors(&mut self, files: &Files, passphrase: &Passphrase) {
        for key in &files.keys {
            let builder = ReloadingConnector::builder()
                .identity(&files.cert, key)
                .ca(&files.ca_file)
                .passphrase(passphrase.clone())
                .poll_interval(INTERVAL);
            self.text.push(format!("{builder:?}"));
            match builder.build() {
                Ok(connector) => {
                    self.text
                        .push(format!("{connector:?}\n{:?}", connector.status()));
                }
                Err(e) => self.text.push(describe(&e)),
            }
        }
    }

    /// The capture works and saw the failures, including the poller thread's;
    /// no secret is in the log or in any printed value.
    fn assert_no_leak(&self, logs: &str) {
        println!(
            "{} loads, {} refusals, {} printed values ({} bytes), {} log lines ({} bytes)",
            self.loaded,
            self.refused,
            self.text.len(),
            self.text.iter().map(String::len).sum::<usize>(),
            logs.lines().count(),
            logs.len()
        );
        for expected in [
            "certificate loaded",
            "reload failed; keeping previous certificate",
            "cannot decrypt",
            "openssl-reload-poll",
        ] {
            assert!(
                logs.contains(expected),
                "the log has no {expected:?}:\n{logs}"
            );
        }
        assert!(self.loaded > 0 && self.refused > 0);
        assert_no_secret("the log", logs);
        for text in &self.text {
            assert_no_secret("a Debug or Display string", text);
        }
    }
}

/// Reloads on the poller thread: a key rotated under a new passphrase fails
/// until the passphrase file follows, then a wrong passphrase and a missing
/// passphrase file fail again. What the acceptor prints goes into `printed`.
async fn poller_reloads(files: &Files, printed: &mut Vec<String>) {
    let pass_file = files.dir.join("pass.txt");
    write_private(&pass_file, SECRET.as_bytes());
    let tls = ReloadingAcceptor::builder()
        .identity(&files.cert, &files.keys[0])
        .passphrase(Passphrase::from_file(&pass_file))
        .poll_interval(INTERVAL)
        .build()
        .unwrap();
    let rotated = files.ca.leaf("rotated");
    rotate(files, &rotated, NEXT);
    support::wait_status(&tls, "the status", |s| failing_with(s, "cannot decrypt")).await;
    printed.push(describe(&tls.reload_now().unwrap_err()));
    write_private(&pass_file, NEXT.as_bytes());
    support::wait_status(&tls, "the status", |s| {
        s.certificate.as_ref().unwrap().serial == rotated.serial
    })
    .await;
    write_private(&pass_file, WRONG.as_bytes());
    rotate(files, &files.ca.leaf("rotated again"), NEXT);
    support::wait_status(&tls, "the status", |s| failing_with(s, "cannot decrypt")).await;
    fs::remove_file(&pass_file).unwrap();
    support::wait_status(&tls, "the status", |s| failing_with(s, "pass.txt")).await;
    printed.push(describe(&tls.reload_now().unwrap_err()));
    let status = tls.status();
    printed.push(format!(
        "{tls:?}\n{status:?}\n{:?}\n{:?}",
        status.last_error, status.certificate
    ));
}

/// Writes `leaf` with its key encrypted under `pass` over the PKCS#8 PEM files.
fn rotate(files: &Files, leaf: &Leaf, pass: &str) {
    let key = leaf
        .key
        .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), pass.as_bytes())
        .unwrap();
    support::write_atomic(&files.cert, &leaf.cert_pem());
    write_private(&files.keys[0], &key);
}

fn failing_with(status: &CertificateStatus, says: &str) -> bool {
    status.consecutive_failures > 0
        && status
            .last_error
            .as_ref()
            .is_some_and(|e| e.message.contains(says))
}

#[test]
fn readable_key_file_warns_once() {
    support::isolated(
        "secrets::readable_key_file_warns_once",
        readable_key_warns_once,
    );
}

/// A key file that others, or a group the server is not in, can read is named in
/// one warning, however often it is reloaded; a private one, or one readable by
/// the server's own group (the packaged layout), is never named.
async fn readable_key_warns_once() {
    let capture = Capture::install();
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new("mode CA");
    let own_gid = fs::metadata(tmp.path()).unwrap().gid();
    let root = own_gid == 0 && fs::metadata("/proc/self").unwrap().uid() == 0;
    let mut cases = vec![
        ("open", 0o644, None, 1),
        ("private", 0o600, None, 0),
        ("own group", 0o640, Some(own_gid), 0),
    ];
    if root {
        // Only root can hand a file to another group (65534: nogroup).
        cases.push(("foreign group", 0o640, Some(65534), 1));
    }
    let mut acceptors = Vec::new();
    for (name, mode, gid, expected) in cases {
        let files = ModeFiles::new(&tmp.path().join(name), mode, gid);
        let tls = files.reloaded_six_times(&ca, name).await;
        acceptors.push((files.key, mode, expected, tls));
    }
    let logs = capture.text();
    for (key, mode, expected, _) in &acceptors {
        let named = key.display().to_string();
        let warnings: Vec<_> = logs
            .lines()
            .filter(|l| {
                l.contains("WARN")
                    && l.contains("readable by group or others")
                    && l.contains(&named)
            })
            .collect();
        println!(
            "key mode {mode:o}: {} warning(s): {warnings:?}",
            warnings.len()
        );
        assert_eq!(warnings.len(), *expected, "mode {mode:o}, log:\n{logs}");
    }
}

/// A certificate and a key file written with a given mode and group.
struct ModeFiles {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    mode: u32,
    gid: Option<u32>,
}

impl ModeFiles {
    fn new(dir: &Path, mode: u32, gid: Option<u32>) -> Self {
        fs::create_dir(dir).unwrap();
        Self {
            dir: dir.to_owned(),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            mode,
            gid,
        }
    }

    /// Writes `leaf`: the certificate by rename, the key by rename of a file that
    /// has the mode and group already.
    fn write(&self, leaf: &Leaf) {
        support::write_atomic(&self.cert, &leaf.cert_pem());
        let tmp_key = self.dir.join("key.tmp");
        fs::write(&tmp_key, leaf.key_pem()).unwrap();
        fs::set_permissions(&tmp_key, fs::Permissions::from_mode(self.mode)).unwrap();
        if let Some(gid) = self.gid {
            std::os::unix::fs::chown(&tmp_key, None, Some(gid)).unwrap();
        }
        fs::rename(&tmp_key, &self.key).unwrap();
    }

    /// An acceptor on these files, reloaded by the poller and by reload_now,
    /// three times each, with new files each time.
    async fn reloaded_six_times(&self, ca: &Ca, name: &str) -> ReloadingAcceptor {
        self.write(&ca.leaf(name));
        let tls = ReloadingAcceptor::builder()
            .identity(&self.cert, &self.key)
            .poll_interval(INTERVAL)
            .build()
            .unwrap();
        for _ in 0..3 {
            let leaf = ca.leaf(name);
            self.write(&leaf);
            support::wait_status(&tls, "the status", |s| {
                s.certificate.as_ref().unwrap().serial == leaf.serial
            })
            .await;
        }
        for _ in 0..3 {
            let leaf = ca.leaf(name);
            self.write(&leaf);
            let _ = tls.reload_now().unwrap();
            assert_eq!(tls.status().certificate.unwrap().serial, leaf.serial);
        }
        assert!(tls.status().reloads >= 6);
        tls
    }
}
