//! Reloading for contexts the application owns: the C interface's two modes,
//! also open to Rust callers that hold a foreign `SSL_CTX`.
//!
//! The crate's own acceptor switches each handshake to its trust context with
//! `SSL_set_SSL_CTX`. That is not an option for a context someone else
//! configured: OpenSSL reads the ALPN select callback (and others) from the
//! switched context, so the application's would be lost. Here nothing is
//! switched. A client hello callback binds the connection's sessions (as the
//! acceptor does, from one snapshot it pins on the `SSL`), and a certificate
//! callback (`SSL_CTX_set_cert_cb`), which OpenSSL runs after the servername
//! callback, puts the site's certificate, chain and key, and the client CA
//! store and names, on the `SSL`. The application's options, protocol range,
//! verify callback, ALPN and servername callbacks, session cache and ticket
//! keys stay its own. `docs/c-api.md` has the rules for callers.

#![allow(unsafe_code)] // Callbacks OpenSSL calls, and calls openssl lacks, each with its SAFETY note.

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use foreign_types::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::ssl::{
    ClientHelloResponse, NameType, Ssl, SslAlert, SslContext, SslContextBuilder, SslContextRef,
    SslRef, SslVerifyMode,
};
use openssl::stack::StackRef;
use openssl::x509::{X509Ref, X509};

use crate::ffi;
use crate::material::status_callback;
use crate::sites::{client_hello_sni, Snapshot};
use crate::{Error, ReloadingAcceptor, ReloadingConnector};

/// `SSL_CTX_clear_extra_chain_certs` is this ctrl (ssl.h); openssl-sys lacks the constant.
const SSL_CTRL_CLEAR_EXTRA_CHAIN_CERTS: c_int = 83;

/// What an attached context holds (in its ex_data, freed with it): the acceptor,
/// whose poller keeps running as long as the context lives.
struct Attached {
    acceptor: ReloadingAcceptor,
}

/// The snapshot a handshake's client hello callback chose from, so that the
/// certificate callback installs what the session was bound to.
struct Pinned {
    snapshot: Arc<Snapshot>,
    /// Which reloader pinned it (its snapshot cell): a second reloader's
    /// [`install`](ReloadingAcceptor::install) on the same connection ignores it.
    owner: *const ArcSwap<Snapshot>,
}

// SAFETY: `owner` is compared, never dereferenced, so moving it to another
// thread cannot touch what it points to.
unsafe impl Send for Pinned {}
// SAFETY: `owner` is compared, never dereferenced, so sharing it between
// threads reads only the address.
unsafe impl Sync for Pinned {}

fn attached_index() -> Result<openssl::ex_data::Index<SslContext, Attached>, ErrorStack> {
    static INDEX: OnceLock<c_int> = OnceLock::new();
    index(&INDEX, SslContext::new_ex_index::<Attached>).map(|raw| {
        // SAFETY: `raw` came from `SslContext::new_ex_index::<Attached>`.
        unsafe { openssl::ex_data::Index::from_raw(raw) }
    })
}

fn pinned_index() -> Result<openssl::ex_data::Index<Ssl, Pinned>, ErrorStack> {
    static INDEX: OnceLock<c_int> = OnceLock::new();
    index(&INDEX, Ssl::new_ex_index::<Pinned>).map(|raw| {
        // SAFETY: `raw` came from `Ssl::new_ex_index::<Pinned>`.
        unsafe { openssl::ex_data::Index::from_raw(raw) }
    })
}

fn index<A, T>(
    cell: &OnceLock<c_int>,
    new: fn() -> Result<openssl::ex_data::Index<A, T>, ErrorStack>,
) -> Result<c_int, ErrorStack> {
    if let Some(raw) = cell.get() {
        return Ok(*raw);
    }
    let raw = new()?.as_raw();
    // A racing thread may have set another index; either is valid, one is used.
    Ok(*cell.get_or_init(|| raw))
}

