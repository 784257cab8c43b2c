//! The client side: a reloading `SslConnector` for node-to-node mutual TLS.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use openssl::error::ErrorStack;
use openssl::ssl::{ConnectConfiguration, SslConnector, SslContextBuilder, SslMethod};
use openssl::x509::store::X509StoreBuilder;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_openssl::SslStream;

use crate::acceptor::{Policy, DEFAULT_POLL_INTERVAL, MIN_POLL_INTERVAL};
use crate::material::{IdentityFiles, Material, Sources};
use crate::reload::{Build, Engine};
use crate::watch::Poller;
use crate::{CertificateStatus, Error, Passphrase, Reload, ValidityPolicy};

/// A TLS client whose client certificate, key and CA bundle follow the files on disk.
///
/// Every connection is configured from the [`SslConnector`] published last: one
/// atomic load, no I/O, no lock. Server names (DNS or IP) are verified by default,
/// as `SslConnector::configure` does.
///
/// Built by [`ReloadingConnector::builder`]. Cheap to clone; the poller thread stops
/// when the last clone is dropped.
#[derive(Clone)]
pub struct ReloadingConnector {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<Engine<SslConnector>>,
    _poller: Poller,
}

impl ReloadingConnector {
    /// Starts a builder. With neither [`identity`](ReloadingConnectorBuilder::identity)
    /// nor [`ca`](ReloadingConnectorBuilder::ca) it is a plain client trusting the
    /// system's default CA paths.
    pub fn builder() -> ReloadingConnectorBuilder {
        ReloadingConnectorBuilder {
            sources: Sources::new(),
            poll_interval: DEFAULT_POLL_INTERVAL,
            allow_missing_at_start: false,
            policy: Arc::new(|_| Ok(())),
        }
    }

    /// The connector in service right now.
    pub fn connector(&self) -> Arc<SslConnector> {
        self.current().load_full()
    }

    fn current(&self) -> &ArcSwap<SslConnector> {
        self.inner.engine.current()
    }

    /// A configuration for one new connection from the current material, with
    /// hostname (or IP address) verification on.
    ///
    /// # Errors
    ///
    /// OpenSSL's error from `SSL_new`.
    pub fn configure(&self) -> Result<ConnectConfiguration, ErrorStack> {
        self.current().load().configure()
    }

    /// Connects over `stream` with tokio-openssl, verifying that the server's
    /// certificate is valid for `domain` (a DNS name or an IP address).
    ///
    /// # Errors
    ///
    /// The handshake's error (`SSL_connect`), including a verification failure,
    /// as an `io::Error` whose source is the `openssl::ssl::Error`; `InvalidInput`
    /// for a `domain` with a NUL byte.
    pub async fn connect<S>(&self, domain: &str, stream: S) -> io::Result<SslStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if domain.contains('\0') {
            // The openssl crate's `set_hostname` would unwrap a CString of it.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "server name contains a NUL byte",
            ));
        }
        let ssl = self
            .configure()
            .and_then(|c| c.into_ssl(domain))
            .map_err(io::Error::other)?;
        let mut stream = SslStream::new(ssl, stream).map_err(io::Error::other)?;
        std::pin::Pin::new(&mut stream)
            .connect()
            .await
            .map_err(|e| match e.into_io_error() {
                Ok(io) => io,
                Err(tls) => io::Error::other(tls),
            })?;
        Ok(stream)
    }

    /// A snapshot of what is in service and how reloading went.
    pub fn status(&self) -> CertificateStatus {
        self.inner.engine.status()
    }

    /// A receiver that sees every change of [`status`](Self::status).
    pub fn subscribe(&self) -> watch::Receiver<CertificateStatus> {
        self.inner.engine.subscribe()
    }

    /// Reads and, if the content changed, publishes the files right now.
    ///
    /// # Errors
    ///
    /// The reason the files were not published; the previous material stays in service.
    pub fn reload_now(&self) -> Result<Reload, Error> {
        self.inner.engine.reload_now()
    }
}

impl fmt::Debug for ReloadingConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingConnector")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// Configures a [`ReloadingConnector`].
#[must_use]
pub struct ReloadingConnectorBuilder {
    sources: Sources,
    poll_interval: Duration,
    allow_missing_at_start: bool,
    policy: Policy,
}

