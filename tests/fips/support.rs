//! Helpers for the FIPS suite: the run-or-skip decision, certificates minted with
//! FIPS algorithms in this process, fixtures made by the system `openssl` CLI,
//! a loopback TLS server and client, and deadline loops.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{Ssl, SslConnector, SslConnectorBuilder, SslMethod, SslVersion};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509Name, X509};
use openssl_reload::ReloadingAcceptor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_openssl::SslStream;

/// The poll interval of every reloader in the suite.
pub(crate) const INTERVAL: Duration = Duration::from_millis(20);
/// How long a test waits for something that should happen within a tick or two.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);
/// The passphrase of every encrypted fixture.
pub(crate) const PASS: &str = "correct horse battery staple";

/// Set by `ci/fips.sh`: this run is the FIPS suite, so skipping is an error.
const REQUIRED_ENV: &str = "OPENSSL_RELOAD_FIPS_REQUIRED";

/// Whether this test runs: `true` once the process is in FIPS mode.
///
/// The suite needs `OPENSSL_CONF` naming a FIPS configuration (what
/// `ci/fips-provider.sh` prints) from the start of the process, because OpenSSL
/// reads it once, at initialisation; `ci/fips.sh` sets it. Without one the test
/// prints why and returns `false` (skip), except that it fails when this run must
/// not skip: under `OPENSSL_RELOAD_FIPS_REQUIRED=1` (set by `ci/fips.sh`), or under
/// `CI` when no `ci/fips.sh` is there to run the suite afterwards (`ci/test.sh`
/// runs the plain `cargo test --features fips` first, without a provider, then
/// `ci/fips.sh`).
///
/// With a FIPS configuration, `fips::enable()` must succeed: a broken provider
/// fails every test rather than skipping it.
pub(crate) fn fips(test: &str) -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let conf = std::env::var_os("OPENSSL_CONF").ok_or_else(|| {
            "OPENSSL_CONF is not set; run ci/fips.sh, or set OPENSSL_CONF to the \
             openssl-fips.cnf that ci/fips-provider.sh prints"
                .to_owned()
        })?;
        let text = fs::read_to_string(&conf)
            .map_err(|e| format!("OPENSSL_CONF={}: {e}", Path::new(&conf).display()))?;
        if !text.to_ascii_lowercase().contains("fips") {
            return Err(format!(
                "OPENSSL_CONF={} does not configure a fips provider",
                Path::new(&conf).display()
            ));
        }
        // A FIPS configuration is given: from here on failing is a real failure.
        if let Err(e) = openssl_reload::fips::enable() {
            panic!(
                "OPENSSL_CONF={} names a FIPS configuration, but fips::enable() failed: {e}",
                Path::new(&conf).display()
            );
        }
        Ok(())
    });
    match ready {
        Ok(()) => true,
        Err(reason) => {
            let required = std::env::var_os(REQUIRED_ENV).is_some_and(|v| v == "1");
            let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
            let suite_runs_later = is_executable(&repo().join("ci/fips.sh"));
            if required || (ci && !suite_runs_later) {
                panic!(
                    "the FIPS suite must not be skipped here ({}): {reason}",
                    if required {
                        format!("{REQUIRED_ENV}=1")
                    } else {
                        "CI is set and there is no ci/fips.sh to run it".to_owned()
                    }
                );
            }
            // Straight to the process's stderr: libtest hides what eprintln! prints
            // from a passing test. Once per run, naming the first test skipped.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "\nFIPS suite: not in FIPS mode, every test skips ({test} first): {reason}"
                );
            });
            false
        }
    }
}

/// Skips the calling test (returns early) unless the process is in FIPS mode.
macro_rules! require_fips {
    ($name:expr) => {
        if !$crate::support::fips($name) {
            return;
        }
    };
}
pub(crate) use require_fips;

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---- certificates ---------------------------------------------------------------

static SERIAL: AtomicU32 = AtomicU32::new(1);

/// A fresh ECDSA P-256 key (FIPS 186-4 key generation in the fips provider).
pub(crate) fn p256() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