impl ReloadingAcceptor {
    /// Makes a context the application owns and configured serve this
    /// acceptor's certificates, reloaded, before its first `SSL_new`.
    ///
    /// It installs three callbacks on `ctx`: a client hello callback, which binds
    /// each connection's sessions to the site and CA bundle in service (so a
    /// dropped CA's clients do not resume), and a certificate callback, which
    /// puts the current certificate, chain and key of the SNI-selected site on
    /// the connection, and, with a [`ca`](crate::Builder::ca), the CA store, the
    /// CA names and the [`ClientAuth`](crate::ClientAuth) verify mode; and the
    /// OCSP status callback, which staples the certificate's
    /// [staple](crate::ReloadingAcceptorBuilder::ocsp_staple) for clients that
    /// ask. Everything else stays the
    /// application's: options, protocol versions, its verify callback and
    /// depth, its ALPN and servername callbacks (a servername callback that
    /// switches to another context attached to a reloader gets that one's
    /// certificates), its session cache and ticket keys. A client hello,
    /// certificate or status callback already on `ctx` is replaced: an application that
    /// needs its own uses [`install`](Self::install) instead.
    ///
    /// The context holds a clone of the acceptor: the files are polled as long
    /// as either lives. Attaching again replaces the previous attachment.
    ///
    /// # Errors
    ///
    /// OpenSSL's, if it cannot allocate the ex_data index.
    pub fn attach(&self, ctx: &mut SslContextBuilder) -> Result<(), Error> {
        let index = attached_index().map_err(Error::openssl("attach to the context"))?;
        ctx.set_ex_data(
            index,
            Attached {
                acceptor: self.clone(),
            },
        );
        // SAFETY: `ctx` is live; the ex_data at `index` is the box set above.
        let arg = unsafe { openssl_sys::SSL_CTX_get_ex_data(ctx.as_ptr(), index.as_raw()) };
        // SAFETY: `ctx` is a live context; `arg` points into the box the context's
        // ex_data owns until the context is freed (replaced in place, never moved,
        // by a second attach), so it is valid whenever OpenSSL calls `cert_cb` for
        // a connection of this context.
        unsafe { ffi::SSL_CTX_set_cert_cb(ctx.as_ptr(), Some(cert_cb), arg) };
        // The staples of the reloaded certificates, for clients that ask.
        ctx.set_status_callback(status_callback(Arc::clone(&self.inner.staples)))
            .map_err(Error::openssl("install the OCSP status callback"))?;
        let current = Arc::clone(self.inner.sites.current());
        ctx.set_client_hello_callback(move |ssl, alert| {
            let snapshot = current.load_full();
            let Some(served) = snapshot.table.select(client_hello_sni(ssl)) else {
                *alert = SslAlert::UNRECOGNIZED_NAME;
                return Err(ErrorStack::get());
            };
            served.bind(ssl)?;
            let owner = Arc::as_ptr(&current);
            ssl.set_ex_data(pinned_index()?, Pinned { snapshot, owner });
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
    /// call it there, after `SSL_set_SSL_CTX`. Session binding is the client
    /// hello callback's: attach a reloader to the context connections are
    /// created from, or sessions follow that context's own session id context.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownSite`] when strict SNI refuses the name; OpenSSL's, if it
    /// cannot install the certificates.
    pub fn install(&self, ssl: &mut SslRef) -> Result<(), Error> {
        install(self, ssl).map_err(|e| match e {
            Refused::Name(name) => Error::UnknownSite { name },
            Refused::OpenSsl(stack) => Error::openssl("install the certificate")(stack),
        })
    }
}

enum Refused {
    Name(String),
    OpenSsl(ErrorStack),
}

impl From<ErrorStack> for Refused {
    fn from(stack: ErrorStack) -> Self {
        Self::OpenSsl(stack)
    }
}

fn install(acceptor: &ReloadingAcceptor, ssl: &mut SslRef) -> Result<(), Refused> {
    let current = acceptor.inner.sites.current();
    let pinned = ssl
        .ex_data(pinned_index()?)
        .filter(|p| std::ptr::eq(p.owner, Arc::as_ptr(current)))
        .map(|p| Arc::clone(&p.snapshot));
    let snapshot = pinned.unwrap_or_else(|| current.load_full());
    let name = ssl.servername_raw(NameType::HOST_NAME);
    let Some(served) = snapshot.table.select(name) else {
        let name = name.map(String::from_utf8_lossy).unwrap_or_default();
        return Err(Refused::Name(name.into_owned()));
    };
    // SAFETY: `ssl` is a live SSL borrowed mutably for the call.
    unsafe { ffi::SSL_certs_clear(ssl.as_ptr()) };
    served.install_certs(ssl)?;
    if let Some(auth) = acceptor.inner.auth {
        set_trust(ssl, &snapshot.ctx, auth.verify_mode())?;
    }
    Ok(())
}

/// The certificate callback of an attached context.
///
/// # Safety
///
/// OpenSSL calls it with a live `SSL` and the `arg` given in
/// [`ReloadingAcceptor::attach`]: a pointer to that context's `Attached`.
// SAFETY: unsafe because OpenSSL is its only caller (installed by `ReloadingAcceptor::attach` with
// `SSL_CTX_set_cert_cb`), and the body trusts `ssl` and `arg` as the contract above says.
unsafe extern "C" fn cert_cb(ssl: *mut openssl_sys::SSL, arg: *mut c_void) -> c_int {
    // No panic may unwind into OpenSSL; a panic fails this handshake only.
    let done = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see the function's contract; the context, and so its ex_data,
        // outlives every handshake of its connections.
        let attached = unsafe { &*arg.cast::<Attached>() };
        // SAFETY: `ssl` is the handshake's live SSL, not aliased during the call.
        let ssl = unsafe { SslRef::from_ptr_mut(ssl) };
        install(&attached.acceptor, ssl).is_ok()
    }));
    c_int::from(matches!(done, Ok(true)))
}

