//! axum-server (feature `tls-openssl`) serving certificates that
//! `openssl-reload` reloads: no `reload_from_*` call, no task watching files.
//!
//! axum-server takes an `Arc<SslAcceptor>` and starts each connection with
//! `Ssl::new(acceptor.context())`. An `SslAcceptor` is a reference-counted
//! `SSL_CTX`, so a clone of the reloader's fixed front acceptor is that very
//! acceptor: its client hello callback puts the certificate in service on
//! every handshake. axum-server's own constructors select h2 by ALPN; the
//! reloader gets the same through its policy.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use axum_server::tls_openssl::OpenSSLConfig;
use axum_server::Handle;
use openssl::error::ErrorStack;
use openssl::ssl::{select_next_proto, AlpnError, SslContextBuilder};
use openssl_reload::ReloadingAcceptor;

/// The reloader's policy for axum-server: ALPN as axum-server's own
/// constructors set it, h2 first, then http/1.1. The policy runs on every
/// context the reloader builds, the front one and those it switches to.
///
/// # Errors
///
/// None; the signature is the one `policy` takes.
pub fn alpn_h2_http1(ctx: &mut SslContextBuilder) -> Result<(), ErrorStack> {
    ctx.set_alpn_select_callback(|_, client| {
        select_next_proto(b"\x02h2\x08http/1.1", client).ok_or(AlpnError::NOACK)
    });
    Ok(())
}

/// An axum-server TLS configuration over `tls`'s fixed front acceptor.
pub fn openssl_config(tls: &ReloadingAcceptor) -> OpenSSLConfig {
    // A clone is one more reference to the same SSL_CTX, callbacks and all.
    OpenSSLConfig::from_acceptor(Arc::new(tls.acceptor().clone()))
}

/// The trivial application: `GET /` answers `hello`.
pub fn app() -> Router {
    Router::new().route("/", get(|| async { "hello\n" }))
}

/// Serves [`app`] over TLS from `tls` on `addr` until `handle` shuts it down
/// (`handle.listening()` tells the address, for port 0).
///
/// # Errors
///
/// The server's I/O error.
pub async fn serve(
    tls: &ReloadingAcceptor,
    addr: SocketAddr,
    handle: Handle,
) -> std::io::Result<()> {
    axum_server::bind_openssl(addr, openssl_config(tls))
        .handle(handle)
        .serve(app().into_make_service())
        .await
}
