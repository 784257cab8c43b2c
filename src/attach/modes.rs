//! The two ways onto an application's context: [`attach`] (every connection
//! of the context, through its callbacks) and [`install`] (one connection, from
//! the application's own callback), and what both put on a connection.
//!
//! [`attach`]: ReloadingAcceptor::attach
//! [`install`]: ReloadingAcceptor::install

use super::*;

impl ReloadingAcceptor {
    /// Makes a context the application owns and configured serve this
    /// acceptor's certificates, reloaded, before its first `SSL_new`.
    ///
    /// It installs three callbacks on `ctx`, and replaces any of them already
    /// there:
    /// - a client hello callback (`SSL_CTX_set_client_hello_cb`), which binds
    ///   each connection's sessions (see below);
    /// - a certificate callback (`SSL_CTX_set_cert_cb`), which puts the current
    ///   certificate, chain and key of the SNI-selected site on the connection,
    ///   and, with a [`ca`](crate::Builder::ca), the CA store, the CA names and
    ///   the [`ClientAuth`] verify mode;
    /// - the OCSP status callback (`SSL_CTX_set_tlsext_status_cb`), which
    ///   staples the certificate's
    ///   [staple](crate::ReloadingAcceptorBuilder::ocsp_staple) for clients that
    ///   ask, and otherwise calls the status callback the application had set.
    ///
    /// Everything else stays the application's: options, protocol versions,
    /// its verify callback and depth, its ALPN and servername callbacks (a
    /// servername callback that switches to another context attached to a
    /// reloader gets that one's certificates), its session id context, session
    /// cache and ticket keys. An application that needs its own client hello or
    /// certificate callback uses [`install`](Self::install) instead.
    ///
    /// A session resumes only where a full handshake would succeed: each
    /// connection's session id context is derived from the context's own
    /// (read here: set it before attaching), the verify mode, the CA bundle
    /// and CRLs in service, the site and the SNI name. A session made after
    /// the application's servername callback switched the connection to
    /// another context is bound to that context and resumes only where
    /// connections start on an equally bound one (`docs/design.md`).
    ///
    /// The context holds a clone of the acceptor: the files are polled as long
    /// as either lives.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyAttached`] when a reloader is attached to `ctx` already;
    /// OpenSSL's, if it cannot allocate the ex_data index or read the
    /// context's session id context.
    pub fn attach(&self, ctx: &mut SslContextBuilder) -> Result<(), Error> {
        let ctx_ref = ffi::ssl::context_of(ctx);
        let attached =
            callback::attached(ctx_ref).map_err(Error::openssl("attach to the context"))?;
        if attached.is_some() {
            return Err(Error::AlreadyAttached);
        }
        let session_id: Arc<[u8]> = session::context_session_id(ctx_ref)
            .map_err(Error::openssl("read the context's session id context"))?
            .into();
        let app_status = AppStatus::of(ctx);
        let attached = Attached {
            acceptor: self.clone(),
            session_id: Arc::clone(&session_id),
            written: ArcSwapOption::empty(),
        };
        callback::set_cert_callback(ctx, attached)
            .map_err(Error::openssl("attach to the context"))?;
        // The staples of the reloaded certificates, for clients that ask; the
        // application's own answer for the certificates we have none for.
        let staple = status_callback(Arc::clone(&self.inner.staples));
        ctx.set_status_callback(move |ssl| match (staple(ssl)?, app_status) {
            (true, _) => Ok(true),
            (false, Some(app)) => app.call(ssl),
            (false, None) => Ok(false),
        })
        .map_err(Error::openssl("install the OCSP status callback"))?;
        let current = Arc::clone(self.inner.sites.current());
        if self.inner.update_contexts {
            if let Some(served) = current.load().table.default_served() {
                let ctx = ffi::ssl::context_of(ctx);
                callback::attached(ctx)
                    .and_then(|attached| match attached {
                        Some(attached) => attached.put_once(ctx, served),
                        None => Ok(()),
                    })
                    .map_err(Error::openssl("put the certificates on the context"))?;
            }
        }
        let auth = self.inner.auth;
        ctx.set_client_hello_callback(move |ssl, alert| {
            let snapshot = current.load_full();
            let sni = client_hello_sni(ssl);
            let Some(served) = snapshot.table.select(sni) else {
                *alert = SslAlert::UNRECOGNIZED_NAME;
                return Err(ErrorStack::get());
            };
            let mut buf = [0; 255];
            let name = sni.and_then(|raw| normalize_into(raw, &mut buf));
            let bound = Bound::new(&session_id, served, verify_mode(auth, ssl), name)?;
            session::set_session_id_context(ssl, &bound.sid)?;
            let owner = Arc::as_ptr(&current).addr();
            ssl.set_ex_data(
                pinned_index()?,
                Pinned {
                    snapshot,
                    owner,
                    bound,
                },
            );
            Ok(ClientHelloResponse::SUCCESS)
        });
        Ok(())
    }