/// The CA store and names of `trust` on one connection, and `mode` (the
/// application's verify callback stays: `SSL_set_verify` with none keeps it).
fn set_trust(
    ssl: &mut SslRef,
    trust: &SslContextRef,
    mode: SslVerifyMode,
) -> Result<(), ErrorStack> {
    set_store(ssl, trust)?;
    // SAFETY: `trust` is live and owns its list; the copy's ownership goes to
    // SSL_set_client_CA_list.
    unsafe {
        let names = ffi::SSL_CTX_get_client_CA_list(trust.as_ptr());
        if !names.is_null() {
            let copy = ffi::SSL_dup_CA_list(names);
            if copy.is_null() {
                return Err(ErrorStack::get());
            }
            openssl_sys::SSL_set_client_CA_list(ssl.as_ptr(), copy);
        }
    }
    ssl.set_verify(mode);
    Ok(())
}

impl ReloadingConnector {
    /// Puts the current client certificate, chain and key, and with a
    /// [`ca`](crate::Builder::ca) its store and `SSL_VERIFY_PEER`, on an
    /// outgoing connection the application created from its own context, before
    /// its handshake. Host name checks stay the application's
    /// (`SSL_set1_host`).
    ///
    /// # Errors
    ///
    /// OpenSSL's, if it cannot install them.
    pub fn configure_ssl(&self, ssl: &mut SslRef) -> Result<(), Error> {
        let connector = self.current().load();
        let ctx = connector.context();
        let install = |ssl: &mut SslRef| -> Result<(), ErrorStack> {
            if let (Some(cert), Some(key)) = (ctx.certificate(), ctx.private_key()) {
                // SAFETY: `ssl` is live and borrowed mutably for the call.
                unsafe { ffi::SSL_certs_clear(ssl.as_ptr()) };
                ssl.set_certificate(cert)?;
                for link in chain(ctx) {
                    ssl.add_chain_cert(link.to_owned())?;
                }
                ssl.set_private_key(key)?;
            }
            if self.pinned {
                set_store(ssl, ctx)?;
                ssl.set_verify(SslVerifyMode::PEER);
            }
            Ok(())
        };
        install(ssl).map_err(Error::openssl("configure the connection"))
    }