fn serial() -> BigNum {
    // Unique in this run and unlike any other run's, in whatever order tests run.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let n = (now % 1_000_000) * 1_000_000 + u64::from(SERIAL.fetch_add(1, Ordering::SeqCst));
    BigNum::from_dec_str(&n.to_string()).unwrap()
}

fn name(cn: &str) -> X509Name {
    let mut n = X509Name::builder().unwrap();
    n.append_entry_by_text("CN", cn).unwrap();
    n.build()
}

/// A CA, ECDSA P-256 with SHA-256, that issues server certificates for localhost.
pub(crate) struct Ca {
    pub(crate) cert: X509,
    key: PKey<Private>,
}

/// A server certificate and its key.
pub(crate) struct Leaf {
    pub(crate) cert: X509,
    pub(crate) key: PKey<Private>,
    /// Upper-case hex, as `CertificateInfo::serial` and [`Handshake::serial`] print it.
    pub(crate) serial: String,
}

impl Ca {
    pub(crate) fn new() -> Self {
        let key = p256();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let n = name("openssl-reload FIPS test CA");
        b.set_subject_name(&n).unwrap();
        b.set_issuer_name(&n).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_serial_number(&serial().to_asn1_integer().unwrap())
            .unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()
                .unwrap(),
        )
        .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        Self {
            cert: b.build(),
            key,
        }
    }

    /// A P-256 server certificate for localhost and 127.0.0.1, signed ECDSA-SHA256.
    pub(crate) fn leaf(&self) -> Leaf {
        let key = p256();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name("localhost")).unwrap();
        b.set_issuer_name(self.cert.subject_name()).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_serial_number(&serial().to_asn1_integer().unwrap())
            .unwrap();
        // An hour back, so that clock granularity never makes it not yet valid.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        b.set_not_before(&Asn1Time::from_unix(now - 3600).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        let ctx = b.x509v3_context(Some(&self.cert), None);
        let san = SubjectAlternativeName::new()
            .dns("localhost")
            .ip("127.0.0.1")
            .build(&ctx)
            .unwrap();
        b.append_extension(san).unwrap();
        b.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap())
            .unwrap();
        b.sign(&self.key, MessageDigest::sha256()).unwrap();
        let cert = b.build();
        let serial = serial_of(&cert);
        Leaf { cert, key, serial }
    }
}

fn serial_of(cert: &openssl::x509::X509Ref) -> String {
    cert.serial_number()
        .to_bn()
        .unwrap()
        .to_hex_str()
        .unwrap()
        .to_string()
}

impl Leaf {
    pub(crate) fn cert_pem(&self) -> Vec<u8> {
        self.cert.to_pem().unwrap()
    }

    /// The key as unencrypted PKCS#8 PEM.
    pub(crate) fn key_pem(&self) -> Vec<u8> {
        self.key.private_key_to_pem_pkcs8().unwrap()
    }

    /// The key as encrypted PKCS#8 PEM, encrypted in this (FIPS) process by the
    /// openssl crate: PBES2, PBKDF2 with OpenSSL's default PRF, AES-256-CBC.
    pub(crate) fn key_pem_pkcs8_aes256(&self) -> Vec<u8> {
        self.key
            .private_key_to_pem_pkcs8_passphrase(
                openssl::symm::Cipher::aes_256_cbc(),
                PASS.as_bytes(),
            )
            .unwrap()
    }
}

// ---- files ------------------------------------------------------------------------

/// Replaces `path` atomically (write a temporary file, rename it over), as
/// deployment tools do.
pub(crate) fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp~");
    fs::write(&tmp, bytes).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// Runs the system `openssl` CLI, either under this process's FIPS configuration