impl ReloadingConnectorBuilder {
    /// The client certificate chain and key presented to servers that ask for one.
    pub fn identity(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.sources.identity = Some(IdentityFiles::Pair {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// The client identity from a PKCS#12 bundle.
    pub fn identity_pkcs12(mut self, path: impl Into<PathBuf>) -> Self {
        self.sources.identity = Some(IdentityFiles::Pkcs12(path.into()));
        self
    }

    /// Where the passphrase of an encrypted key or PKCS#12 bundle comes from.
    pub fn passphrase(mut self, passphrase: Passphrase) -> Self {
        self.sources.passphrase = passphrase;
        self
    }

    /// Trusts only the CAs in this PEM bundle (instead of the system's), watched and
    /// reloaded like the certificate.
    pub fn ca(mut self, ca: impl Into<PathBuf>) -> Self {
        self.sources.ca = Some(ca.into());
        self
    }

    /// Whether the client certificate must also chain to the CA bundle (the one
    /// that verifies servers) before it is published (default `false`; turn it on
    /// for clusters where one CA signs every node). The chain file's own order is
    /// checked either way.
    pub fn check_chain_against_ca(mut self, check: bool) -> Self {
        self.sources.chain_to_ca = check;
        self
    }

    /// Start even when the initial files are missing or invalid (default `false`:
    /// [`build`](Self::build) returns the error). Until valid files appear, connections fail
    /// and [`status`](ReloadingConnector::status) shows the error; the files are adopted
    /// as soon as they are valid, as with any reload.
    pub fn allow_missing_at_start(mut self, allow: bool) -> Self {
        self.allow_missing_at_start = allow;
        self
    }

    /// How often the files are checked (default 1 s).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(MIN_POLL_INTERVAL);
        self
    }

    /// What to do with a client certificate outside its validity period.
    pub fn validity(mut self, policy: ValidityPolicy) -> Self {
        self.sources.validity = policy;
        self
    }

    /// The largest file the crate will read.
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        self.sources.max_file_size = bytes;
        self
    }

    /// The TLS policy (protocol floor, ALPN protocols, ciphers, ...), applied to
    /// every connector built, on top of `SslConnector::builder`'s defaults.
    pub fn policy<F>(mut self, policy: F) -> Self
    where
        F: Fn(&mut SslContextBuilder) -> Result<(), ErrorStack> + Send + Sync + 'static,
    {
        self.policy = Arc::new(policy);
        self
    }

    /// Loads and validates the files and starts the poller.
    ///
    /// # Errors
    ///
    /// Any problem with the initial material, an error from the policy, or a failure
    /// to spawn the poller thread.
    pub fn build(self) -> Result<ReloadingConnector, Error> {
        let policy = self.policy;
        let pinned = self.sources.ca.is_some();
        let build: Build<SslConnector> =
            Box::new(move |material: &Material| client_connector(&policy, pinned, material));
        let engine = Arc::new(Engine::start(
            "connector",
            self.sources,
            self.poll_interval,
            build,
            self.allow_missing_at_start,
        )?);
        let poll_engine = Arc::clone(&engine);
        let poller = Poller::spawn(self.poll_interval, move || poll_engine.poll())
            .map_err(|source| Error::Thread { source })?;
        Ok(ReloadingConnector {
            inner: Arc::new(Inner {
                engine,
                _poller: poller,
            }),
        })
    }
}

impl fmt::Debug for ReloadingConnectorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingConnectorBuilder")
            .field("sources", &self.sources)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

/// `pinned`: a CA bundle is configured, so the system's CAs must never be trusted,
/// not even while the bundle is missing at start-up.
fn client_connector(
    policy: &Policy,
    pinned: bool,
    material: &Material,
) -> Result<SslConnector, Error> {
    let mut builder = SslConnector::builder(SslMethod::tls_client())?;
    policy(&mut builder)?;
    if let Some(identity) = &material.identity {
        identity.install(&mut builder)?;
    }
    match material.ca_store()? {
        Some(store) => builder.set_cert_store(store),
        None if pinned => builder.set_cert_store(X509StoreBuilder::new()?.build()),
        None => {}
    }
    Ok(builder.build())
}
