//! The server side: one fixed front `SslAcceptor` whose client hello callback
//! switches every new handshake to the context published last and installs the
//! certificates of the site its SNI name selects.
//!
//! `builder.rs` holds the server's settings and `build`, `contexts.rs` the
//! contexts a handshake starts on or switches to.

mod builder;
mod contexts;
mod polling;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{Ssl, SslAcceptor, SslContext, SslVerifyMode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_openssl::SslStream;

use crate::builder::Builder;
use crate::material::Staples;
use crate::sites::{SiteOptions, SiteStatus, Sites};
use crate::tickets::{KeySource, TicketKeyStatus, TicketKeys};
use crate::{CertificateStatus, Error, Reload};

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
    pub(crate) fn verify_mode(self) -> SslVerifyMode {
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
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    acceptor: SslAcceptor,
    pub(crate) sites: Arc<Sites>,
    /// How clients are verified, when a CA bundle is configured: what
    /// [`attach`](ReloadingAcceptor::attach) sets on a foreign connection.
    pub(crate) auth: Option<ClientAuth>,
    tickets: Arc<TicketKeys>,
    /// The staples in service, which [`attach`](ReloadingAcceptor::attach)
    /// hands out too.
    pub(crate) staples: Staples,
    handshake_timeout: Duration,
    poll_interval: Duration,
    /// The poller, started by `build` or by `start_polling`.
    polling: polling::Polling,
    /// Attached contexts' own certificates follow the reloads
    /// ([`update_attached_contexts`](crate::ReloadingAcceptorBuilder::update_attached_contexts)).
    pub(crate) update_contexts: bool,
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
    /// `acceptor.accept(tcp)` or `Ssl::new(acceptor.context())`; its client hello
    /// callback installs the current certificate in each new handshake.
    pub fn acceptor(&self) -> &SslAcceptor {
        &self.inner.acceptor
    }

    /// The context in service right now: the one the next handshake switches to,
    /// with the policy and the client CA bundle. Certificates are not in it: the
    /// acceptor's callback puts the chosen site's on each connection.
    pub fn current_context(&self) -> SslContext {
        self.inner.sites.current().load().ctx.clone()
    }

    /// A snapshot of what is in service and how reloading went: the default
    /// site's certificate, the CA bundle, and failures summed over every site.
    /// `generation` moves whenever anything new is published.
    pub fn status(&self) -> CertificateStatus {
        self.inner.sites.status()
    }

    /// Every site, in order (the ones given one by one, then a directory's by
    /// name), with its names, key type and its own reload status. Sites of a
    /// directory that have not loaded are listed last, with their error.
    pub fn sites(&self) -> Vec<SiteStatus> {
        self.inner.sites.sites()
    }

    /// A receiver that sees every change of [`status`](Self::status): each publish
    /// and each failed attempt.
    pub fn subscribe(&self) -> watch::Receiver<CertificateStatus> {
        self.inner.sites.subscribe()
    }

    /// How the session ticket keys are doing: in-memory rotation or the ticket-key
    /// file, and the last failure to load it.
    pub fn ticket_keys(&self) -> TicketKeyStatus {
        self.inner.tickets.status()
    }

    /// Reads and, if the content changed, publishes the files right now, on the
    /// caller's thread, whatever the poller last saw: every site, the CA bundle
    /// and the site directories. For SIGHUP handlers and tests. A ticket-key file
    /// is read again too; its failure is recorded in
    /// [`ticket_keys`](Self::ticket_keys) and does not change the result.
    ///
    /// # Errors
    ///
    /// The first reason a file was not published (every site is still tried);
    /// the previous material stays in service, and the error is also recorded in
    /// [`status`](Self::status).
    ///
    /// In a process forked from one where the acceptor polls, it refuses with
    /// [`Error::Forked`] (see [`start_polling`](Self::start_polling)).
    pub fn reload_now(&self) -> Result<Reload, Error> {
        self.inner.polling.here()?;
        let _ = self.inner.tickets.reload_now();
        self.inner.sites.reload_now()
    }

    /// Starts polling the files in the calling process, for an acceptor built
    /// with [`defer_polling`](crate::ReloadingAcceptorBuilder::defer_polling):
    /// a forking server builds (and [attaches](Self::attach)) in the parent,
    /// forks, and calls this in each child, since threads do not survive
    /// `fork(2)`. Nothing happens if the poller already runs in this process.
    ///
    /// In a process forked from one where the acceptor polls, the poller
    /// cannot be restarted safely (its lock may have been held at the fork), so
    /// this refuses with [`Error::Forked`]; handshakes there go on with the
    /// material in service at the fork, and never see a reload.
    ///
    /// ```no_run
    /// # fn run() -> Result<(), openssl_reload::Error> {
    /// let tls = openssl_reload::ReloadingAcceptor::builder()
    ///     .identity("/etc/tls/tls.crt", "/etc/tls/tls.key")
    ///     .defer_polling(true)
    ///     .build()?; // loaded and checked, nothing started
    /// // ... fork(2) the workers; in each:
    /// tls.start_polling()?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Forked`], or [`Error::Thread`] when the thread cannot be spawned.
    pub fn start_polling(&self) -> Result<(), Error> {
        let inner = &self.inner;
        inner
            .polling
            .start(inner.poll_interval, &inner.sites, &inner.tickets)
    }

    /// Runs one poller tick on the calling thread: looks at the files (one
    /// `stat` each), reloads what changed, rotates in-memory ticket keys when
    /// due. For a server that polls from its own event loop every
    /// [poll interval](crate::Builder::poll_interval) instead of running the
    /// poller thread, as an nginx worker does from a timer: build with
    /// [`defer_polling`](crate::ReloadingAcceptorBuilder::defer_polling) and
    /// never call [`start_polling`](Self::start_polling). A reload reads and
    /// parses on this thread (a few milliseconds, longer to open a hardware
    /// key); most ticks are the `stat`s.
    ///
    /// # Errors
    ///
    /// [`Error::Forked`] in a process forked from one where the poller thread runs.
    pub fn poll(&self) -> Result<(), Error> {
        self.inner.polling.here()?;
        let _turn = crate::hardware_key_lock();
        self.inner.sites.poll();
        self.inner.tickets.poll();
        Ok(())
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
        // Each step of the handshake takes its turn with other handshakes when
        // a hardware key's provider is not thread-safe (tpm2); otherwise no lock.
        let handshake = std::future::poll_fn(|cx| {
            let _turn = crate::hardware_key_lock();
            std::pin::Pin::new(&mut stream).poll_accept(cx)
        });
        let result = if self.inner.handshake_timeout == Duration::MAX {
            handshake.await
        } else {
            tokio::time::timeout(self.inner.handshake_timeout, handshake)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
        };
        result.map_err(crate::common::tls_to_io)?;
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
    sites: SiteOptions,
    ocsp_staple: Option<PathBuf>,
    ocsp_issuer: Option<PathBuf>,
    defer_polling: bool,
    update_contexts: bool,
}

impl Default for ServerSide {
    fn default() -> Self {
        Self {
            client_auth: ClientAuth::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            ticket_keys: KeySource::default(),
            sites: SiteOptions::default(),
            ocsp_staple: None,
            ocsp_issuer: None,
            defer_polling: false,
            update_contexts: false,
        }
    }
}

/// Configures a [`ReloadingAcceptor`]: the shared settings of [`Builder`] and the
/// server's own below.
pub type ReloadingAcceptorBuilder = Builder<ServerSide>;
