//! The client side for connections and contexts the application owns: the
//! connector's current identity and CA put on them.

use openssl::error::ErrorStack;
use openssl::ssl::{SslContextBuilder, SslContextRef, SslRef, SslVerifyMode};
use openssl::x509::X509Ref;

use crate::ffi;
use crate::{Error, ReloadingConnector};

impl ReloadingConnector {
    /// Puts the current client certificate, chain and key, and with a
    /// [`ca`](crate::Builder::ca) its store and `SSL_VERIFY_PEER`, on an
    /// outgoing connection the application created from its own context, before
    /// its handshake. Host name checks stay the application's
    /// (`SSL_set1_host`).
    ///
    /// A client session cache the application keeps (hyper-openssl's, for
    /// one) must be emptied when the material changes: OpenSSL resumes a
    /// session it is given whatever the connection is configured with now, so
    /// a session made with an old client certificate, or with a server of a
    /// CA since dropped from the bundle, would still resume. Start a new cache
    /// when [`connector`](Self::connector) returns a different `Arc`, as
    /// `integrations/hyper-openssl` does.
    ///
    /// # Errors
    ///
    /// OpenSSL's, if it cannot install them.
    pub fn configure_ssl(&self, ssl: &mut SslRef) -> Result<(), Error> {
        let connector = self.current().load();
        let ctx = connector.context();
        let install = |ssl: &mut SslRef| -> Result<(), ErrorStack> {
            if let (Some(cert), Some(key)) = (ctx.certificate(), ctx.private_key()) {
                ffi::ssl::certs_clear(ssl);
                ssl.set_certificate(cert)?;
                for link in chain(ctx) {
                    ssl.add_chain_cert(link.to_owned())?;
                }
                ssl.set_private_key(key)?;
            }
            if self.pinned {
                ffi::ssl::share_verify_store(ssl, ctx)?;
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
                ffi::ssl::clear_extra_chain_certs(ctx);
                for link in chain(current) {
                    ctx.add_extra_chain_cert(link.to_owned())?;
                }
                ctx.check_private_key()?;
            }
            if self.pinned {
                ffi::ssl::share_verify_store_ctx(ctx, current)?;
                ctx.set_verify(SslVerifyMode::PEER);
            }
            Ok(())
        };
        install(ctx).map_err(Error::openssl("configure the context"))
    }
}

/// The chain certificates of `ctx`'s certificate, none included
/// (`ffi::ssl::extra_chain_certs`: the openssl crate's panics then).
fn chain(ctx: &SslContextRef) -> impl Iterator<Item = &X509Ref> {
    ffi::ssl::extra_chain_certs(ctx)
        .into_iter()
        .flat_map(|s| s.iter())
}
