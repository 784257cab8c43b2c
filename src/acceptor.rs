//! The server side: one fixed front `SslAcceptor` whose servername callback switches
//! every new handshake to the context published last.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use openssl::error::ErrorStack;
use openssl::ssl::{
    ClientHelloResponse, SniError, Ssl, SslAcceptor, SslAcceptorBuilder, SslContext,
    SslContextBuilder, SslMethod, SslVerifyMode,
};
use openssl::stack::Stack;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_openssl::SslStream;

use crate::material::{IdentityFiles, Material, Sources};
use crate::reload::{Build, Engine};
use crate::session::{self, TrustId};
use crate::tickets::{KeySource, TicketKeyStatus, TicketKeys};
use crate::watch::Poller;
use crate::{CertificateInfo, CertificateStatus, Error, Passphrase, Reload, ValidityPolicy};

/// The default poll interval: one second.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The shortest poll interval; shorter ones are raised to it so that a zero
/// interval cannot make the poller spin.
pub(crate) const MIN_POLL_INTERVAL: Duration = Duration::from_millis(1);

/// How long [`ReloadingAcceptor::accept`] waits for a handshake by default: 10 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    tickets: Arc<TicketKeys>,
    handshake_timeout: Duration,
    _poller: Poller,
}

/// What the servername callback installs.
pub(crate) struct Published {
    ctx: SslContext,
    /// The CA bundle in `ctx`'s store; sessions it verifies are bound to it.
    trust: TrustId,
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
    ///
    /// A ticket-key file is read again too; its failure is recorded in
    /// [`ticket_keys`](Self::ticket_keys) and does not change the result.
    pub fn reload_now(&self) -> Result<Reload, Error> {
        let _ = self.inner.tickets.reload_now();
        self.inner.engine.reload_now()
    }

    /// How the session ticket keys are doing: in-memory rotation or the ticket-key
    /// file, and the last failure to load it.
    pub fn ticket_keys(&self) -> TicketKeyStatus {
        self.inner.tickets.status()
    }

    /// Performs a server handshake on `stream` with tokio-openssl, giving up after
    /// the [handshake timeout](ReloadingAcceptorBuilder::handshake_timeout). The
    /// timeout needs a runtime with the time driver (`#[tokio::main]` has it).
    ///
    /// # Errors
    ///
    /// The handshake's error (`SSL_accept`) as an `io::Error` whose source is the
    /// `openssl::ssl::Error`, or `TimedOut` when the client took too long.
    pub async fn accept<S>(&self, stream: S) -> io::Result<SslStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let ssl = Ssl::new(self.acceptor().context()).map_err(io::Error::other)?;
        let mut stream = SslStream::new(ssl, stream).map_err(io::Error::other)?;
        let handshake = std::pin::Pin::new(&mut stream).accept();
        let result = if self.inner.handshake_timeout == Duration::MAX {
            handshake.await
        } else {
            tokio::time::timeout(self.inner.handshake_timeout, handshake)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
        };
        result.map_err(|e| match e.into_io_error() {
            Ok(io) => io,
            Err(tls) => io::Error::other(tls),
        })?;
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
    handshake_timeout: Duration,
    ticket_keys: KeySource,
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
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            ticket_keys: KeySource::default(),
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
    /// The bundle names the CAs of the *clients*; the server's own certificate may
    /// come from any CA (a public one, say). A TLS session resumes only while the
    /// bundle that verified its client is in service: after a reload that changes
    /// the bundle's certificates, clients do a full handshake against the new one.
    pub fn client_ca(mut self, ca: impl Into<PathBuf>, auth: ClientAuth) -> Self {
        self.sources.ca = Some(ca.into());
        self.client_auth = Some(auth);
        self
    }

    /// Whether the server's certificate must also chain to the client CA bundle
    /// before it is published (default `false`). Turn it on for clusters where one
    /// CA signs every node. The chain file's own order (each certificate signed by
    /// the next) is checked either way.
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

