//! One builder for both sides. The settings that every reloader shares are
//! here, documented once; [`ReloadingAcceptorBuilder`](crate::ReloadingAcceptorBuilder)
//! and [`ReloadingConnectorBuilder`](crate::ReloadingConnectorBuilder) add what is
//! theirs.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openssl::error::ErrorStack;
use openssl::ssl::SslContextBuilder;

use crate::material::{Checks, IdentityFiles, WatchedFiles};
use crate::reloader::Setup;
use crate::KeyUri;
use crate::{CrlCheck, Passphrase, StaleCrl, ValidityPolicy};

/// The default poll interval: one second.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The shortest poll interval; shorter ones are raised to it so that a zero
/// interval cannot make the poller spin.
pub(crate) const MIN_POLL_INTERVAL: Duration = Duration::from_millis(1);

/// The replayable customisation applied to every context the crate builds.
pub(crate) type Policy =
    Arc<dyn Fn(&mut SslContextBuilder) -> Result<(), ErrorStack> + Send + Sync>;

/// Configures a reloader: `Builder<ServerSide>` is a
/// [`ReloadingAcceptorBuilder`](crate::ReloadingAcceptorBuilder),
/// `Builder<ClientSide>` a [`ReloadingConnectorBuilder`](crate::ReloadingConnectorBuilder).
///
/// ```no_run
/// use openssl_reload::{ClientAuth, Passphrase, ReloadingAcceptor, ReloadingConnector};
///
/// # fn run() -> Result<(), openssl_reload::Error> {
/// let server = ReloadingAcceptor::builder()
///     .identity("/etc/tls/tls.crt", "/etc/tls/tls.key")
///     .ca("/etc/tls/clients-ca.pem")
///     .client_auth(ClientAuth::Required)
///     .build()?;
/// let client = ReloadingConnector::builder()
///     .identity("/etc/tls/node.crt", "/etc/tls/node.key")
///     .passphrase(Passphrase::from_file("/etc/tls/node.pass"))
///     .ca("/etc/tls/cluster-ca.pem")
///     .build()?;
/// # drop((server, client)); Ok(()) }
/// ```
#[must_use]
pub struct Builder<S> {
    pub(crate) files: WatchedFiles,
    pub(crate) checks: Checks,
    pub(crate) poll_interval: Duration,
    pub(crate) allow_missing_at_start: bool,
    pub(crate) policy: Policy,
    pub(crate) side: S,
}

impl<S: Default> Builder<S> {
    pub(crate) fn new() -> Self {
        Self {
            files: WatchedFiles::default(),
            checks: Checks::default(),
            poll_interval: DEFAULT_POLL_INTERVAL,
            allow_missing_at_start: false,
            policy: Arc::new(|_| Ok(())),
            side: S::default(),
        }
    }
}

