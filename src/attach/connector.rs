//! The client side for connections and contexts the application owns: the
//! connector's current identity and CA put on them.

#![allow(unsafe_code)] // Two calls on the application's connection, each with its SAFETY note.

use foreign_types::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::ssl::{SslContextBuilder, SslContextRef, SslRef, SslVerifyMode};
use openssl::stack::StackRef;
use openssl::x509::{X509Ref, X509};

use crate::ffi;
use crate::{Error, ReloadingConnector};

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
                ffi::share_verify_store(ssl, ctx)?;
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
                ffi::clear_extra_chain_certs(ctx);
                for link in chain(current) {
                    ctx.add_extra_chain_cert(link.to_owned())?;
                }
                ctx.check_private_key()?;
            }
            if self.pinned {
                ffi::share_verify_store_ctx(ctx, current)?;
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
