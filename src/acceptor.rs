//! The server side: one fixed front `SslAcceptor` whose client hello callback
//! switches every new handshake to the context published last and installs the
//! certificates of the site its SNI name selects.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use openssl::error::ErrorStack;
use openssl::ssl::{
    ClientHelloResponse, Ssl, SslAcceptor, SslAcceptorBuilder, SslAlert, SslContext, SslMethod,
    SslVerifyMode,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_openssl::SslStream;

use crate::builder::{Builder, Policy, MIN_POLL_INTERVAL};
use crate::material::{
    chain_stale_rule, status_callback, IdentityFiles, Material, Staples, WatchedFiles,
};
use crate::poll::Poller;
use crate::reloader::{Build, Setup};
use crate::session::{self, TrustId};
use crate::sites::{
    client_hello_sni, share_trust, FastPathBuild, SiteCert, SiteOptions, SiteSetup, SiteStatus,
    Sites, Snapshot, TrustContext,
};
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
    _poller: Poller,
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
    pub fn reload_now(&self) -> Result<Reload, Error> {
        let _ = self.inner.tickets.reload_now();
        self.inner.sites.reload_now()
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

    /// Serves one more site: a certificate chain and its key, read as
    /// [`identity`](Builder::identity) reads them. The identity, if any, is the
    /// first site; the sites given here follow in order, and the first of all is
    /// the default. Each site answers for its certificate's DNS names (its common
    /// name when it has none) and reloads on its own.
    ///
    /// ```no_run
    /// # fn run() -> Result<(), openssl_reload::Error> {
    /// let tls = openssl_reload::ReloadingAcceptor::builder()
    ///     .site("/etc/tls/api.crt", "/etc/tls/api.key")
    ///     .site("/etc/tls/www-rsa.crt", "/etc/tls/www-rsa.key")
    ///     .site("/etc/tls/www-ecdsa.crt", "/etc/tls/www-ecdsa.key")
    ///     .build()?;
    /// # drop(tls); Ok(()) }
    /// ```
    pub fn site(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.side.sites.explicit.push(IdentityFiles::Pair {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// Serves one more site from a PKCS#12 bundle (see [`site`](Self::site)).
    pub fn site_pkcs12(mut self, path: impl Into<PathBuf>) -> Self {
        self.side
            .sites
            .explicit
            .push(IdentityFiles::Pkcs12(path.into()));
        self
    }

    /// Serves every site in `dir`: `NAME.crt` with `NAME.key`, `NAME.pem` with
    /// `NAME.key` or holding both, `NAME.p12`, or a sub-directory `NAME/` holding
    /// `tls.crt` and `tls.key` (a mounted Kubernetes secret). The directory is
    /// watched: a site added is served within the poll interval; a changed site
    /// reloads on its own; a site whose files are gone is served for the
    /// [removal grace](Self::site_removal_grace) more, so that a delete-then-create
    /// rotation never drops a name; a site that fails to load keeps its last good
    /// certificate (or, if new, is not served) with one error naming the file.
    ///
    /// ```no_run
    /// # fn run() -> Result<(), openssl_reload::Error> {
    /// let tls = openssl_reload::ReloadingAcceptor::builder()
    ///     .site_dir("/etc/tls/sites")
    ///     .build()?;
    /// # drop(tls); Ok(()) }
    /// ```
    pub fn site_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.side.sites.dirs.push(dir.into());
        self
    }

    /// The site that answers handshakes without SNI or with a name no site has:
    /// a site's name (`NAME` in a directory, the certificate path otherwise) or
    /// one of its DNS names. Default: the first site. It must be served at
    /// start-up; if it later goes away, the first site answers, with a warning.
    pub fn default_site(mut self, name: impl Into<String>) -> Self {
        self.side.sites.default = Some(name.into());
        self
    }

    /// Refuses handshakes without SNI or with a name no site has, with the
    /// `unrecognized_name` alert, instead of answering with the default site
    /// (default `false`).
    pub fn strict_sni(mut self, strict: bool) -> Self {
        self.side.sites.strict = strict;
        self
    }

    /// The OCSP staple of the [`identity`](Builder::identity) (or, without
    /// one, of the first [`site`](Self::site)): a DER OCSP response, as
    /// `openssl ocsp -respout` writes it, watched and reloaded with the
    /// certificate. Without it, every certificate's staple is
    /// `<certificate file>.ocsp` when that file exists.
    ///
    /// A staple is sent to clients that ask (`status_request`) only while it
    /// passes every check: it is a response for the certificate in service,
    /// signed by its issuer (which the certificate file must hold after the
    /// leaf) or a responder the issuer delegated to, with status good, and
    /// within its thisUpdate/nextUpdate. A response without nextUpdate (which
    /// RFC 6960 allows) is stapled only until seven days after its thisUpdate,
    /// so a staple that is never renewed is not sent for ever; renew such
    /// responses at least weekly. One that fails is not stapled and is
    /// reported ([`CertificateInfo::ocsp`]); the certificate stays in service.
    /// A rotated certificate drops its old staple, which no longer matches. A
    /// certificate with the must-staple extension is refused without a valid
    /// staple ([`Error::Ocsp`]).
    pub fn ocsp_staple(mut self, path: impl Into<PathBuf>) -> Self {
        self.side.ocsp_staple = Some(path.into());
        self
    }

    /// The issuer of the [`identity`](Builder::identity)'s certificate (or, without
    /// one, of the first [`site`](Self::site)'s), for checking its OCSP staple,
    /// where the certificate file holds the leaf alone: a PEM or DER
    /// certificate, watched and reloaded with the staple. Without it, every
    /// certificate's issuer may also come from `<certificate file>.issuer`
    /// (HAProxy's name) when that file exists. A private CA that issues leaves
    /// directly then staples without shipping its root in the certificate
    /// file; nginx looks the issuer up in its trusted certificates instead.
    pub fn ocsp_issuer(mut self, path: impl Into<PathBuf>) -> Self {
        self.side.ocsp_issuer = Some(path.into());
        self
    }

    /// How long a directory site whose files are gone is still served (default
    /// 5 s): a tool that deletes a pair and writes it again within it never
    /// drops the name.
    pub fn site_removal_grace(mut self, grace: Duration) -> Self {
        self.side.sites.removal_grace = grace;
        self
    }

    /// Loads and validates the files once, as [`build`](Self::build) would, and builds
    /// a context from them with the policy; starts nothing. For offline checks
    /// (`openssl-reload check`) and for configuration tests.
    ///
    /// # Errors
    ///
    /// The reason the material would be refused at start-up;
    /// [`Error::NoIdentity`] without a site.
    pub fn check(&self) -> Result<CertificateInfo, Error> {
        self.check_sites()?
            .into_iter()
            .find(|site| site.default)
            .and_then(|site| site.status.certificate)
            .ok_or(Error::NoIdentity)
    }

    /// Like [`check`](Self::check), for every site: what the acceptor would serve,
    /// with each directory site that would not load and its error.
    ///
    /// # Errors
    ///
    /// What would stop a start: a site given one by one that does not load, the
    /// CA bundle, an unreadable directory, no site at all, an unknown default.
    pub fn check_sites(&self) -> Result<Vec<SiteStatus>, Error> {
        let (options, mut site_setup, mut trust_setup) = self.site_setups()?;
        let build = trust_builder(
            &self.policy,
            self.active_client_auth(),
            None,
            &site_setup.staples,
        );
        site_setup.allow_missing = false;
        trust_setup.allow_missing = false;
        Ok(Sites::start(options, site_setup, trust_setup, build)?.sites())
    }

    /// The sites, what every site's engine shares, and the trust engine's setup.
    fn site_setups(&self) -> Result<(SiteOptions, SiteSetup, Setup), Error> {
        let mut options = self.side.sites.clone();
        if let Some(identity) = &self.files.identity {
            options.explicit.insert(0, identity.clone());
        }
        if options.explicit.is_empty() && options.dirs.is_empty() {
            return Err(Error::NoIdentity);
        }
        let (mut ocsp, mut ocsp_issuer) = (HashMap::new(), HashMap::new());
        if let Some(first) = options.explicit.first() {
            let cert = first.cert_path();
            if let Some(staple) = &self.side.ocsp_staple {
                ocsp.insert(cert.to_owned(), staple.clone());
            }
            if let Some(issuer) = &self.side.ocsp_issuer {
                ocsp_issuer.insert(cert.to_owned(), issuer.clone());
            }
        }
        let site_setup = SiteSetup {
            checks: self.checks.clone(),
            passphrase: self.files.passphrase.clone(),
            chain_ca: self.files.ca.clone().filter(|_| self.checks.chain_to_ca),
            poll_interval: self.poll_interval,
            allow_missing: self.allow_missing_at_start,
            ocsp,
            ocsp_issuer,
            staples: Staples::default(),
            fast_path: None,
        };
        let mut trust_setup = self.setup("acceptor");
        trust_setup.files = WatchedFiles {
            identity: None,
            ca: self.files.ca.clone(),
            crl: self.files.crl.clone(),
            ocsp: None,
            ocsp_issuer: None,
            passphrase: crate::Passphrase::default(),
        };
        // Sites::start says it once everything has loaded.
        trust_setup.announce = false;
        Ok((options, site_setup, trust_setup))
    }

    /// Loads and validates the files, builds the front acceptor and starts the poller.
    ///
    /// # Errors
    ///
    /// Any problem with the initial material (unreadable, unparsable, mismatched,
    /// expired), an error from the policy, [`Error::NoIdentity`], or a failure to
    /// spawn the poller thread ([`Error::Thread`]).
    pub fn build(self) -> Result<ReloadingAcceptor, Error> {
        let (options, mut site_setup, trust_setup) = self.site_setups()?;
        let auth = self.active_client_auth();
        let tickets = TicketKeys::start(
            self.side.ticket_keys.clone(),
            self.checks.max_file_size,
            self.allow_missing_at_start,
        )?;
        let staples = Arc::clone(&site_setup.staples);
        let build = trust_builder(&self.policy, auth, Some(Arc::clone(&tickets)), &staples);
        site_setup.fast_path = Some(fast_path_builder(
            &self.policy,
            auth,
            Arc::clone(&tickets),
            &staples,
        ));
        let sites = Arc::new(Sites::start(options, site_setup, trust_setup, build)?);
        let (poll_sites, poll_tickets) = (Arc::clone(&sites), Arc::clone(&tickets));
        let poller = Poller::spawn(self.poll_interval, move || {
            poll_sites.poll();
            poll_tickets.poll();
        })
        .map_err(|source| Error::Thread { source })?;
        let acceptor = front_acceptor(&self.policy, auth, &tickets, sites.current())?;
        Ok(ReloadingAcceptor {
            inner: Arc::new(Inner {
                acceptor,
                sites,
                auth,
                tickets,
                staples,
                handshake_timeout: self.side.handshake_timeout,
                _poller: poller,
            }),
        })
    }

    /// Client authentication is on when there is a bundle to verify clients with.
    fn active_client_auth(&self) -> Option<ClientAuth> {
        self.files.ca.as_ref().map(|_| self.side.client_auth)
    }
}

/// How the trust engine turns CA material into the context handshakes switch
/// to; with `tickets`, the context finds the ticket keys (a check needs none).
fn trust_builder(
    policy: &Policy,
    auth: Option<ClientAuth>,
    tickets: Option<Arc<TicketKeys>>,
    staples: &Staples,
) -> Build<TrustContext> {
    let policy = Arc::clone(policy);
    let staples = Arc::clone(staples);
    Box::new(move |material: Material| {
        let trust = material.trust.as_ref().map_or(TrustId::NONE, |t| t.id);
        let mut builder = server_context(&policy, auth, material)?;
        switched_callbacks(&mut builder, tickets.as_ref(), &staples)?;
        Ok(TrustContext {
            ctx: builder.build().into_context(),
            trust,
        })
    })
}

/// What a context that handshakes are switched to needs beyond the policy:
/// the OCSP status callback (OpenSSL reads it from the switched context; it
/// runs only for clients that ask) and, when serving, the ticket keys.
fn switched_callbacks(
    builder: &mut SslAcceptorBuilder,
    tickets: Option<&Arc<TicketKeys>>,
    staples: &Staples,
) -> Result<(), Error> {
    builder
        .set_status_callback(status_callback(Arc::clone(staples)))
        .map_err(Error::openssl("install the OCSP status callback"))?;
    if let Some(tickets) = tickets {
        tickets
            .attach(builder)
            .map_err(Error::openssl("attach the ticket keys to the context"))?;
    }
    Ok(())
}

/// How the default site's context is built: as the trust context (policy,
/// verify mode, the same store and CA names, the status and ticket
/// callbacks), holding the site's one certificate.
fn fast_path_builder(
    policy: &Policy,
    auth: Option<ClientAuth>,
    tickets: Arc<TicketKeys>,
    staples: &Staples,
) -> FastPathBuild {
    let policy = Arc::clone(policy);
    let staples = Arc::clone(staples);
    Arc::new(move |trust: &SslContext, cert: &SiteCert| {
        let mut builder = base_builder(&policy, auth)?;
        share_trust(&mut builder, trust).map_err(Error::openssl("share the trust context"))?;
        switched_callbacks(&mut builder, Some(&tickets), &staples)?;
        cert.identity.install(&mut builder)?;
        Ok(builder.build().into_context())
    })
}

/// The fixed front acceptor: the policy, the ticket key callback, and the
/// client hello callback that switches each handshake to `current`.
fn front_acceptor(
    policy: &Policy,
    auth: Option<ClientAuth>,
    tickets: &Arc<TicketKeys>,
    current: &Arc<ArcSwap<Snapshot>>,
) -> Result<SslAcceptor, Error> {
    let mut front = base_builder(policy, auth)?;
    tickets
        .install(&mut front)
        .map_err(Error::openssl("install the ticket key callback"))?;
    let current = Arc::clone(current);
    front.set_client_hello_callback(move |ssl, alert| {
        // The whole handshake-path cost of reloading: an atomic load, a hash
        // lookup, SSL_set_SSL_CTX and the certificates' reference counts; no I/O,
        // no lock. It runs before OpenSSL looks the client's session up, so the
        // session id context set here decides which sessions may resume (see
        // session.rs), and everything comes from one snapshot.
        let snapshot = current.load();
        let Some(served) = snapshot.table.select(client_hello_sni(ssl)) else {
            *alert = SslAlert::UNRECOGNIZED_NAME;
            return Err(ErrorStack::get());
        };
        snapshot.switch(ssl, served)?;
        chain_stale_rule(ssl, &snapshot.ctx)?;
        Ok(ClientHelloResponse::SUCCESS)
    });
    // Acknowledges the client's SNI, so that sessions record the name.
    front.set_servername_callback(|_, _| Ok(()));
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
