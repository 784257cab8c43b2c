//! The server's settings of a [`Builder`]: client authentication, tickets,
//! sites, OCSP, and `check` and `build`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::builder::{Builder, MIN_POLL_INTERVAL};
use crate::material::{IdentityFiles, Staples, WatchedFiles};
use crate::reloader::Setup;
use crate::sites::{SiteOptions, SiteSetup, SiteStatus, Sites};
use crate::tickets::{KeySource, TicketKeys};
use crate::{CertificateInfo, Error, KeyUri};

use super::contexts::{front_acceptor, ServerContexts};
use super::polling::Polling;
use super::{ClientAuth, Inner, ReloadingAcceptor, ServerSide};

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
    /// handshake (default [`DEFAULT_HANDSHAKE_TIMEOUT`](super::DEFAULT_HANDSHAKE_TIMEOUT), 10 s; `Duration::MAX` waits
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

    /// Serves one more site whose key stays in hardware (see
    /// [`site`](Self::site) and [`identity_uri`](crate::Builder::identity_uri)).
    pub fn site_uri(mut self, cert: impl Into<PathBuf>, key: KeyUri) -> Self {
        self.side.sites.explicit.push(IdentityFiles::Hardware {
            cert: cert.into(),
            key,
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

    /// Builds without starting the poller (default `false`): `build` loads
    /// and checks the files and makes the acceptor, which serves and can be
    /// [attached](ReloadingAcceptor::attach), but nothing reads the files
    /// again until [`start_polling`](ReloadingAcceptor::start_polling) is
    /// called. For servers that fork after reading their configuration, as
    /// nginx, Apache's prefork and HAProxy's master-worker do: build in the
    /// parent, so that a bad file stops the start there, and start polling in
    /// each child, since threads do not survive `fork(2)`.
    pub fn defer_polling(mut self, defer: bool) -> Self {
        self.side.defer_polling = defer;
        self
    }

    /// Lets [attached](ReloadingAcceptor::attach) contexts' own certificates
    /// follow the reloads (default `false`): `attach` puts the default site's
    /// certificates on the context, and after a publish the first full
    /// handshake on the context puts the new ones there. Connections made on
    /// it then start with the certificates they are to serve, and the
    /// certificate callback, finding the very same objects on the
    /// connection, installs nothing: a handshake costs what it costs on an
    /// unattached context (nginx: 1.7 % fewer instructions per handshake).
    ///
    /// Only for contexts whose connections are all made and handshaken on one
    /// thread at a time, as in an nginx worker: the callback writes what
    /// `SSL_new` on another thread would read. Everything else (the binding
    /// of sessions, the client CA store and verify mode) is done on every
    /// handshake as before.
    pub fn update_attached_contexts(mut self, update: bool) -> Self {
        self.side.update_contexts = update;
        self
    }

    /// Loads and validates the files once, as [`build`](Self::build) would, and builds
    /// a context from them with the policy; starts nothing. For offline checks
    /// (`openssl-reload check`) and for configuration tests.
    ///
    /// Returns the certificate that would be served (the default site's), with
    /// the same type as the connector's [`check`](crate::ReloadingConnectorBuilder::check):
    /// an acceptor always has one, so it is never `None` here.
    ///
    /// # Errors
    ///
    /// The reason the material would be refused at start-up;
    /// [`Error::NoIdentity`] without a site.
    pub fn check(&self) -> Result<Option<CertificateInfo>, Error> {
        self.check_sites()?
            .into_iter()
            .find(|site| site.default)
            .and_then(|site| site.status.certificate)
            .ok_or(Error::NoIdentity)
            .map(Some)
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
        let build = ServerContexts {
            policy: Arc::clone(&self.policy),
            auth: self.active_client_auth(),
            tickets: None,
            staples: Arc::clone(&site_setup.staples),
        };
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

    /// Loads and validates the files, builds the front acceptor and starts the
    /// poller (unless [deferred](Self::defer_polling)).
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
        let build = ServerContexts {
            policy: Arc::clone(&self.policy),
            auth,
            tickets: Some(Arc::clone(&tickets)),
            staples: Arc::clone(&staples),
        };
        site_setup.fast_path = Some(Arc::new(build.clone()));
        let sites = Arc::new(Sites::start(options, site_setup, trust_setup, build)?);
        let acceptor = front_acceptor(&self.policy, auth, &tickets, sites.current())?;
        let tls = ReloadingAcceptor {
            inner: Arc::new(Inner {
                acceptor,
                sites,
                auth,
                tickets,
                staples,
                handshake_timeout: self.side.handshake_timeout,
                poll_interval: self.poll_interval,
                polling: Polling::default(),
                update_contexts: self.side.update_contexts,
            }),
        };
        if !self.side.defer_polling {
            tls.start_polling()?;
        }
        Ok(tls)
    }

    /// Client authentication is on when there is a bundle to verify clients with.
    fn active_client_auth(&self) -> Option<ClientAuth> {
        self.files.ca.as_ref().map(|_| self.side.client_auth)
    }
}
