//! One table-driven test of every fault a writer or an operator can cause.
//!
//! Each case starts a server with a good certificate, applies its fault to the
//! files on disk and checks that:
//! - the old certificate is still served, and the status still names it;
//! - the status shows one clear error that names the faulty file;
//! - the process neither panics nor spins: over about a second with the fault in
//!   place the whole process uses well under half a core, and the poller retries
//!   with a back-off instead of at every tick;
//! - service recovers once good files return (the original files first, then a
//!   new certificate, which must be served).
//!
//! The matrix runs in a child process of its own (see [`support::isolated`]) so that
//! the CPU it measures is its own, not that of the tests running beside it.
//! Set `OPENSSL_RELOAD_FAULT_CASES="empty file|wrong passphrase"` to run some rows.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use openssl::ssl::SslConnector;
use openssl::symm::Cipher;
use openssl_reload::{
    CertificateStatus, ClientAuth, Passphrase, ReloadingAcceptor, DEFAULT_MAX_FILE_SIZE,
};

use crate::support::{self, Ca, Leaf, LeafSpec, DEADLINE, INTERVAL};

/// Which rows to run, `|`-separated names; all when unset.
const CASES_ENV: &str = "OPENSSL_RELOAD_FAULT_CASES";
const PASSPHRASE: &[u8] = b"fault-matrix passphrase";
/// How long the CPU use is watched while the fault is on disk.
const CPU_WINDOW: Duration = Duration::from_secs(1);
/// Over [`CPU_WINDOW`] the poller ticks about 50 times; with the back-off a
/// failing load is retried about log2(50) times.
const MAX_RETRIES_IN_WINDOW: u64 = 12;

/// How a case's server is configured.
#[derive(Clone, Copy, Default)]
struct Setup {
    /// Keys are encrypted, and the server has the passphrase.
    passphrase: bool,
    /// The server verifies clients against `ca.pem` (and so checks its own chain).
    client_ca: bool,
    /// The certificate directory's name is not UTF-8.
    non_utf8: bool,
}

/// Which file the error must name.
#[derive(Clone, Copy)]
enum Names {
    Cert,
    Key,
    Ca,
}

struct Case {
    name: &'static str,
    setup: Setup,
    fault: fn(&Fixture),
    /// Puts back what a plain rewrite of the files cannot replace (a directory,
    /// a mode), before the good files return.
    undo: Option<fn(&Fixture)>,
    names: Names,
    /// A piece of the error message that tells this fault from the others.
    says: &'static str,
    /// Needs a process that file permissions apply to (root bypasses them).
    unprivileged: bool,
}

impl Case {
    fn new(name: &'static str, fault: fn(&Fixture), names: Names, says: &'static str) -> Self {
        Self {
            name,
            setup: Setup::default(),
            fault,
            undo: None,
            names,
            says,
            unprivileged: false,
        }
    }
    fn setup(mut self, setup: Setup) -> Self {
        self.setup = setup;
        self
    }
    fn undo(mut self, undo: fn(&Fixture)) -> Self {
        self.undo = Some(undo);
        self
    }
    fn unprivileged(mut self) -> Self {
        self.unprivileged = true;
        self
    }
}

