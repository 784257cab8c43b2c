//! Pingora serving reloaded certificates: an adapter for Pingora's certificate
//! callback ([`TlsAccept`]) over [`ReloadingAcceptor::install`], which puts the
//! current certificate of the site the client's SNI name selects on each
//! connection, with the CA bundle and verify mode when clients must
//! authenticate.
//!
//! [`tls_settings`] also attaches the reloader to Pingora's context, only for
//! its client hello callback: that binds each connection's sessions before
//! OpenSSL looks a session up, so that sessions resume where a full handshake
//! would succeed (and nowhere else). Pingora's own per-connection certificate
//! callback replaces the attached one, so the certificates come from the adapter.

use async_trait::async_trait;
use http::{Response, StatusCode};
use openssl::ssl::SslVerifyMode;
use openssl_reload::ReloadingAcceptor;
use pingora_core::apps::http_app::{HttpServer, ServeHttp};
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::listeners::TlsAccept;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::tls::TlsRef;
use pingora_core::services::listening::Service;

/// Pingora's certificate callback, answered from a [`ReloadingAcceptor`].
#[derive(Clone)]
pub struct Reloading(pub ReloadingAcceptor);

#[async_trait]
impl TlsAccept for Reloading {
    /// Runs in the middle of every full handshake (not on resumed ones).
    async fn certificate_callback(&self, ssl: &mut TlsRef) {
        if let Err(e) = self.0.install(ssl) {
            // Pingora's callback cannot fail the handshake, and a failure may
            // leave a certificate in place without the client verification:
            // refuse every client on this connection instead.
            log::warn!("openssl-reload: {e}; refusing this connection");
            let refuse = SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT;
            ssl.set_verify_callback(refuse, |_, _| false);
        }
    }
}

/// Pingora TLS settings serving `tls`'s certificates and, when it has a CA
/// bundle, verifying clients against it; Pingora's own defaults otherwise
/// (Mozilla intermediate, TLS 1.2 and 1.3).
///
/// # Errors
///
/// Pingora's, if it cannot build its acceptor; the reloader's, if it cannot
/// attach to it.
pub fn tls_settings(tls: &ReloadingAcceptor) -> Result<TlsSettings, Box<dyn std::error::Error>> {
    let mut settings = TlsSettings::with_callbacks(Box::new(Reloading(tls.clone())))?;
    // For its client hello callback: sessions bound before OpenSSL's lookup.
    tls.attach(&mut settings)?;
    Ok(settings)
}

/// A Pingora service answering every request with [`Hello`] over TLS on
/// `addr` (e.g. `0.0.0.0:8443`), with `settings` from [`tls_settings`].
pub fn service(addr: &str, settings: TlsSettings) -> Service<HttpServer<Hello>> {
    let mut service = Service::new("openssl-reload".to_owned(), HttpServer::new_app(Hello));
    service.add_tls_with_settings(addr, None, settings);
    service
}

/// A trivial app: `hello, client <serial>` naming the client certificate the
/// connection verified (`-` without one).
#[derive(Clone, Copy, Debug, Default)]
pub struct Hello;

#[async_trait]
impl ServeHttp for Hello {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let ssl = session.digest().and_then(|d| d.ssl_digest.as_ref());
        let serial = ssl.and_then(|s| s.serial_number.clone());
        let body = format!("hello, client {}\n", serial.as_deref().unwrap_or("-"));
        Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "text/plain")
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body.into_bytes())
            .unwrap_or_default()
    }
}