    /// Like [`configure_ssl`](Self::configure_ssl), once, on a context the
    /// application owns: every connection created from it afterwards gets the
    /// material in service now. Call it again when [`status`](Self::status)
    /// changes (the C interface's change callback) to follow reloads.
    ///
    /// # Errors
    ///
    /// OpenSSL's, if it cannot install them.
    pub fn configure_context(&self, ctx: &mut SslContextBuilder) -> Result<(), Error> {
        let connector = self.current().load();
        let current = connector.context();
        let install = |ctx: &mut SslContextBuilder| -> Result<(), ErrorStack> {
            if let (Some(cert), Some(key)) = (current.certificate(), current.private_key()) {
                ctx.set_certificate(cert)?;
                ctx.set_private_key(key)?;
                // SAFETY: `ctx` is live; SSL_CTX_clear_extra_chain_certs (this ctrl)
                // frees the chain the context held, none of which is borrowed here.
                unsafe {
                    openssl_sys::SSL_CTX_ctrl(
                        ctx.as_ptr(),
                        SSL_CTRL_CLEAR_EXTRA_CHAIN_CERTS,
                        0,
                        std::ptr::null_mut(),
                    )
                };
                for link in chain(current) {
                    ctx.add_extra_chain_cert(link.to_owned())?;
                }
                ctx.check_private_key()?;
            }
            if self.pinned {
                // SAFETY: both contexts are live; the ctrl with larg 1 takes its
                // own reference to the store.
                let ok = unsafe {
                    let store = openssl_sys::SSL_CTX_get_cert_store(current.as_ptr());
                    openssl_sys::SSL_CTX_ctrl(
                        ctx.as_ptr(),
                        openssl_sys::SSL_CTRL_SET_VERIFY_CERT_STORE,
                        1,
                        store.cast(),
                    )
                };
                if ok != 1 {
                    return Err(ErrorStack::get());
                }
                ctx.set_verify(SslVerifyMode::PEER);
            }
            Ok(())
        };
        install(ctx).map_err(Error::openssl("configure the context"))
    }
}

/// The chain certificates of `ctx`'s certificate. `extra_chain_certs()`
/// panics when OpenSSL has none to return (a leaf-only certificate file), so
/// the stack is read here, NULL included.
fn chain(ctx: &SslContextRef) -> impl Iterator<Item = &X509Ref> {
    let mut stack = std::ptr::null_mut();
    // SAFETY: `ctx` is live; the ctrl writes the context's own stack (or NULL)
    // to `stack` and takes no reference.
    unsafe { openssl_sys::SSL_CTX_get_extra_chain_certs(ctx.as_ptr(), &mut stack) };
    // SAFETY: a non-NULL stack belongs to `ctx`, which outlives the borrow.
    let stack = (!stack.is_null()).then(|| unsafe { StackRef::<X509>::from_ptr(stack) });
    stack.into_iter().flat_map(|s| s.iter())
}

/// The verify store of `ctx` on one connection: it verifies the peer's chain
/// instead of the connection's context's store.
fn set_store(ssl: &mut SslRef, ctx: &SslContextRef) -> Result<(), ErrorStack> {
    // SAFETY: both are live; the ctrl with larg 1 takes its own reference.
    let ok = unsafe {
        let store = openssl_sys::SSL_CTX_get_cert_store(ctx.as_ptr());
        openssl_sys::SSL_ctrl(
            ssl.as_ptr(),
            openssl_sys::SSL_CTRL_SET_VERIFY_CERT_STORE,
            1,
            store.cast(),
        )
    };
    if ok == 1 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}
