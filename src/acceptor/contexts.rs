//! The contexts of the server side, all from one policy: the fixed front
//! acceptor, the trust context a handshake switches to, and the default
//! site's own context.

use std::sync::Arc;

use arc_swap::ArcSwap;
use openssl::error::ErrorStack;
use openssl::ssl::{
    ClientHelloResponse, SslAcceptor, SslAcceptorBuilder, SslAlert, SslContext, SslMethod,
};

use crate::builder::Policy;
use crate::material::{chain_stale_rule, status_callback, Material, Staples};
use crate::reloader::Build;
use crate::session::{self, TrustId};
use crate::sites::{
    client_hello_sni, share_trust, FastPathBuild, SiteCert, Snapshot, TrustContext,
};
use crate::tickets::TicketKeys;
use crate::Error;

use super::ClientAuth;

/// How the server side builds the contexts it publishes, all from one
/// policy: the trust context a handshake switches to, from the CA material
/// ([`Build`]), and the default site's own context, from the trust context
/// and the site's certificate ([`FastPathBuild`]). With `tickets`, the
/// contexts find the ticket keys (a check, which serves nothing, has none).
#[derive(Clone)]
pub(super) struct ServerContexts {
    pub(super) policy: Policy,
    pub(super) auth: Option<ClientAuth>,
    pub(super) tickets: Option<Arc<TicketKeys>>,
    pub(super) staples: Staples,
}

impl Build<TrustContext> for ServerContexts {
    fn build(&self, material: Material) -> Result<TrustContext, Error> {
        let trust = material.trust.as_ref().map_or(TrustId::NONE, |t| t.id);
        let mut builder = server_context(&self.policy, self.auth, material)?;
        switched_callbacks(&mut builder, self.tickets.as_ref(), &self.staples)?;
        Ok(TrustContext {
            ctx: builder.build().into_context(),
            trust,
        })
    }
}

impl FastPathBuild for ServerContexts {
    /// As the trust context (policy, verify mode, the same store and CA names,
    /// the status and ticket callbacks), holding the site's one certificate.
    fn fast_path(&self, trust: &SslContext, cert: &SiteCert) -> Result<SslContext, Error> {
        let mut builder = base_builder(&self.policy, self.auth)?;
        share_trust(&mut builder, trust).map_err(Error::openssl("share the trust context"))?;
        switched_callbacks(&mut builder, self.tickets.as_ref(), &self.staples)?;
        cert.identity.install(&mut builder)?;
        Ok(builder.build().into_context())
    }
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

/// The fixed front acceptor: the policy, the ticket key callback, and the
/// client hello callback that switches each handshake to `current`.
pub(super) fn front_acceptor(
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
