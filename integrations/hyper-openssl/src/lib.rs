//! A long-lived hyper client over hyper-openssl whose client certificate and
//! CA bundle follow the files of an `openssl-reload` `ReloadingConnector`.
//!
//! hyper-openssl builds one `SslConnector` and runs a callback on each new
//! connection's configuration before its handshake: there the reloader's
//! `configure_ssl` puts the client certificate, key and CA store in service.
//!
//! hyper-openssl also keeps a session cache per host and port and resumes
//! from it, and an OpenSSL client resumes a cached session whatever it is
//! configured with now: after a rotation it would present the old certificate
//! once more (the server takes the session's), and after its CA bundle dropped
//! a CA it would resume with a server it verified under the old bundle and
//! would now refuse. So [`ReloadingHttpsConnector`] starts a new hyper-openssl
//! connector, with an empty session cache, whenever the reloader publishes
//! new material: sessions resume only under the material that made them.

use std::error::Error;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use hyper::body::Bytes;
use hyper::Uri;
use hyper_openssl::client::legacy::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use openssl::error::ErrorStack;
use openssl::ssl::{SslConnector, SslMethod};
use openssl_reload::ReloadingConnector;
use tokio::net::TcpStream;
use tower_service::Service;

/// A client of [`client`], for requests without a body.
pub type HttpsClient = Client<ReloadingHttpsConnector, http_body_util::Empty<Bytes>>;

/// A hyper-openssl connector whose every new connection presents `tls`'s
/// client certificate and verifies the server against its CA bundle, both as
/// they are in service when the connection starts.
///
/// # Errors
///
/// OpenSSL's, if it cannot build the connector.
pub fn https_connector(
    tls: &ReloadingConnector,
) -> Result<HttpsConnector<HttpConnector>, ErrorStack> {
    let mut http = HttpConnector::new();
    http.enforce_http(false); // https:// URLs go on to the TLS layer
    let mut ssl = SslConnector::builder(SslMethod::tls_client())?;
    ssl.set_alpn_protos(b"\x02h2\x08http/1.1")?;
    let mut https = HttpsConnector::with_connector(http, ssl)?;
    let tls = tls.clone();
    https.set_callback(move |config, _uri| {
        // The identity and CA store in service, on this connection, before its handshake.
        tls.configure_ssl(config).map_err(openssl_errors)
    });
    Ok(https)
}

/// The OpenSSL errors of `configure_ssl`, which the callback must return.
fn openssl_errors(error: openssl_reload::Error) -> ErrorStack {
    match error {
        openssl_reload::Error::OpenSsl { source, .. } => source,
        _ => ErrorStack::get(),
    }
}

/// A connector for hyper-util's legacy client: an [`https_connector`], made
/// again (a new session cache) each time the reloader publishes.
#[derive(Clone)]
pub struct ReloadingHttpsConnector {
    tls: ReloadingConnector,
    /// The connector, and the material in service when it was made.
    current: Arc<Mutex<(Arc<SslConnector>, HttpsConnector<HttpConnector>)>>,
}

impl ReloadingHttpsConnector {
    /// A connector over `tls`.
    ///
    /// # Errors
    ///
    /// OpenSSL's, if it cannot build the connector.
    pub fn new(tls: &ReloadingConnector) -> Result<Self, ErrorStack> {
        let made_for = tls.connector();
        Ok(Self {
            tls: tls.clone(),
            current: Arc::new(Mutex::new((made_for, https_connector(tls)?))),
        })
    }

    /// The connector for the material in service: the same one, sessions and
    /// all, until the reloader publishes again. The material is looked up
    /// before the callback's `configure_ssl` looks it up again, so a session
    /// is never cached under material older than its own.
    fn connector(&self) -> Result<HttpsConnector<HttpConnector>, ErrorStack> {
        let in_service = self.tls.connector();
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if !Arc::ptr_eq(&current.0, &in_service) {
            *current = (in_service, https_connector(&self.tls)?);
        }
        Ok(current.1.clone())
    }
}

/// What a connection attempt fails with (hyper-openssl's error type).
pub type BoxError = Box<dyn Error + Send + Sync>;

impl Service<Uri> for ReloadingHttpsConnector {
    type Response = MaybeHttpsStream<TokioIo<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(())) // readiness is the connector's, asked for in `call`
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = self.connector();
        Box::pin(async move {
            let mut https = connector?;
            poll_fn(|cx| https.poll_ready(cx)).await?;
            https.call(uri).await
        })
    }
}

/// A legacy client over a [`ReloadingHttpsConnector`]. `max_idle` idle
/// connections are kept per host: a pooled connection keeps the material it
/// was made with until it closes, so 0 makes every request connect anew
/// with the material in service.
///
/// # Errors
///
/// OpenSSL's, if it cannot build the connector.
pub fn client(tls: &ReloadingConnector, max_idle: usize) -> Result<HttpsClient, ErrorStack> {
    let connector = ReloadingHttpsConnector::new(tls)?;
    Ok(Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(max_idle)
        .build(connector))
}
