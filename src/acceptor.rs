//! The server side: one fixed front `SslAcceptor` whose servername callback switches
//! every new handshake to the context published last.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openssl::error::ErrorStack;
use openssl::ssl::{
    SniError, Ssl, SslAcceptor, SslAcceptorBuilder, SslAlert, SslContext, SslContextBuilder,
    SslMethod, SslRef, SslVerifyMode,
};
use openssl::stack::Stack;
use openssl::x509::X509StoreContext;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_openssl::SslStream;

use crate::material::{IdentityFiles, Material, Sources};
use crate::reload::{Build, Engine};
use crate::watch::Poller;
use crate::{CertificateInfo, CertificateStatus, Error, Passphrase, Reload, ValidityPolicy};

/// The default poll interval: one second.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The shortest poll interval; shorter ones are raised to it so that a zero
/// interval cannot make the poller spin.
pub(crate) const MIN_POLL_INTERVAL: Duration = Duration::from_millis(1);

/// The session id context set on every context before the policy runs.
///
/// TLS 1.3 tickets and session ids are bound to it; OpenSSL refuses to resume a
/// session of a client that sent a certificate when it is empty. It is the same on
/// the front and every reloaded context, so `SSL_set_SSL_CTX` keeps it.
const SESSION_ID_CONTEXT: &[u8] = b"openssl-reload";

/// The replayable customisation applied to every context the crate builds.
pub(crate) type Policy =
    Arc<dyn Fn(&mut SslContextBuilder) -> Result<(), ErrorStack> + Send + Sync>;

/// Whether and how the server asks clients for a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// A client must present a certificate that chains to the CA bundle.
    Required,
    /// A client may present a certificate; if it does, it must chain to the CA bundle.
    Optional,
}

impl ClientAuth {
    fn verify_mode(self) -> SslVerifyMode {
        match self {
            Self::Required => SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
            Self::Optional => SslVerifyMode::PEER,
        }
    }
}

/// A TLS server acceptor whose certificate, key, chain and client CA bundle follow
/// the files on disk.
///
/// Built by [`ReloadingAcceptor::builder`]. Cheap to clone; the poller thread stops
/// when the last clone is dropped. See the [crate docs](crate) for how it works.
#[derive(Clone)]
pub struct ReloadingAcceptor {
    inner: Arc<Inner>,
}

struct Inner {
    acceptor: SslAcceptor,
    engine: Arc<Engine<Published>>,
    _poller: Poller,
}

/// What the servername callback installs.
pub(crate) struct Published {
    ctx: SslContext,
    /// When it was built, in Unix seconds. A session established before then
    /// was verified against an older CA bundle.
    built_at: i64,
    client_auth: bool,
}

impl Published {
    /// Whether the client certificate of a *resumed* session still chains to the
    /// CA bundle in service.
    ///
    /// OpenSSL decides on resumption before the servername callback runs and skips
    /// client certificate verification for it, so without this check a client
    /// whose CA was dropped from the bundle would keep resuming for the life of
    /// its ticket. Only sessions older than the current context are verified
    /// again; full handshakes and sessions issued since cost nothing here.
    fn trusts_resumed_peer(&self, ssl: &SslRef) -> bool {
        if !self.client_auth || !ssl.session_reused() {
            return true;
        }
        let Some(session) = ssl.session() else {
            return true;
        };
        #[allow(clippy::useless_conversion)] // SslTimeTy is a C long on some targets.
        let issued = i64::from(session.time());
        if issued > self.built_at {
            return true;
        }
        let Some(peer) = ssl.peer_certificate() else {
            // Optional client authentication and no certificate: nothing to trust.
            return true;
        };
        let verify = || -> Result<bool, ErrorStack> {
            let mut chain = Stack::new()?;
            for cert in ssl.peer_cert_chain().into_iter().flatten() {
                chain.push(cert.to_owned())?;
            }
            let mut ctx = X509StoreContext::new()?;
            ctx.init(self.ctx.cert_store(), &peer, &chain, |c| c.verify_cert())
        };
        verify().unwrap_or(false)
    }
}