/// Every row of the matrix, by theme.
fn cases() -> Vec<Case> {
    [
        content_cases(),
        key_cases(),
        file_system_cases(),
        validity_cases(),
        undecodable_cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Certificate files whose bytes are not a certificate.
fn content_cases() -> Vec<Case> {
    vec![
        Case::new(
            "truncated PEM",
            |f| {
                let pem = f.good.cert_pem();
                support::write_atomic(&f.cert, &pem[..pem.len() / 2]);
            },
            Names::Cert,
            "cannot parse certificate chain",
        ),
        Case::new(
            "random garbage",
            |f| {
                let mut junk = vec![0; 4096];
                openssl::rand::rand_bytes(&mut junk).unwrap();
                support::write_atomic(&f.cert, &junk);
            },
            Names::Cert,
            "cannot parse certificate chain",
        ),
        Case::new(
            "empty file",
            |f| support::write_atomic(&f.cert, b""),
            Names::Cert,
            "no certificate found",
        ),
        Case::new("oversized file", oversized, Names::Cert, "larger than the"),
        Case::new(
            "non-UTF-8 path name",
            |f| support::write_atomic(&f.cert, b"-----BEGIN CERTIFICATE-----\nnot base64\n"),
            Names::Cert,
            "cannot parse certificate chain",
        )
        .setup(Setup {
            non_utf8: true,
            ..Setup::default()
        }),
    ]
}

/// Text after the END line is ignored by PEM readers: a valid certificate, but a
/// file over the default 1 MiB cap.
fn oversized(f: &Fixture) {
    let mut pem = f.good.cert_pem();
    pem.resize(DEFAULT_MAX_FILE_SIZE as usize + 1, b'\n');
    support::write_atomic(&f.cert, &pem);
}

/// Keys that do not go with the certificate or cannot be decrypted.
fn key_cases() -> Vec<Case> {
    vec![
        Case::new(
            "key that does not match",
            |f| {
                let other = support::key(support::Alg::P256);
                support::write_atomic(&f.key, &other.private_key_to_pem_pkcs8().unwrap());
            },
            Names::Key,
            "does not match certificate",
        ),
        Case::new(
            "wrong passphrase",
            |f| rotate_encrypted(f, b"not the passphrase"),
            Names::Key,
            "cannot decrypt",
        )
        .setup(Setup {
            passphrase: true,
            ..Setup::default()
        }),
        Case::new(
            "encrypted key, no passphrase configured",
            |f| rotate_encrypted(f, PASSPHRASE),
            Names::Key,
            "is encrypted and no passphrase is configured",
        ),
        Case::new(
            "half-written pair: cert new, key old",
            |f| support::write_atomic(&f.cert, &f.ca.leaf("half").cert_pem()),
            Names::Key,
            "does not match certificate",
        ),
    ]
}

/// Writes a new leaf whose key is encrypted with `passphrase`.
fn rotate_encrypted(f: &Fixture, passphrase: &[u8]) {
    let leaf = f.ca.leaf("rotated");
    support::write_atomic(&f.cert, &leaf.cert_pem());
    support::write_atomic(&f.key, &encrypted_key(&leaf, passphrase));
}

/// Paths that are gone, unreadable, or not regular files.
fn file_system_cases() -> Vec<Case> {
    vec![
        Case::new(
            "file deleted, then restored",
            |f| fs::remove_file(&f.cert).unwrap(),
            Names::Cert,
            "No such file",
        ),
        Case::new(
            "permission denied: key file mode 000",
            |f| chmod(&f.key, 0o000),
            Names::Key,
            "Permission denied",
        )
        .undo(|f| chmod(&f.key, 0o600))
        .unprivileged(),
        Case::new(
            "permission denied: directory mode 000",
            |f| chmod(&f.dir, 0o000),
            Names::Cert,
            "Permission denied",
        )
        .undo(|f| chmod(&f.dir, 0o700))
        .unprivileged(),
        Case::new(
            "path is a directory",
            |f| {
                fs::remove_file(&f.cert).unwrap();
                fs::create_dir(&f.cert).unwrap();
            },
            Names::Cert,
            "Is a directory",
        )
        .undo(|f| fs::remove_dir(&f.cert).unwrap()),
        // An endless file: the read stops at the size cap.
        Case::new(
            "symlink to /dev/zero",
            |f| replace_with_symlink(&f.cert, Path::new("/dev/zero")),
            Names::Cert,
            "larger than the",
        ),
        // Opened without O_NONBLOCK, a FIFO with no writer would block the poller
        // forever; the crate reads it as empty instead.
        Case::new(
            "FIFO with no writer",
            fifo,
            Names::Cert,
            "no certificate found",
        ),
        Case::new(
            "symlink to nowhere",
            |f| replace_with_symlink(&f.cert, Path::new("nowhere.pem")),
            Names::Cert,
            "No such file",
        ),
    ]
}

/// Replaces the certificate by a FIFO that nobody writes to.
fn fifo(f: &Fixture) {
    let tmp = f.dir.join("fifo.tmp");
    let status = std::process::Command::new("mkfifo")
        .arg(&tmp)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo failed");
    fs::rename(&tmp, &f.cert).unwrap();
}

/// Well-formed certificates that fail validation: dates, chain, CA bundle.
fn validity_cases() -> Vec<Case> {
    let with_ca = Setup {
        client_ca: true,
        ..Setup::default()
    };
    vec![
        Case::new(
            "expired certificate",
            |f| f.write_dated("expired", -2 * 86_400, -86_400),
            Names::Cert,
            "expired (notAfter",
        ),
        Case::new(
            "not-yet-valid certificate",
            |f| f.write_dated("future", 86_400, 30 * 86_400),
            Names::Cert,
            "is not yet valid",
        ),
        Case::new(
            "leaf not chaining to the configured CA",
            |f| f.write_pair(&Ca::new("some other CA").leaf("stranger")),
            Names::Cert,
            "does not chain to CA bundle",
        )
        .setup(with_ca),
        Case::new(
            "CA file with no certificate",
            |f| {
                let key_only = support::key(support::Alg::P256)
                    .private_key_to_pem_pkcs8()
                    .unwrap();
                support::write_atomic(&f.ca_file, &key_only);
            },
            Names::Ca,
            "no certificate found",
        )
        .setup(with_ca),
    ]
}

/// Certificates that parse but fail later, when OpenSSL decodes or uses them; the
/// error must still name the file.
fn undecodable_cases() -> Vec<Case> {
    vec![
        // Found by the property test: the certificate parses (OpenSSL decodes the
        // public key lazily) but its key cannot be decoded when it is compared
        // with the private key.
        Case::new(
            "certificate whose public key does not decode",
            bad_public_key,
            Names::Cert,
            "",
        ),
        // Also found by the property test: a notAfter that is no valid time.
        Case::new(
            "certificate with a malformed notAfter",
            bad_not_after,
            Names::Cert,
            "",
        ),
        // A legacy certificate that parses and validates but that OpenSSL's
        // security level refuses to use (SSL_CTX_use_certificate: "ca md too weak").
        Case::new(
            "certificate signed with SHA-1",
            |f| {
                let (cert, key) = sha1_leaf(&f.ca);
                support::write_atomic(&f.cert, &cert);
                write_key(&f.key, &key);
            },
            Names::Cert,
            "",
        ),
    ]
}

/// A leaf whose P-256 point is no valid encoding.
fn bad_public_key(f: &Fixture) {
    let leaf = f.ca.leaf("bad point");
    let mut der = leaf.cert.to_der().unwrap();
    // The P-256 subjectPublicKey: BIT STRING, 66 bytes, 0 unused
    // bits, then the point, uncompressed (0x04). 0x05 is no encoding.
    let at = der
        .windows(4)
        .position(|w| w == [0x03, 0x42, 0x00, 0x04])
        .unwrap();
    der[at + 3] = 0x05;
    support::write_atomic(&f.cert, &der);
    write_key(&f.key, &leaf.key_pem());
}

/// A leaf whose notAfter names month 13.
fn bad_not_after(f: &Fixture) {
    let leaf = f.ca.leaf("bad time");
    let mut der = leaf.cert.to_der().unwrap();
    // Validity is two UTCTimes (tag 0x17, 13 bytes, YYMMDDHHMMSSZ);
    // the second is notAfter. Month 13 does not exist.
    let at = der
        .windows(2)
        .enumerate()
        .filter(|(_, w)| *w == [0x17, 0x0d])
        .nth(1)
        .unwrap()
        .0;
    der[at + 4..at + 6].copy_from_slice(b"13");
    support::write_atomic(&f.cert, &der);
    write_key(&f.key, &leaf.key_pem());
}

/// A P-256 leaf for localhost that `ca` signs with ECDSA-SHA1; PEM cert and key.
fn sha1_leaf(ca: &Ca) -> (Vec<u8>, Vec<u8>) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::x509::extension::SubjectAlternativeName;
    use openssl::x509::{X509Name, X509};

    let key = support::key(support::Alg::P256);
    let mut name = X509Name::builder().unwrap();
    name.append_entry_by_text("CN", "sha1").unwrap();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(0x5a1).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name.build()).unwrap();
    b.set_issuer_name(ca.cert.subject_name()).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .build(&b.x509v3_context(Some(&ca.cert), None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&ca.key, MessageDigest::sha1()).unwrap();
    (
        b.build().to_pem().unwrap(),
        key.private_key_to_pem_pkcs8().unwrap(),
    )
}

#[test]
fn fault_matrix() {
    support::isolated("faults::fault_matrix", run_matrix);
}

async fn run_matrix() {
    let only: Option<Vec<String>> = std::env::var(CASES_ENV)
        .ok()
        .map(|v| v.split('|').map(str::to_owned).collect());
    let root = fs::metadata("/proc/self").unwrap().uid() == 0;
    let mut delegated = Vec::new();
    let mut ran = 0;
    // Every row runs even when one fails; the failures are listed at the end.
    let mut failed = Vec::new();
    for case in cases() {
        if only
            .as_ref()
            .is_some_and(|only| !only.iter().any(|n| n == case.name))
        {
            continue;
        }
        if case.unprivileged && root {
            delegated.push(case.name);
            continue;
        }
        let name = case.name;
        if let Err(e) = tokio::spawn(async move { run_case(&case).await }).await {
            let text = panic_message(e);
            failed.push(if text.starts_with(name) {
                text
            } else {
                format!("{name}: {text}")
            });
        }
        ran += 1;
    }
    if !delegated.is_empty() {
        if let Err(e) = std::panic::catch_unwind(|| run_unprivileged(&delegated)) {
            failed.push(format!("{delegated:?}: {}", panic_text(&*e)));
        }
        ran += delegated.len();
    }
    assert!(ran > 0, "no fault case matched {CASES_ENV}");
    assert!(
        failed.is_empty(),
        "{} of {ran} fault cases failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

fn panic_message(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(payload) => panic_text(&*payload),
        Err(error) => error.to_string(),
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("panicked");
    // The first line says what went wrong; the status dump follows it.
    text.lines().next().unwrap_or_default().to_owned()
}

/// Root reads a file whatever its mode, so the permission rows run in a child
/// process that is not root: this test binary re-executed under `setpriv` as
/// `nobody`, running only those rows. The binary is copied to a world-readable
/// directory first, since the checkout it was built in need not be.
fn run_unprivileged(names: &[&str]) {
    let have_setpriv = std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !have_setpriv {
        // Without a way to drop privileges, root cannot see EACCES; only the
        // mapping of the other I/O errors is covered.
        println!("SKIPPED (running as root, no setpriv to drop privileges): {names:?}");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("it-unprivileged")
        .tempdir_in("/tmp")
        .unwrap();
    chmod(dir.path(), 0o755);
    let exe = dir.path().join("it");
    fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    chmod(&exe, 0o755);
    support::run_isolated(
        "faults::fault_matrix",
        &exe,
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ],
        &[(CASES_ENV, &names.join("|")), ("TMPDIR", "/tmp")],
    );
}

/// A server with a good certificate, and the files behind it.
struct Fixture {
    _tmp: tempfile::TempDir,
    setup: Setup,
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    ca_file: PathBuf,
    ca: Ca,
    good: Leaf,
    tls: ReloadingAcceptor,
    server: support::Server,
    connector: SslConnector,
}

impl Fixture {
    async fn start(setup: Setup) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, cert) = if setup.non_utf8 {
            let dir = tmp.path().join(OsStr::from_bytes(b"certs-\xff\xfe"));
            let cert = dir.join(OsStr::from_bytes(b"cert-\xe9.pem"));
            (dir, cert)
        } else {
            let dir = tmp.path().join("certs");
            (dir.clone(), dir.join("cert.pem"))
        };
        fs::create_dir(&dir).unwrap();
        let key = dir.join("key.pem");
        let ca_file = tmp.path().join("ca.pem");
        let ca = Ca::new("fault CA");
        let good = ca.leaf("good");
        support::write_atomic(&ca_file, &ca.pem());
        write_pair(setup, &cert, &key, &good);

        let mut builder = ReloadingAcceptor::builder()
            .identity(&cert, &key)
            .poll_interval(INTERVAL);
        if setup.passphrase {
            builder = builder.passphrase(Passphrase::from_bytes(PASSPHRASE));
        }
        if setup.client_ca {
            // The opt-in check that the server's chain leads to the client CA
            // bundle too, so that a stranger's leaf is a fault here.
            builder = builder
                .ca(&ca_file)
                .client_auth(ClientAuth::Optional)
                .check_chain_against_ca(true);
        }
        let tls = builder.build().unwrap();
        let server = support::serve(tls.clone()).await;
        let connector = support::client(&ca.pem());
        Self {
            _tmp: tmp,
            setup,
            dir,
            cert,
            key,
            ca_file,
            ca,
            good,
            tls,
            server,
            connector,
        }
    }

    /// Writes `leaf`'s certificate and key (encrypted if the setup says so),
    /// each by rename, the key with mode 0600.
    fn write_pair(&self, leaf: &Leaf) {
        write_pair(self.setup, &self.cert, &self.key, leaf);
    }

    /// Writes a new leaf valid from `not_before` to `not_after` (seconds from now).
    fn write_dated(&self, cn: &str, not_before: i64, not_after: i64) {
        self.write_pair(
            &self
                .ca
                .leaf_with(LeafSpec::new(cn).validity(not_before, not_after)),
        );
    }

    async fn serial(&self) -> String {
        let seen = support::exchange(&self.connector, self.server.addr, None)
            .await
            .unwrap();
        assert!(seen.reply.starts_with("serial="), "reply {:?}", seen.reply);
        seen.serial
    }

    fn path(&self, names: Names) -> &Path {
        match names {
            Names::Cert => &self.cert,
            Names::Key => &self.key,
            Names::Ca => &self.ca_file,
        }
    }
}

async fn run_case(case: &Case) {
    println!("fault: {}", case.name);
    let f = Fixture::start(case.setup).await;
    assert_eq!(
        f.serial().await,
        f.good.serial,
        "{}: good certificate served at start",
        case.name
    );
    let before = f.tls.status();

    (case.fault)(&f);

    let status = fault_reported(&f, case).await;
    old_certificate_kept(&f, case, &status, &before).await;
    no_spinning(&f, case, &before).await;
    recovers(&f, case, &before).await;
}

/// The poller sees the fault within a tick or two and reports it, naming the file.
async fn fault_reported(f: &Fixture, case: &Case) -> CertificateStatus {
    let expected = f.path(case.names).to_owned();
    let status = support::wait_status(&f.tls, case.name, |s| {
        s.last_error
            .as_ref()
            .is_some_and(|e| e.path.as_deref() == Some(&expected) && e.message.contains(case.says))
    })
    .await;
    let error = status.last_error.clone().unwrap();
    println!("  error: {}", error.message);
    assert!(
        error.message.contains(&expected.display().to_string()),
        "{}: the message names the file {}: {}",
        case.name,
        expected.display(),
        error.message
    );
    status
}

/// The old certificate is still in service and still what the status reports.
async fn old_certificate_kept(
    f: &Fixture,
    case: &Case,
    status: &CertificateStatus,
    before: &CertificateStatus,
) {
    for _ in 0..3 {
        assert_eq!(
            f.serial().await,
            f.good.serial,
            "{}: old certificate still served",
            case.name
        );
    }
    assert_eq!(
        status.certificate.as_ref().unwrap().serial,
        f.good.serial,
        "{}",
        case.name
    );
    assert_eq!(
        status.generation, before.generation,
        "{}: nothing was published",
        case.name
    );
    assert!(status.consecutive_failures >= 1, "{}", case.name);
}

/// No spinning: the fault stays on disk for a while; the process stays nearly idle.
async fn no_spinning(f: &Fixture, case: &Case, before: &CertificateStatus) {
    let failures = f.tls.status().failures;
    let (cpu0, wall0) = (support::process_cpu_time(), Instant::now());
    tokio::time::sleep(CPU_WINDOW).await;
    let (cpu, wall) = (support::process_cpu_time() - cpu0, wall0.elapsed());
    let retries = f.tls.status().failures - failures;
    println!(
        "  while faulty: {} ms CPU in {} ms, {retries} retries",
        cpu.as_millis(),
        wall.as_millis()
    );
    assert!(
        cpu < wall / 2,
        "{}: {cpu:?} of CPU in {wall:?}: the process spins",
        case.name
    );
    assert!(
        retries <= MAX_RETRIES_IN_WINDOW,
        "{}: {retries} retries in {wall:?}: a bad file is retried at every tick",
        case.name
    );
    let status = f.tls.status();
    assert_eq!(
        status.certificate.as_ref().unwrap().serial,
        f.good.serial,
        "{}",
        case.name
    );
    assert_eq!(status.generation, before.generation, "{}", case.name);
}

/// Good files return: first the very files in service, then a new certificate.
async fn recovers(f: &Fixture, case: &Case, before: &CertificateStatus) {
    if let Some(undo) = case.undo {
        undo(f);
    }
    f.write_pair(&f.good);
    if case.setup.client_ca {
        support::write_atomic(&f.ca_file, &f.ca.pem());
    }
    support::wait_status(&f.tls, case.name, |s| s.consecutive_failures == 0).await;
    assert_eq!(f.serial().await, f.good.serial, "{}: restored", case.name);

    let next = f.ca.leaf("next");
    f.write_pair(&next);
    let start = Instant::now();
    while f.serial().await != next.serial {
        assert!(
            start.elapsed() < DEADLINE,
            "{}: new certificate not served after recovery",
            case.name
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The status follows the publish (it is never ahead of the handshakes), and
    // the pair written in two renames may fail once in between: wait for it.
    let status = support::wait_status(&f.tls, case.name, |s| {
        s.consecutive_failures == 0 && s.generation > before.generation
    })
    .await;
    assert!(
        status.last_error.is_some(),
        "{}: the last error is kept for the record",
        case.name
    );
}

fn write_pair(setup: Setup, cert: &Path, key: &Path, leaf: &Leaf) {
    support::write_atomic(cert, &leaf.cert_pem());
    let key_pem = if setup.passphrase {
        encrypted_key(leaf, PASSPHRASE)
    } else {
        leaf.key_pem()
    };
    write_key(key, &key_pem);
}

fn encrypted_key(leaf: &Leaf, passphrase: &[u8]) -> Vec<u8> {
    leaf.key
        .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), passphrase)
        .unwrap()
}

fn write_key(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("keytmp");
    fs::write(&tmp, bytes).unwrap();
    chmod(&tmp, 0o600);
    fs::rename(&tmp, path).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Replaces `path` by a symlink to `target` in one rename.
fn replace_with_symlink(path: &Path, target: &Path) {
    let tmp = path.with_extension("linktmp");
    symlink(target, &tmp).unwrap();
    fs::rename(&tmp, path).unwrap();
}