    /// How long [`ReloadingAcceptor::accept`] waits for a client to complete its
    /// handshake (default [`DEFAULT_HANDSHAKE_TIMEOUT`], 10 s; `Duration::MAX` waits
    /// for ever). It also bounds how long a handshake that began before a reload
    /// can go on with the material it started with.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Rotates the in-memory session ticket keys every `period`, keeping `keys` of
    /// them (at least 1): the newest encrypts new tickets, all decrypt. Default
    /// [`DEFAULT_TICKET_KEY_ROTATION`](crate::DEFAULT_TICKET_KEY_ROTATION) (1 h) and
    /// [`DEFAULT_TICKET_KEYS_KEPT`](crate::DEFAULT_TICKET_KEYS_KEPT) (3), so a ticket
    /// stays usable for two to three hours, longer than OpenSSL's default session
    /// lifetime of two. Replaced by [`ticket_key_file`](Self::ticket_key_file).
    pub fn ticket_key_rotation(mut self, period: Duration, keys: usize) -> Self {
        self.ticket_keys = KeySource::Automatic {
            period: period.max(MIN_POLL_INTERVAL),
            kept: keys.max(1),
        };
        self
    }

    /// Takes the session ticket keys from a file that several servers share, so
    /// that a client resumes on any of them: one key per line, base64 of 80 bytes
    /// (16 name, 32 HMAC-SHA256 key, 32 AES-256 key; make one with
    /// `openssl rand 80 | base64 -w0`). The first line encrypts, every line
    /// decrypts. The file is watched and reloaded like the certificates; a bad
    /// file keeps the keys in service. Whoever writes it rotates the keys.
    pub fn ticket_key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ticket_keys = KeySource::File(path.into());
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
        let tickets = TicketKeys::start(
            self.ticket_keys,
            self.sources.max_file_size,
            self.allow_missing_at_start,
        )?;
        let build_policy = Arc::clone(&policy);
        let build_tickets = Arc::clone(&tickets);
        let build: Build<Published> = Box::new(move |material: &Material| {
            let mut builder = server_builder(&build_policy, auth, material)?;
            build_tickets.attach(&mut builder)?;
            Ok(Published {
                ctx: builder.build().into_context(),
                trust: material
                    .ca
                    .as_deref()
                    .map_or(Ok(TrustId::NONE), TrustId::of)?,
            })
        });
        let engine = Arc::new(Engine::start(
            "acceptor",
            self.sources,
            self.poll_interval,
            build,
            self.allow_missing_at_start,
        )?);
        let acceptor = front_acceptor(&policy, auth, &tickets, engine.current())?;
        let poll_engine = Arc::clone(&engine);
        let poll_tickets = Arc::clone(&tickets);
        let poller = Poller::spawn(self.poll_interval, move || {
            poll_engine.poll();
            poll_tickets.poll();
        })
        .map_err(|source| Error::Thread { source })?;
        Ok(ReloadingAcceptor {
            inner: Arc::new(Inner {
                acceptor,
                engine,
                tickets,
                handshake_timeout: self.handshake_timeout,
                _poller: poller,
            }),
        })
    }
}

/// The fixed front acceptor: the policy, the ticket key callback, and the
/// callbacks that bind sessions to trust and switch each handshake to `current`.
fn front_acceptor(
    policy: &Policy,
    auth: Option<ClientAuth>,
    tickets: &Arc<TicketKeys>,
    current: &Arc<ArcSwap<Published>>,
) -> Result<SslAcceptor, Error> {
    let mut front = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    apply_defaults(&mut front, auth)?;
    policy(&mut front)?;
    tickets.install(&mut front)?;
    if auth.is_some() {
        // Runs before OpenSSL looks the client's session up: only sessions that
        // the bundle in service verified may resume (see session.rs).
        let current = Arc::clone(current);
        front.set_client_hello_callback(move |ssl, _alert| {
            session::admit_sessions_of(ssl, current.load().trust)?;
            Ok(ClientHelloResponse::SUCCESS)
        });
    }
    let current = Arc::clone(current);
    let bind_sessions = auth.is_some();
    front.set_servername_callback(move |ssl, _alert| {
        // The whole handshake-path cost of reloading: an atomic load and
        // SSL_set_SSL_CTX (reference counts, no I/O, no lock).
        let published = current.load();
        ssl.set_ssl_context(&published.ctx)
            .map_err(|_| SniError::ALERT_FATAL)?;
        if bind_sessions && !ssl.session_reused() {
            // The new session records the bundle of the context that will verify
            // its client, even if a reload landed since the client hello.
            session::stamp_new_session(ssl, published.trust).map_err(|_| SniError::ALERT_FATAL)?;
        }
        Ok(())
    });
    Ok(front.build())
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
    builder.set_session_id_context(session::SESSION_ID_CONTEXT)?;
    if let Some(auth) = auth {
        builder.set_verify(auth.verify_mode());
    }
    Ok(())
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
