//! Shared by the benchmarks: certificates minted in-process (by the test support
//! shared with the test suites), Kubernetes-style atomic rotation of a
//! certificate/key pair, and the acceptors and client every strategy is measured
//! with.

// Each bench binary uses a different subset; the items are crate-private anyway.
#![allow(dead_code)]

pub(crate) mod memory;
#[path = "../../tests/support/mod.rs"]
mod support;

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Instant;

use openssl::error::ErrorStack;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    SslAcceptor, SslConnector, SslContextBuilder, SslMethod, SslVerifyMode, SslVersion,
};
use openssl::x509::X509;

use support::{Alg, Leaf, LeafSpec};

/// The session id context the crate sets on every context: the baselines set the
/// same one, so that all strategies are configured alike.
use openssl_reload::SESSION_ID_CONTEXT;

/// The key algorithms of the benchmark's two columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    EcdsaP256,
    Rsa2048,
}

impl KeyKind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ECDSA P-256",
            Self::Rsa2048 => "RSA-2048",
        }
    }

    pub(crate) fn id(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa_p256",
            Self::Rsa2048 => "rsa_2048",
        }
    }

    fn alg(self) -> Alg {
        match self {
            Self::EcdsaP256 => Alg::P256,
            Self::Rsa2048 => Alg::Rsa2048,
        }
    }
}

/// A self-signed server certificate for `localhost` / 127.0.0.1 and its key,
/// minted by the shared test support.
pub(crate) struct Pair {
    pub(crate) cert: X509,
    pub(crate) key: PKey<Private>,
    pub(crate) cert_pem: Vec<u8>,
    pub(crate) key_pem: Vec<u8>,
    /// The serial number, big-endian bytes: what a client compares to tell pairs apart.
    pub(crate) serial: Vec<u8>,
}

impl Pair {
    pub(crate) fn generate(kind: KeyKind, serial: u32) -> Self {
        let spec = LeafSpec::new("localhost").alg(kind.alg()).serial(serial);
        let leaf = Leaf::self_signed(spec);
        Self {
            cert_pem: leaf.cert_pem(),
            key_pem: leaf.key_pem(),
            serial: leaf.cert.serial_number().to_bn().unwrap().to_vec(),
            // Parsed back from its PEM, as a server reads it from a file: an
            // `X509` fresh from `X509Builder` has no cached DER, so OpenSSL would
            // encode it again at every handshake (`i2d_X509` in the Certificate
            // message, ~37,000 instructions) and a static acceptor holding it
            // would pay more than the reloading one, whose certificate is parsed.
            cert: X509::from_pem(&leaf.cert_pem()).unwrap(),
            key: leaf.key,
        }
    }

    /// Writes `cert.pem` and `key.pem` (mode 0600) into `dir`.
    pub(crate) fn write_to(&self, dir: &Path) -> io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        fs::create_dir_all(dir)?;
        fs::write(dir.join("cert.pem"), &self.cert_pem)?;
        let mut key = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(dir.join("key.pem"))?;
        io::Write::write_all(&mut key, &self.key_pem)
    }
}

/// A certificate directory rotated the way Kubernetes updates a secret volume:
/// each version is written into its own directory, then one `rename(2)` of the
/// `current` symlink switches certificate and key together, atomically.
pub(crate) struct Rotator {
    root: PathBuf,
    version: u64,
}

impl Rotator {
    /// Creates `root/current -> v0` holding `pair`.
    pub(crate) fn new(root: &Path, pair: &Pair) -> Self {
        fs::create_dir_all(root).unwrap();
        let rotator = Self {
            root: root.to_owned(),
            version: 0,
        };
        pair.write_to(&rotator.version_dir(0)).unwrap();
        rotator.point_to(&rotator.version_dir(0));
        rotator
    }

    pub(crate) fn cert_path(&self) -> PathBuf {
        self.root.join("current/cert.pem")
    }

    pub(crate) fn key_path(&self) -> PathBuf {
        self.root.join("current/key.pem")
    }

    fn version_dir(&self, version: u64) -> PathBuf {
        self.root.join(format!("v{version}"))
    }

    /// Writes `pair` as a new version and switches `current` to it with one rename;
    /// returns the instant just before that rename. Versions older than the last
    /// three are removed.
    pub(crate) fn install(&mut self, pair: &Pair) -> Instant {
        self.version += 1;
        let dir = self.version_dir(self.version);
        pair.write_to(&dir).unwrap();
        let renamed = self.point_to(&dir);
        if let Some(old) = self.version.checked_sub(3) {
            let _ = fs::remove_dir_all(self.version_dir(old));
        }
        renamed
    }

