//! The server side: one fixed front `SslAcceptor` whose servername callback switches
//! every new handshake to the context published last.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use openssl::ssl::{
    ClientHelloResponse, SniError, Ssl, SslAcceptor, SslAcceptorBuilder, SslContext, SslMethod,
    SslVerifyMode,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_openssl::SslStream;

use crate::builder::{Builder, Policy, MIN_POLL_INTERVAL};
use crate::material::Material;
use crate::reloader::{Build, Reloader};
use crate::session::{self, TrustId};
use crate::tickets::{KeySource, TicketKeyStatus, TicketKeys};
use crate::{CertificateInfo, CertificateStatus, Error, Reload};

/// How long [`ReloadingAcceptor::accept`] waits for a handshake by default: 10 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether and how the server asks clients for a certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// A client must present a certificate that chains to the CA bundle. The
    /// default once a [`ca`](Builder::ca) is configured.
    #[default]
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
    reloader: Reloader<ServerContext>,
    tickets: Arc<TicketKeys>,
    handshake_timeout: Duration,
}

/// What the servername callback installs: a context and the CA bundle in it.
pub(crate) struct ServerContext {
    ctx: SslContext,
    /// Sessions that this context verifies are bound to this bundle.
    trust: TrustId,
}

impl ReloadingAcceptor {
    /// Starts a builder; give it an [`identity`](Builder::identity) (or a
    /// [PKCS#12 one](Builder::identity_pkcs12)).
    ///
    /// ```no_run
    /// # fn run() -> Result<(), openssl_reload::Error> {
    /// let tls = openssl_reload::ReloadingAcceptor::builder()
    ///     .identity("/etc/tls/tls.crt", "/etc/tls/tls.key")
    ///     .build()?;
    /// # drop(tls); Ok(()) }
    /// ```
    pub fn builder() -> ReloadingAcceptorBuilder {
        Builder::new()
    }

    /// The fixed front acceptor. Use it for every connection, as
    /// `acceptor.accept(tcp)` or `Ssl::new(acceptor.context())`; its servername
    /// callback installs the current certificate in each new handshake.
    pub fn acceptor(&self) -> &SslAcceptor {
        &self.inner.acceptor
    }

    /// The context in service right now: the one the next handshake switches to.
    pub fn current_context(&self) -> SslContext {
        self.inner.reloader.current().load().ctx.clone()
    }

    /// A snapshot of what is in service and how reloading went.
    pub fn status(&self) -> CertificateStatus {
        self.inner.reloader.status()
    }

    /// A receiver that sees every change of [`status`](Self::status): each publish
    /// and each failed attempt.
    pub fn subscribe(&self) -> watch::Receiver<CertificateStatus> {
        self.inner.reloader.subscribe()
    }

    /// How the session ticket keys are doing: in-memory rotation or the ticket-key
    /// file, and the last failure to load it.
    pub fn ticket_keys(&self) -> TicketKeyStatus {
        self.inner.tickets.status()
    }

    /// Reads and, if the content changed, publishes the files right now, on the
    /// caller's thread, whatever the poller last saw. For SIGHUP handlers and tests.
    /// A ticket-key file is read again too; its failure is recorded in
    /// [`ticket_keys`](Self::ticket_keys) and does not change the result.
    ///
    /// # Errors
    ///
    /// The reason the files were not published; the previous material stays in
    /// service, and the error is also recorded in [`status`](Self::status).
    pub fn reload_now(&self) -> Result<Reload, Error> {
        let _ = self.inner.tickets.reload_now();
        self.inner.reloader.reload_now()
    }

    /// Performs a server handshake on `stream` with tokio-openssl (`SSL_accept`),
    /// giving up after the [handshake timeout](Builder::handshake_timeout). The
    /// timeout needs a runtime with the time driver (`#[tokio::main]` has it).
    ///
    /// # Errors
    ///
    /// The handshake's error as an `io::Error` whose source is the
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
        result.map_err(crate::connector::tls_to_io)?;
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

/// The server's own settings in a [`Builder`]: client authentication, the
/// handshake timeout and the session ticket keys.
#[derive(Debug)]
pub struct ServerSide {
    client_auth: ClientAuth,
    handshake_timeout: Duration,
    ticket_keys: KeySource,
}

impl Default for ServerSide {
    fn default() -> Self {
        Self {
            client_auth: ClientAuth::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            ticket_keys: KeySource::default(),
        }
    }
}

/// Configures a [`ReloadingAcceptor`]: the shared settings of [`Builder`] and the
/// server's own below.
pub type ReloadingAcceptorBuilder = Builder<ServerSide>;

impl Builder<ServerSide> {
    /// Whether clients must present a certificate (default
    /// [`ClientAuth::Required`]); it takes effect with a [`ca`](Builder::ca) bundle
    /// to verify them against.
    ///
    /// A TLS session resumes only while the bundle that verified its client is in
    /// service: after a reload that changes the bundle's certificates, clients do
    /// a full handshake against the new one.
    ///
    /// ```no_run
    /// # fn run() -> Result<(), openssl_reload::Error> {
    /// use openssl_reload::{ClientAuth, ReloadingAcceptor};
    /// let tls = ReloadingAcceptor::builder()
    ///     .identity("tls.crt", "tls.key")
    ///     .ca("clients-ca.pem")
    ///     .client_auth(ClientAuth::Optional)
    ///     .build()?;
    /// # drop(tls); Ok(()) }
    /// ```
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.side.client_auth = auth;
        self
    }