impl<S> Builder<S> {
    /// The certificate chain in `cert` (PEM, leaf first and each issuer after it,
    /// or one DER certificate) and the private key in `key` (PEM or DER: PKCS#1,
    /// SEC1, PKCS#8, encrypted PKCS#8, traditional encrypted PEM). Both may be
    /// the same file. A server presents it; a client presents it to servers
    /// that ask for a certificate.
    ///
    /// ```no_run
    /// # fn run() -> Result<(), openssl_reload::Error> {
    /// let tls = openssl_reload::ReloadingAcceptor::builder()
    ///     .identity("/etc/tls/tls.crt", "/etc/tls/tls.key")
    ///     .build()?;
    /// # drop(tls); Ok(()) }
    /// ```
    pub fn identity(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.files.identity = Some(IdentityFiles::Pair {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// The certificate chain in `cert` with a private key that stays in
    /// hardware, named by `key` (`pkcs11:…`, or a URI a provider's store
    /// serves). The [`passphrase`](Self::passphrase) is the PIN. The key is
    /// opened once per process and probed every poll; the certificate file
    /// rotates around it and is published only while it matches the key. A
    /// key file holding one such URI line works the same way through
    /// [`identity`](Self::identity). docs/hardware-keys.md has the details.
    ///
    /// ```no_run
    /// # fn run() -> Result<(), openssl_reload::Error> {
    /// use openssl_reload::{KeyUri, Passphrase, ReloadingAcceptor};
    /// let tls = ReloadingAcceptor::builder()
    ///     .identity_uri("/etc/tls/tls.crt", KeyUri::new("pkcs11:token=web;object=tls-key;type=private")?)
    ///     .passphrase(Passphrase::from_file("/etc/tls/pin"))
    ///     .build()?;
    /// # drop(tls); Ok(()) }
    /// ```
    pub fn identity_uri(mut self, cert: impl Into<PathBuf>, key: KeyUri) -> Self {
        self.files.identity = Some(IdentityFiles::Hardware {
            cert: cert.into(),
            key,
        });
        self
    }

    /// The certificate, key and chain from one PKCS#12 bundle, decrypted with the
    /// [`passphrase`](Self::passphrase) (none: the empty password).
    ///
    /// ```no_run
    /// # fn run() -> Result<(), openssl_reload::Error> {
    /// use openssl_reload::{Passphrase, ReloadingAcceptor};
    /// let tls = ReloadingAcceptor::builder()
    ///     .identity_pkcs12("/etc/tls/server.p12")
    ///     .passphrase(Passphrase::from_env("P12_PASSWORD"))
    ///     .build()?;
    /// # drop(tls); Ok(()) }
    /// ```
    pub fn identity_pkcs12(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.identity = Some(IdentityFiles::Pkcs12(path.into()));
        self
    }

    /// The CA bundle (PEM, one or more certificates) that verifies the *peer*:
    /// clients on a server (see
    /// [`client_auth`](crate::ReloadingAcceptorBuilder::client_auth)), servers on a
    /// client, which then trusts these CAs only, never the system's. Watched and
    /// reloaded like the certificate, so a CA rotation through an old+new
    /// overlap bundle works. It is not the CA of this side's own certificate
    /// unless [`check_chain_against_ca`](Self::check_chain_against_ca) says so.
    ///
    /// ```no_run
    /// # fn run() -> Result<(), openssl_reload::Error> {
    /// let client = openssl_reload::ReloadingConnector::builder()
    ///     .ca("/etc/tls/cluster-ca.pem")
    ///     .build()?;
    /// # drop(client); Ok(()) }
    /// ```
    pub fn ca(mut self, ca: impl Into<PathBuf>) -> Self {
        self.files.ca = Some(ca.into());
        self
    }

    /// Certificate revocation lists (a file of one or more PEM CRLs, or one DER
    /// CRL) of the [`ca`](Self::ca) bundle's CAs, checked for every peer
    /// certificate: a revoked client (on a server) or server (on a client) is
    /// refused. Watched with the bundle; each CRL must be signed by a CA of the
    /// bundle it is published with, be past its lastUpdate and not past its
    /// nextUpdate, or the CRLs (and bundle) in service stay. A changed CRL is a
    /// change of trust: sessions verified before it do not resume. With
    /// [`CrlCheck::Leaf`] (the default) the file must hold a CRL of each CA
    /// that issues peers, or their handshakes fail ("unable to get certificate
    /// CRL"). See [`stale_crl`](Self::stale_crl) for a CRL that ages in service.
    ///
    /// Complete CRLs only: a file holding a delta CRL (one with the Delta CRL
    /// Indicator extension) is refused ([`Error::Crl`](crate::Error::Crl)). OpenSSL, unless told to
    /// use deltas, takes a newer delta for a complete CRL, so a delta that does
    /// not repeat a revocation of its base would let that peer in.
    ///
    /// ```no_run
    /// # fn run() -> Result<(), openssl_reload::Error> {
    /// use openssl_reload::{CrlCheck, ReloadingAcceptor};
    /// let tls = ReloadingAcceptor::builder()
    ///     .identity("tls.crt", "tls.key")
    ///     .ca("clients-ca.pem")
    ///     .crl("clients-ca.crl")
    ///     .crl_check(CrlCheck::Leaf)
    ///     .build()?;
    /// # drop(tls); Ok(()) }
    /// ```
    pub fn crl(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.crl = Some(path.into());
        self
    }

    /// Which certificates of a peer's chain the [CRLs](Self::crl) are checked for
    /// (default [`CrlCheck::Leaf`]).
    pub fn crl_check(mut self, check: CrlCheck) -> Self {
        self.checks.crl.check = check;
        self
    }

    /// What a CRL in service that passes its nextUpdate does until a fresh one
    /// is published (default [`StaleCrl::KeepEnforcing`]: it is still enforced,
    /// and a warning is logged once). A policy's own verify callback
    /// (`set_verify_callback`) replaces the crate's and decides alone.
    pub fn stale_crl(mut self, policy: StaleCrl) -> Self {
        self.checks.crl.stale = policy;
        self
    }

    /// Where the passphrase of an encrypted key or PKCS#12 bundle comes from
    /// (default: none, and an encrypted key is an error, never a prompt).
    ///
    /// ```no_run
    /// # fn run() -> Result<(), openssl_reload::Error> {
    /// use openssl_reload::{Passphrase, ReloadingAcceptor};
    /// let tls = ReloadingAcceptor::builder()
    ///     .identity("tls.crt", "tls.key")
    ///     .passphrase(Passphrase::from_file("/run/secrets/tls-pass"))
    ///     .build()?;
    /// # drop(tls); Ok(()) }
    /// ```
    pub fn passphrase(mut self, passphrase: Passphrase) -> Self {
        self.files.passphrase = passphrase;
        self
    }

    /// Whether this side's own certificate must also chain to the
    /// [`ca`](Self::ca) bundle before it is published (default `false`). Turn it
    /// on for clusters where one CA signs every node. The chain file's own order
    /// (each certificate signed by the next) is checked either way.
    pub fn check_chain_against_ca(mut self, check: bool) -> Self {
        self.checks.chain_to_ca = check;
        self
    }

    /// What to do with a certificate outside its validity period (default:
    /// [`ValidityPolicy::Enforce`], refuse it).
    pub fn validity(mut self, policy: ValidityPolicy) -> Self {
        self.checks.validity = policy;
        self
    }

    /// The largest file the crate will read (default
    /// [`DEFAULT_MAX_FILE_SIZE`](crate::DEFAULT_MAX_FILE_SIZE), 1 MiB).
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        self.checks.max_file_size = bytes;
        self
    }

    /// How often the files are checked (default [`DEFAULT_POLL_INTERVAL`], 1 s;
    /// at least 1 ms). Each check is one `stat(2)` per file; files are read only
    /// when their fingerprint changes. A very long interval (up to
    /// `Duration::MAX`) leaves reloading to `reload_now`.
    ///
    /// ```no_run
    /// # fn run() -> Result<(), openssl_reload::Error> {
    /// use std::time::Duration;
    /// let tls = openssl_reload::ReloadingAcceptor::builder()
    ///     .identity("tls.crt", "tls.key")
    ///     .poll_interval(Duration::from_millis(250))
    ///     .build()?;
    /// # drop(tls); Ok(()) }
    /// ```
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(MIN_POLL_INTERVAL);
        self
    }

    /// Start even when the initial files are missing or invalid (default `false`:
    /// `build` returns the error). Until valid files appear, handshakes fail and
    /// the status shows the error; the files are adopted as soon as they are
    /// valid, as with any reload. A client with a [`ca`](Self::ca) trusts nothing
    /// meanwhile, never the system's CAs.
    pub fn allow_missing_at_start(mut self, allow: bool) -> Self {
        self.allow_missing_at_start = allow;
        self
    }

    /// The TLS policy: protocol floor, ciphers, ALPN, verify depth, session
    /// settings. It runs on every context the crate builds, on top of Mozilla's
    /// intermediate profile on a server (`SslAcceptor::mozilla_intermediate_v5`)
    /// and `SslConnector::builder`'s defaults on a client, so it must be
    /// replayable. On a server, settings that `SSL_set_SSL_CTX` does not switch
    /// (verify mode, options, protocol versions) come from the front context,
    /// which the policy configures too; do not install a servername or client
    /// hello callback there, the crate's own are installed after the policy.
    ///
    /// ```no_run
    /// # fn run() -> Result<(), openssl_reload::Error> {
    /// use openssl_reload::openssl::ssl::SslVersion;
    /// let tls = openssl_reload::ReloadingAcceptor::builder()
    ///     .identity("tls.crt", "tls.key")
    ///     .policy(|ctx| ctx.set_min_proto_version(Some(SslVersion::TLS1_3)))
    ///     .build()?;
    /// # drop(tls); Ok(()) }
    /// ```
    pub fn policy<F>(mut self, policy: F) -> Self
    where
        F: Fn(&mut SslContextBuilder) -> Result<(), ErrorStack> + Send + Sync + 'static,
    {
        self.policy = Arc::new(policy);
        self
    }

    /// Reads and parses the files once, as a start would: what `check` builds from.
    pub(crate) fn load_once(&self) -> Result<crate::material::Material, crate::Error> {
        let raw = self.files.read(&self.checks, &mut Default::default())?;
        self.files.parse(raw, &self.checks)
    }

    /// What the reloader core needs to start.
    pub(crate) fn setup(&self, role: &'static str) -> Setup {
        Setup {
            role,
            files: self.files.clone(),
            checks: self.checks.clone(),
            poll_interval: self.poll_interval,
            allow_missing: self.allow_missing_at_start,
            announce: true,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Builder<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("files", &self.files)
            .field("checks", &self.checks)
            .field("poll_interval", &self.poll_interval)
            .field("allow_missing_at_start", &self.allow_missing_at_start)
            .field("side", &self.side)
            .finish_non_exhaustive()
    }
}