    /// Switches `current` to an existing directory with one rename (for the
    /// alternating reloads of the memory measurement, which need no new files);
    /// returns the instant just before the rename.
    pub(crate) fn point_to(&self, dir: &Path) -> Instant {
        let tmp = self.root.join("current.tmp");
        let _ = fs::remove_file(&tmp);
        symlink(dir, &tmp).unwrap();
        let renamed = Instant::now();
        fs::rename(&tmp, self.root.join("current")).unwrap();
        renamed
    }

    /// Writes `pair` into the fixed directory `name` (not switched to).
    pub(crate) fn stash(&self, name: &str, pair: &Pair) -> PathBuf {
        let dir = self.root.join(name);
        pair.write_to(&dir).unwrap();
        dir
    }
}

/// Settings every server context of every strategy gets (the crate applies the
/// same ones itself): Mozilla's intermediate profile and the session id context.
pub(crate) fn server_policy(builder: &mut SslContextBuilder) -> Result<(), ErrorStack> {
    builder.set_session_id_context(SESSION_ID_CONTEXT)
}

/// This crate's acceptor over `rotator`'s files, reloaded only by `reload_now`
/// (an hour's poll interval), for measurements that drive every reload.
pub(crate) fn reload_now_acceptor(rotator: &Rotator) -> openssl_reload::ReloadingAcceptor {
    openssl_reload::ReloadingAcceptor::builder()
        .identity(rotator.cert_path(), rotator.key_path())
        .poll_interval(std::time::Duration::from_secs(3600))
        .policy(server_policy)
        .build()
        .unwrap()
}

/// A plain acceptor holding `pair`: the "static" baseline.
pub(crate) fn static_acceptor(pair: &Pair) -> SslAcceptor {
    static_acceptor_with(pair, server_policy)
}

/// [`static_acceptor`] with another policy than [`server_policy`].
pub(crate) fn static_acceptor_with(
    pair: &Pair,
    policy: fn(&mut SslContextBuilder) -> Result<(), ErrorStack>,
) -> SslAcceptor {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
    policy(&mut b).unwrap();
    b.set_certificate(&pair.cert).unwrap();
    b.set_private_key(&pair.key).unwrap();
    b.check_private_key().unwrap();
    b.build()
}

/// Reads a certificate and key from disk and builds a whole new acceptor, as
/// axum-server's `reload_from_pem_file` does for its acceptor-swap reload.
pub(crate) fn acceptor_from_files(cert: &Path, key: &Path) -> Result<SslAcceptor, String> {
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let cert = X509::from_pem(&cert_pem).map_err(|e| e.to_string())?;
    // The callback reader never prompts on a terminal (see clippy.toml).
    let key =
        PKey::private_key_from_pem_callback(&key_pem, |_| Ok(0)).map_err(|e| e.to_string())?;
    let mut b =
        SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(|e| e.to_string())?;
    server_policy(&mut b).map_err(|e| e.to_string())?;
    b.set_certificate(&cert).map_err(|e| e.to_string())?;
    b.set_private_key(&key).map_err(|e| e.to_string())?;
    b.check_private_key().map_err(|e| e.to_string())?;
    Ok(b.build())
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes)
}

/// The client of every measurement: TLS 1.3 only, no certificate verification
/// (the server's CertificateVerify signature is still checked, so a mismatched
/// pair fails), no session reuse unless a session is set explicitly.
pub(crate) fn client() -> SslConnector {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_verify(SslVerifyMode::NONE);
    b.set_min_proto_version(Some(SslVersion::TLS1_3)).unwrap();
    b.set_max_proto_version(Some(SslVersion::TLS1_3)).unwrap();
    b.build()
}

/// [`client`] presenting `pair` as its certificate, for servers that require one.
pub(crate) fn client_with(pair: &Pair) -> SslConnector {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_verify(SslVerifyMode::NONE);
    b.set_min_proto_version(Some(SslVersion::TLS1_3)).unwrap();
    b.set_max_proto_version(Some(SslVersion::TLS1_3)).unwrap();
    b.set_certificate(&pair.cert).unwrap();
    b.set_private_key(&pair.key).unwrap();
    b.build()
}