/// (`fips = true`) or with OpenSSL's ordinary defaults (`OPENSSL_CONF` and
/// `OPENSSL_MODULES` removed), and panics with its output if it fails.
pub(crate) fn openssl_cli<I, S>(fips: bool, args: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new("openssl");
    command.args(args);
    if !fips {
        command
            .env_remove("OPENSSL_CONF")
            .env_remove("OPENSSL_MODULES");
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run the openssl CLI (install openssl): {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

// ---- TLS over loopback --------------------------------------------------------------

/// A loopback server that completes a handshake with every client through the
/// reloading acceptor, writes `ok\n` and closes.
pub(crate) struct Server {
    pub(crate) addr: std::net::SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    pub(crate) async fn start(tls: ReloadingAcceptor) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let tls = tls.clone();
                tokio::spawn(async move {
                    if let Ok(mut stream) = tls.accept(tcp).await {
                        let _ = stream.write_all(b"ok\n").await;
                        let _ = stream.shutdown().await;
                    }
                });
            }
        });
        Self { addr, task }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a client saw of a completed handshake.
#[derive(Debug)]
pub(crate) struct Handshake {
    /// The server certificate's serial, upper-case hex.
    pub(crate) serial: String,
    /// e.g. `TLSv1.3`.
    pub(crate) version: &'static str,
    /// OpenSSL's name of the negotiated cipher suite, e.g. `TLS_AES_256_GCM_SHA384`.
    pub(crate) cipher: &'static str,
}

/// A TLS client that trusts the test CA and checks the name `localhost`.
pub(crate) struct Client {
    connector: SslConnector,
}

impl Client {
    pub(crate) fn new(ca: &Ca) -> Self {
        Self::with(ca, |_| Ok(())).unwrap()
    }

    /// A client configured further by `configure` (protocol versions, cipher
    /// suites); its error is returned.
    pub(crate) fn with(
        ca: &Ca,
        configure: impl FnOnce(&mut SslConnectorBuilder) -> Result<(), ErrorStack>,
    ) -> Result<Self, ErrorStack> {
        let mut b = SslConnector::builder(SslMethod::tls_client())?;
        b.cert_store_mut().add_cert(ca.cert.clone())?;
        b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
        configure(&mut b)?;
        Ok(Self {
            connector: b.build(),
        })
    }

    /// Connects to `server`, completes the handshake and reads the server's `ok`.
    pub(crate) async fn handshake(&self, server: &Server) -> Result<Handshake, String> {
        let tcp = TcpStream::connect(server.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let ssl: Ssl = self
            .connector
            .configure()
            .and_then(|c| c.into_ssl("localhost"))
            .map_err(|e| format!("client SSL: {e}"))?;
        let mut stream = SslStream::new(ssl, tcp).map_err(|e| format!("client stream: {e}"))?;
        std::pin::Pin::new(&mut stream)
            .connect()
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let ssl = stream.ssl();
        let peer = ssl.peer_certificate().ok_or("no server certificate")?;
        let serial = serial_of(&peer);
        let version = ssl.version_str();
        let cipher = ssl.current_cipher().ok_or("no cipher")?.name();
        let mut reply = Vec::new();
        stream
            .read_to_end(&mut reply)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if reply != b"ok\n" {
            return Err(format!("unexpected reply {reply:?}"));
        }
        Ok(Handshake {
            serial,
            version,
            cipher,
        })
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after [`DEADLINE`].
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(INTERVAL / 2).await;
    }
}

/// A server on `cert.pem` and `key.pem` in `dir`: a fresh leaf whose key is
/// PBKDF2/AES-256 encrypted with [`PASS`], checked to be served before returning.
pub(crate) struct Serving {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) ca: Ca,
    pub(crate) first: Leaf,
    pub(crate) tls: ReloadingAcceptor,
    pub(crate) server: Server,
    pub(crate) client: Client,
}

impl Serving {
    pub(crate) async fn start(dir: &Path) -> Self {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let ca = Ca::new();
        let first = ca.leaf();
        fs::write(&cert, first.cert_pem()).unwrap();
        fs::write(&key, first.key_pem_pkcs8_aes256()).unwrap();
        let tls = ReloadingAcceptor::builder(&cert, &key)
            .passphrase(openssl_reload::Passphrase::from_bytes(PASS))
            .poll_interval(INTERVAL)
            .build()
            .unwrap();
        let server = Server::start(tls.clone()).await;
        let client = Client::new(&ca);
        assert_eq!(
            client.handshake(&server).await.unwrap().serial,
            first.serial
        );
        Self {
            cert,
            key,
            ca,
            first,
            tls,
            server,
            client,
        }
    }
}