impl ReloadingAcceptor {
    /// Starts a builder for a server with the certificate chain in `cert` (PEM, leaf
    /// first, or DER) and the private key in `key` (PEM or DER: PKCS#1, SEC1,
    /// PKCS#8, encrypted PKCS#8). Both may be the same file.
    pub fn builder(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> ReloadingAcceptorBuilder {
        ReloadingAcceptorBuilder::new(IdentityFiles::Pair {
            cert: cert.into(),
            key: key.into(),
        })
    }

    /// Starts a builder for a server whose certificate, key and chain come from one
    /// PKCS#12 bundle; its password is the [`passphrase`](ReloadingAcceptorBuilder::passphrase)
    /// (none means the empty password).
    pub fn builder_pkcs12(path: impl Into<PathBuf>) -> ReloadingAcceptorBuilder {
        ReloadingAcceptorBuilder::new(IdentityFiles::Pkcs12(path.into()))
    }

    /// The fixed front acceptor. Use it for every connection, as
    /// `acceptor.accept(tcp)` or `Ssl::new(acceptor.context())`; its servername
    /// callback installs the current certificate in each new handshake.
    pub fn acceptor(&self) -> &SslAcceptor {
        &self.inner.acceptor
    }

    /// The context in service right now: the one the next handshake switches to.
    pub fn current_context(&self) -> SslContext {
        self.inner.engine.current().load().ctx.clone()
    }

    /// A snapshot of what is in service and how reloading went.
    pub fn status(&self) -> CertificateStatus {
        self.inner.engine.status()
    }

    /// A receiver that sees every change of [`status`](Self::status): each publish
    /// and each failed attempt.
    pub fn subscribe(&self) -> watch::Receiver<CertificateStatus> {
        self.inner.engine.subscribe()
    }

    /// Reads and, if the content changed, publishes the files right now, on the
    /// caller's thread, whatever the poller last saw. For SIGHUP handlers and tests.
    ///
    /// # Errors
    ///
    /// The reason the files were not published; the previous material stays in
    /// service, and the error is also recorded in [`status`](Self::status).
    pub fn reload_now(&self) -> Result<Reload, Error> {
        self.inner.engine.reload_now()
    }

    /// Performs a server handshake on `stream` with tokio-openssl.
    ///
    /// # Errors
    ///
    /// The handshake's error (`SSL_accept`).
    pub async fn accept<S>(&self, stream: S) -> Result<SslStream<S>, openssl::ssl::Error>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let ssl = Ssl::new(self.acceptor().context()).map_err(openssl::ssl::Error::from)?;
        let mut stream = SslStream::new(ssl, stream).map_err(openssl::ssl::Error::from)?;
        std::pin::Pin::new(&mut stream).accept().await?;
        Ok(stream)
    }
}

impl fmt::Debug for ReloadingAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingAcceptor")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// Configures a [`ReloadingAcceptor`].
#[must_use]
pub struct ReloadingAcceptorBuilder {
    sources: Sources,
    client_auth: Option<ClientAuth>,
    poll_interval: Duration,
    allow_missing_at_start: bool,
    policy: Policy,
}

impl ReloadingAcceptorBuilder {
    fn new(identity: IdentityFiles) -> Self {
        let mut sources = Sources::new();
        sources.identity = Some(identity);
        Self {
            sources,
            client_auth: None,
            poll_interval: DEFAULT_POLL_INTERVAL,
            allow_missing_at_start: false,
            policy: Arc::new(|_| Ok(())),
        }
    }

    /// Where the passphrase of an encrypted key or PKCS#12 bundle comes from.
    pub fn passphrase(mut self, passphrase: Passphrase) -> Self {
        self.sources.passphrase = passphrase;
        self
    }

    /// Verifies client certificates against the CA bundle in `ca` (PEM, one or more
    /// certificates), which is watched and reloaded like the certificate.
    ///
    /// While a CA is configured the server's own chain must chain to it too; turn
    /// that off with [`check_chain_against_ca`](Self::check_chain_against_ca) when
    /// the server certificate comes from another (e.g. public) CA.
    pub fn client_ca(mut self, ca: impl Into<PathBuf>, auth: ClientAuth) -> Self {
        self.sources.ca = Some(ca.into());
        self.client_auth = Some(auth);
        self
    }

    /// Whether a new certificate must chain to the configured CA bundle before it is
    /// published (default `true`).
    pub fn check_chain_against_ca(mut self, check: bool) -> Self {
        self.sources.chain_to_ca = check;
        self
    }

    /// Start even when the initial files are missing or invalid (default `false`:
    /// [`build`](Self::build) returns the error). Until valid files appear, handshakes fail
    /// and [`status`](ReloadingAcceptor::status) shows the error; the files are adopted
    /// as soon as they are valid, as with any reload.
    pub fn allow_missing_at_start(mut self, allow: bool) -> Self {
        self.allow_missing_at_start = allow;
        self
    }

