//! actix-web 4 (feature `openssl`) serving certificates that `openssl-reload`
//! reloads.
//!
//! `HttpServer::bind_openssl` takes an `SslAcceptorBuilder`, sets its own ALPN
//! (h2, http/1.1) on it and builds it. The reloader is attached to that
//! builder first: a client hello callback and a certificate callback that put
//! the certificate (and, with a CA bundle, client verification) in service on
//! every handshake, leaving actix's ALPN callback in place.

use std::error::Error;
use std::net::SocketAddr;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use openssl::ssl::{SslAcceptor, SslMethod};
use openssl_reload::ReloadingAcceptor;

/// What [`bind`] fails with: the reloader's errors name the file, OpenSSL's
/// and the socket's come as they are.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// Binds an actix-web server for [`hello`] on `addr`, TLS from `tls`, with
/// `workers` worker threads. Call it inside an actix system
/// (`actix_web::rt::System`); the returned server runs when awaited. Returns
/// the bound address too, for port 0.
///
/// # Errors
///
/// OpenSSL's, the reloader's `attach` error, or the socket's.
pub fn bind(
    tls: &ReloadingAcceptor,
    addr: SocketAddr,
    workers: usize,
) -> Result<(Server, SocketAddr), BoxError> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())?;
    tls.attach(&mut builder)?; // the reloader's certificates on every handshake
    let server = HttpServer::new(|| App::new().route("/", web::get().to(hello)))
        .workers(workers)
        .bind_openssl(addr, builder)?; // actix adds its ALPN (h2, http/1.1)
    let bound = server
        .addrs()
        .first()
        .copied()
        .ok_or("bound to no address")?;
    Ok((server.run(), bound))
}

/// `GET /`: `hello`.
pub async fn hello() -> &'static str {
    "hello\n"
}
