//! What only the FIPS suite needs, on top of the shared `tests/support`: the
//! run-or-skip decision, the suite's passphrase and encrypted keys, fixtures made
//! by the system `openssl` CLI, a client that reports the negotiated protocol and
//! cipher suite, and a server already serving an encrypted key.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use openssl::error::ErrorStack;
use openssl::ssl::{SslConnector, SslConnectorBuilder, SslMethod, SslVersion};
use openssl::symm::Cipher;
use openssl_reload::{Passphrase, ReloadingAcceptor};

use crate::support::{exchange, serve, Ca, Leaf, Server, INTERVAL};

/// The passphrase of every encrypted fixture.
pub(crate) const PASS: &str = "correct horse battery staple";

/// The subject of the suite's CA.
const CA_NAME: &str = "openssl-reload FIPS test CA";

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
    match READY.get_or_init(enable_from_conf) {
        Ok(()) => true,
        Err(reason) => {
            skip_or_fail(test, reason);
            false
        }
    }
}

/// Enables FIPS mode if `OPENSSL_CONF` names a FIPS configuration; the reason not
/// otherwise. Panics if the configuration is there but `fips::enable()` fails.
fn enable_from_conf() -> Result<(), String> {
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
}

/// Panics if this run must not skip; otherwise says once why every test skips.
fn skip_or_fail(test: &str, reason: &str) {
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
}

/// Skips the calling test (returns early) unless the process is in FIPS mode.
macro_rules! require_fips {
    ($name:expr) => {
        if !$crate::fixture::fips($name) {
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

/// The suite's CA: ECDSA P-256 with SHA-256, minted by the shared `tests/support`
/// (whose defaults are FIPS algorithms) in this process, in FIPS mode.
pub(crate) fn fips_ca() -> Ca {
    Ca::new(CA_NAME)
}

/// A P-256 leaf for localhost from the suite's CA.
pub(crate) fn fips_leaf(ca: &Ca) -> Leaf {
    ca.leaf("localhost")
}

/// The key encrypted the FIPS way.
pub(crate) trait EncryptedKey {
    /// The key as encrypted PKCS#8 PEM, encrypted in this (FIPS) process by the
    /// openssl crate: PBES2, PBKDF2 with OpenSSL's default PRF, AES-256-CBC.
    fn key_pem_pkcs8_aes256(&self) -> Vec<u8>;
}

impl EncryptedKey for Leaf {
    fn key_pem_pkcs8_aes256(&self) -> Vec<u8> {
        self.key
            .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), PASS.as_bytes())
            .unwrap()
    }
}

/// Writes `leaf` as `cert.pem` and `key.pem` in `dir` (the key encrypted with
/// [`PASS`] when `encrypted`) and returns their paths.
pub(crate) fn write_leaf(dir: &Path, leaf: &Leaf, encrypted: bool) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    fs::write(&cert, leaf.cert_pem()).unwrap();
    let key_pem = if encrypted {
        leaf.key_pem_pkcs8_aes256()
    } else {
        leaf.key_pem()
    };
    fs::write(&key, key_pem).unwrap();
    (cert, key)
}

/// An acceptor on `cert` and an encrypted `key` (passphrase [`PASS`]).
pub(crate) fn encrypted_acceptor(cert: &Path, key: &Path) -> ReloadingAcceptor {
    ReloadingAcceptor::builder()
        .identity(cert, key)
        .passphrase(Passphrase::from_bytes(PASS))
        .poll_interval(INTERVAL)
        .build()
        .unwrap()
}

// ---- the openssl CLI ----------------------------------------------------------------

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

    /// Connects to `server`, completes the handshake and checks the server's echo.
    pub(crate) async fn handshake(&self, server: &Server) -> Result<Handshake, String> {
        let seen = exchange(&self.connector, server.addr, None).await?;
        if seen.serial.is_empty() {
            return Err("no server certificate".to_owned());
        }
        if seen.cipher.is_empty() {
            return Err("no cipher".to_owned());
        }
        if !seen.reply.ends_with(" ping\n") {
            return Err(format!("unexpected reply {:?}", seen.reply));
        }
        Ok(Handshake {
            serial: seen.serial,
            version: seen.version,
            cipher: seen.cipher,
        })
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
        let ca = fips_ca();
        let first = fips_leaf(&ca);
        let (cert, key) = write_leaf(dir, &first, true);
        let tls = encrypted_acceptor(&cert, &key);
        let server = serve(tls.clone()).await;
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
