//! axum-server (feature `tls-openssl`) serving certificates that
//! `openssl-reload` reloads: no `reload_from_*` call, no task watching files.
//!
//! axum-server takes an `Arc<SslAcceptor>` and makes each connection with
//! `Ssl::new(acceptor.context())`. The reloader's own front acceptor is owned
//! by the reloader (`&SslAcceptor`, not `Clone`), so the application builds
//! its own acceptor, with axum-server's ALPN (h2, http/1.1), and attaches the
//! reloader to it: every handshake on it then gets the certificate in service.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use axum_server::tls_openssl::OpenSSLConfig;
use axum_server::Handle;
use openssl::ssl::{select_next_proto, AlpnError, SslAcceptor, SslMethod};
use openssl_reload::ReloadingAcceptor;

/// What [`openssl_config`] and [`serve`] fail with: the reloader's errors name
/// the file, OpenSSL's and the socket's come as they are.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// An axum-server TLS configuration whose certificate follows `tls`'s files.
///
/// # Errors
///
/// OpenSSL's, if it cannot build the acceptor, or the reloader's `attach` error.
pub fn openssl_config(tls: &ReloadingAcceptor) -> Result<OpenSSLConfig, BoxError> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())?;
    // What axum-server's own constructors set: HTTP/2 for clients that offer it.
    builder.set_alpn_select_callback(|_, client| {
        select_next_proto(b"\x02h2\x08http/1.1", client).ok_or(AlpnError::NOACK)
    });
    tls.attach(&mut builder)?; // the reloader's certificate on every handshake
    Ok(OpenSSLConfig::from_acceptor(Arc::new(builder.build())))
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
/// [`openssl_config`]'s, or the server's I/O error.
pub async fn serve(
    tls: &ReloadingAcceptor,
    addr: SocketAddr,
    handle: Handle,
) -> Result<(), BoxError> {
    let config = openssl_config(tls)?;
    axum_server::bind_openssl(addr, config)
        .handle(handle)
        .serve(app().into_make_service())
        .await?;
    Ok(())
}