    /// Puts this acceptor's current material on one connection: the
    /// certificate, chain and key of the site its SNI name selects (replacing
    /// whatever certificates it had), and, with a [`ca`](crate::Builder::ca),
    /// the CA store, CA names and verify mode.
    ///
    /// For applications that switch contexts in their own servername callback:
    /// call it there, after `SSL_set_SSL_CTX`.
    ///
    /// On a full handshake it binds the session being made to this reloader's
    /// trust and site, the verify mode and the SNI name, so that it resumes
    /// only where a full handshake would succeed. OpenSSL looks sessions up
    /// before the servername callback, where nothing of this reloader runs, so
    /// these sessions do not resume unless connections start on a context
    /// attached with the same binding. A session OpenSSL resumed that does not
    /// carry that binding (made for another name, context or trust) is refused
    /// with [`Error::ResumedElsewhere`]: answer with a fatal alert. Called from
    /// a certificate callback, which OpenSSL runs on full handshakes only, it
    /// binds the same way.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownSite`] when strict SNI refuses the name;
    /// [`Error::ResumedElsewhere`] as above; OpenSSL's, if it cannot install
    /// the certificates.
    pub fn install(&self, ssl: &mut SslRef) -> Result<(), Error> {
        let context = attached_session_id(ssl);
        install(self, ssl, context.as_deref().unwrap_or(INSTALLED)).map_err(|e| match e {
            Refused::Name(name) => Error::UnknownSite { name },
            Refused::Resumed(name) => Error::ResumedElsewhere { name },
            Refused::OpenSsl(stack) => Error::openssl("install the certificate")(stack),
        })
    }
}

/// The session id context of the context `ssl` is on now, if a reloader is
/// attached to it.
fn attached_session_id(ssl: &SslRef) -> Option<Arc<[u8]>> {
    let attached = callback::attached(ssl.ssl_context()).ok()??;
    Some(Arc::clone(&attached.session_id))
}

/// The verify mode a connection's sessions are bound to: the reloader's when
/// it verifies clients, the application's otherwise.
fn verify_mode(auth: Option<ClientAuth>, ssl: &SslRef) -> SslVerifyMode {
    auth.map_or_else(|| ssl.verify_mode(), ClientAuth::verify_mode)
}

pub(super) enum Refused {
    Name(String),
    Resumed(String),
    OpenSsl(ErrorStack),
}

impl From<ErrorStack> for Refused {
    fn from(stack: ErrorStack) -> Self {
        Self::OpenSsl(stack)
    }
}

pub(super) fn install(
    acceptor: &ReloadingAcceptor,
    ssl: &mut SslRef,
    context: &[u8],
) -> Result<(), Refused> {
    let current = acceptor.inner.sites.current();
    let pinned = ssl
        .ex_data(pinned_index()?)
        .filter(|p| p.owner == Arc::as_ptr(current).addr())
        .map(|p| (Arc::clone(&p.snapshot), p.bound));
    let (snapshot, pinned_bound) = match pinned {
        Some((snapshot, bound)) => (snapshot, Some(bound)),
        None => (current.load_full(), None),
    };
    let mut buf = [0; 255];
    let raw = ssl.servername_raw(NameType::HOST_NAME);
    let lossy = || {
        raw.map(String::from_utf8_lossy)
            .unwrap_or_default()
            .into_owned()
    };
    let name = raw.and_then(|raw| normalize_into(raw, &mut buf));
    let Some(served) = snapshot.table.select(name.map(str::as_bytes)) else {
        return Err(Refused::Name(lossy()));
    };
    let verify = verify_mode(acceptor.inner.auth, ssl);
    // Bound already, in the client hello callback, exactly as it would be now.
    let unchanged = pinned_bound.filter(|b| b.is_for(context, served, verify, name));
    let sid = match unchanged {
        Some(bound) => bound.sid,
        None => session::bind(context, verify, served.sites(), Some(name.unwrap_or("")))?,
    };
    if ssl.session_reused() {
        // OpenSSL resumed it before the application's servername callback,
        // from which this runs; it is too late for a full handshake.
        return if session::resumed_with(ssl, &sid) {
            Ok(())
        } else {
            Err(Refused::Resumed(lossy()))
        };
    }
    // A connection made on a context that holds these very certificates
    // (`update_attached_contexts`) has nothing to install; without that
    // option the context never holds them, and nothing is compared.
    if !(acceptor.inner.update_contexts && served.carried_by(ssl)) {
        ffi::ssl::certs_clear(ssl);
        served.install_certs(ssl)?;
        if acceptor.inner.update_contexts {
            update_context(acceptor, ssl, &snapshot, served);
        }
    }
    if let Some(auth) = acceptor.inner.auth {
        set_trust(ssl, &snapshot.ctx, auth.verify_mode())?;
        chain_stale_rule(ssl, &snapshot.ctx)?;
    }
    if unchanged.is_none() {
        session::rebind(ssl, &sid)?;
    }
    Ok(())
}

/// The CA store and names of `trust` on one connection, and `mode` (the
/// application's verify callback stays: `SSL_set_verify` with none keeps it).
fn set_trust(
    ssl: &mut SslRef,
    trust: &SslContextRef,
    mode: SslVerifyMode,
) -> Result<(), ErrorStack> {
    ffi::ssl::share_verify_store(ssl, trust)?;
    if let Some(names) = ffi::ssl::client_ca_names(trust)? {
        ssl.set_client_ca_list(names);
    }
    ssl.set_verify(mode);
    Ok(())
}

/// After a publish, the first full handshake on an attached context puts the
/// default site's new certificates on the context itself, so that later
/// connections start with them (`update_attached_contexts`). Only a context
/// attached to this acceptor, and only its default site: another name's
/// handshake does not take the context away from the name most connections ask for.
fn update_context(
    acceptor: &ReloadingAcceptor,
    ssl: &SslRef,
    snapshot: &Snapshot,
    served: &Served,
) {
    let Some(default) = snapshot.table.default_served() else {
        return;
    };
    if !std::ptr::eq(&**default, served) {
        return;
    }
    let ctx = ssl.ssl_context();
    let ours = callback::attached(ctx)
        .ok()
        .flatten()
        .filter(|a| Arc::ptr_eq(&a.acceptor.inner, &acceptor.inner));
    if let Some(attached) = ours {
        if let Err(error) = attached.put_once(ctx, default) {
            // The connection has its certificates; the next one installs them too.
            tracing::debug!(%error, "could not update the attached context's certificates");
        }
    }
}