    /// How often the files are checked (default 1 s, at least 1 ms). Each check is
    /// one `stat(2)` per file; files are read only when their fingerprint changes.
    /// A very long interval (up to `Duration::MAX`) leaves reloading to
    /// [`ReloadingAcceptor::reload_now`].
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(MIN_POLL_INTERVAL);
        self
    }

    /// What to do with a certificate outside its validity period (default: refuse it).
    pub fn validity(mut self, policy: ValidityPolicy) -> Self {
        self.sources.validity = policy;
        self
    }

    /// The largest file the crate will read (default [`DEFAULT_MAX_FILE_SIZE`](crate::DEFAULT_MAX_FILE_SIZE)).
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        self.sources.max_file_size = bytes;
        self
    }

    /// The TLS policy: protocol floor, ciphers, ALPN, verify depth, session settings.
    ///
    /// It runs on the front context and again on every reloaded context, on top of
    /// Mozilla's intermediate profile (`SslAcceptor::mozilla_intermediate_v5`), so it
    /// must be replayable. Settings that `SSL_set_SSL_CTX` does not switch (verify
    /// mode, options, protocol versions) come from the front context; setting them
    /// here keeps both in agreement. Do not install a servername callback: the
    /// crate's own is installed on the front context after the policy runs.
    pub fn policy<F>(mut self, policy: F) -> Self
    where
        F: Fn(&mut SslContextBuilder) -> Result<(), ErrorStack> + Send + Sync + 'static,
    {
        self.policy = Arc::new(policy);
        self
    }

    /// Loads and validates the files once, as [`build`](Self::build) would, and builds
    /// a context from them with the policy; starts nothing. For offline checks
    /// (`openssl-reload check`) and for configuration tests.
    ///
    /// # Errors
    ///
    /// The reason the material would be refused at start-up.
    pub fn check(&self) -> Result<CertificateInfo, Error> {
        let material = self
            .sources
            .parse(self.sources.read(&mut Default::default())?)?;
        server_builder(&self.policy, self.client_auth, &material)?;
        material
            .identity
            .map(|identity| identity.info)
            .ok_or_else(|| ErrorStack::get().into())
    }

    /// Loads and validates the files, builds the front acceptor and starts the poller.
    ///
    /// # Errors
    ///
    /// Any problem with the initial material (unreadable, unparsable, mismatched,
    /// expired, untrusted), an error from the policy, or a failure to spawn the
    /// poller thread ([`Error::Thread`]).
    pub fn build(self) -> Result<ReloadingAcceptor, Error> {
        let policy = self.policy;
        let auth = self.client_auth;
        let build_policy = Arc::clone(&policy);
        let build: Build<Published> = Box::new(move |material: &Material| {
            Ok(Published {
                ctx: server_builder(&build_policy, auth, material)?
                    .build()
                    .into_context(),
                built_at: unix_now(),
                client_auth: auth.is_some(),
            })
        });
        let engine = Arc::new(Engine::start(
            "acceptor",
            self.sources,
            self.poll_interval,
            build,
            self.allow_missing_at_start,
        )?);

        let mut front = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
        apply_defaults(&mut front, auth)?;
        policy(&mut front)?;
        let current = Arc::clone(engine.current());
        front.set_servername_callback(move |ssl, alert| {
            // The whole handshake-path cost of reloading: an atomic load and
            // SSL_set_SSL_CTX (reference counts, no I/O, no lock).
            let published = current.load();
            ssl.set_ssl_context(&published.ctx)
                .map_err(|_| SniError::ALERT_FATAL)?;
            if published.trusts_resumed_peer(ssl) {
                Ok(())
            } else {
                *alert = SslAlert::CERTIFICATE_UNKNOWN;
                Err(SniError::ALERT_FATAL)
            }
        });
        let acceptor = front.build();

        let poll_engine = Arc::clone(&engine);
        let poller = Poller::spawn(self.poll_interval, move || poll_engine.poll())
            .map_err(|source| Error::Thread { source })?;
        Ok(ReloadingAcceptor {
            inner: Arc::new(Inner {
                acceptor,
                engine,
                _poller: poller,
            }),
        })
    }
}

impl fmt::Debug for ReloadingAcceptorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingAcceptorBuilder")
            .field("sources", &self.sources)
            .field("client_auth", &self.client_auth)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

/// Settings every server context gets before the user's policy.
fn apply_defaults(
    builder: &mut SslContextBuilder,
    auth: Option<ClientAuth>,
) -> Result<(), ErrorStack> {
    builder.set_session_id_context(SESSION_ID_CONTEXT)?;
    if let Some(auth) = auth {
        builder.set_verify(auth.verify_mode());
    }
    Ok(())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A server context holding `material`, built the same way as the front context.
pub(crate) fn server_builder(
    policy: &Policy,
    auth: Option<ClientAuth>,
    material: &Material,
) -> Result<SslAcceptorBuilder, Error> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    apply_defaults(&mut builder, auth)?;
    policy(&mut builder)?;
    if let Some(identity) = &material.identity {
        identity.install(&mut builder)?;
    }
    if let (Some(certs), Some(store)) = (&material.ca, material.ca_store()?) {
        builder.set_cert_store(store);
        let mut names = Stack::new()?;
        for cert in certs {
            names.push(cert.subject_name().to_owned()?)?;
        }
        builder.set_client_ca_list(names);
    }
    Ok(builder)
}