    /// How long [`ReloadingAcceptor::accept`] waits for a client to complete its
    /// handshake (default [`DEFAULT_HANDSHAKE_TIMEOUT`], 10 s; `Duration::MAX` waits
    /// for ever). It also bounds how long a handshake that began before a reload
    /// can go on with the material it started with.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.side.handshake_timeout = timeout;
        self
    }

    /// Rotates the in-memory session ticket keys every `period`, keeping `keys` of
    /// them (at least 1): the newest encrypts new tickets, all decrypt. Default
    /// [`DEFAULT_TICKET_KEY_ROTATION`](crate::DEFAULT_TICKET_KEY_ROTATION) (1 h) and
    /// [`DEFAULT_TICKET_KEYS_KEPT`](crate::DEFAULT_TICKET_KEYS_KEPT) (3), so a ticket
    /// stays usable for two to three hours, longer than OpenSSL's default session
    /// lifetime of two. Replaced by [`ticket_key_file`](Self::ticket_key_file).
    pub fn ticket_key_rotation(mut self, period: Duration, keys: usize) -> Self {
        self.side.ticket_keys = KeySource::Automatic {
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
    ///
    /// ```no_run
    /// # fn run() -> Result<(), openssl_reload::Error> {
    /// let tls = openssl_reload::ReloadingAcceptor::builder()
    ///     .identity("tls.crt", "tls.key")
    ///     .ticket_key_file("/etc/tls/ticket.keys")
    ///     .build()?;
    /// # drop(tls); Ok(()) }
    /// ```
    pub fn ticket_key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.side.ticket_keys = KeySource::File(path.into());
        self
    }

    /// Loads and validates the files once, as [`build`](Self::build) would, and builds
    /// a context from them with the policy; starts nothing. For offline checks
    /// (`openssl-reload check`) and for configuration tests.
    ///
    /// # Errors
    ///
    /// The reason the material would be refused at start-up;
    /// [`Error::NoIdentity`] without an identity.
    pub fn check(&self) -> Result<CertificateInfo, Error> {
        let material = self.load_once()?;
        let info = material
            .identity
            .as_ref()
            .map(|identity| identity.info.clone())
            .ok_or(Error::NoIdentity)?;
        server_context(&self.policy, self.active_client_auth(), material)?;
        Ok(info)
    }

    /// Loads and validates the files, builds the front acceptor and starts the poller.
    ///
    /// # Errors
    ///
    /// Any problem with the initial material (unreadable, unparsable, mismatched,
    /// expired), an error from the policy, [`Error::NoIdentity`], or a failure to
    /// spawn the poller thread ([`Error::Thread`]).
    pub fn build(self) -> Result<ReloadingAcceptor, Error> {
        if self.files.identity.is_none() {
            return Err(Error::NoIdentity);
        }
        let auth = self.active_client_auth();
        let tickets = TicketKeys::start(
            self.side.ticket_keys.clone(),
            self.checks.max_file_size,
            self.allow_missing_at_start,
        )?;
        let (policy, build_tickets) = (Arc::clone(&self.policy), Arc::clone(&tickets));
        let build: Build<ServerContext> = Box::new(move |material: Material| {
            let trust = material.trust.as_ref().map_or(TrustId::NONE, |t| t.id);
            let mut builder = server_context(&policy, auth, material)?;
            build_tickets
                .attach(&mut builder)
                .map_err(Error::openssl("attach the ticket keys to the context"))?;
            Ok(ServerContext {
                ctx: builder.build().into_context(),
                trust,
            })
        });
        let poll_tickets = Arc::clone(&tickets);
        let reloader = Reloader::start(self.setup("acceptor"), build, move || poll_tickets.poll())?;
        let acceptor = front_acceptor(&self.policy, auth, &tickets, reloader.current())?;
        Ok(ReloadingAcceptor {
            inner: Arc::new(Inner {
                acceptor,
                reloader,
                tickets,
                handshake_timeout: self.side.handshake_timeout,
            }),
        })
    }

    /// Client authentication is on when there is a bundle to verify clients with.
    fn active_client_auth(&self) -> Option<ClientAuth> {
        self.files.ca.as_ref().map(|_| self.side.client_auth)
    }
}

/// The fixed front acceptor: the policy, the ticket key callback, and the
/// callbacks that bind sessions to trust and switch each handshake to `current`.
fn front_acceptor(
    policy: &Policy,
    auth: Option<ClientAuth>,
    tickets: &Arc<TicketKeys>,
    current: &Arc<ArcSwap<ServerContext>>,
) -> Result<SslAcceptor, Error> {
    let mut front = base_builder(policy, auth)?;
    tickets
        .install(&mut front)
        .map_err(Error::openssl("install the ticket key callback"))?;
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

/// Mozilla's intermediate profile, the session id context, the verify mode and
/// the policy: what the front and every published context share.
fn base_builder(policy: &Policy, auth: Option<ClientAuth>) -> Result<SslAcceptorBuilder, Error> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .map_err(Error::openssl("build the server context"))?;
    builder
        .set_session_id_context(session::SESSION_ID_CONTEXT)
        .map_err(Error::openssl("set the session id context"))?;
    if let Some(auth) = auth {
        builder.set_verify(auth.verify_mode());
    }
    policy(&mut builder).map_err(Error::openssl("apply the TLS policy"))?;
    Ok(builder)
}

/// A server context holding `material`, built the same way as the front context.
fn server_context(
    policy: &Policy,
    auth: Option<ClientAuth>,
    material: Material,
) -> Result<SslAcceptorBuilder, Error> {
    let mut builder = base_builder(policy, auth)?;
    if let Some(identity) = &material.identity {
        identity.install(&mut builder)?;
    }
    if let Some(trust) = material.trust {
        builder.set_cert_store(trust.store);
        builder.set_client_ca_list(trust.names);
    }
    Ok(builder)
}
