//! Mutual TLS by hand, to offer a chosen session: an OpenSSL connector with a
//! client certificate, and one HTTP/1.1 GET (hyper's client connection) over a
//! connection that offers `session`.

use std::net::SocketAddr;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use openssl::ssl::{SslConnector, SslMethod, SslSession, SslSessionRef};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;

use crate::support::Leaf;

/// A connector that trusts `ca_pem` and presents `leaf`.
pub fn connector(ca_pem: &[u8], leaf: &Leaf) -> SslConnector {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    let mut store = X509StoreBuilder::new().unwrap();
    for ca in X509::stack_from_pem(ca_pem).unwrap() {
        store.add_cert(ca).unwrap();
    }
    b.set_cert_store(store.build());
    b.set_certificate(&leaf.cert).unwrap();
    b.set_private_key(&leaf.key).unwrap();
    b.build()
}

/// What one GET saw.
pub struct Exchange {
    pub resumed: bool,
    /// The session to offer next (TLS 1.3 tickets arrive with the response).
    pub session: SslSession,
}

/// Connects as `localhost` offering `session`, sends `GET /` and reads a 200
/// answer; then closes cleanly so that the session stays resumable.
pub async fn get(
    connector: &SslConnector,
    addr: SocketAddr,
    session: Option<&SslSessionRef>,
) -> Result<Exchange, String> {
    let stream = crate::support::connect_offering(connector, addr, "localhost", session).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("http: {e}"))?;
    let conn = tokio::spawn(conn.without_shutdown());
    let request = Request::get("/")
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let _ = response.into_body().collect().await;
    if !status.is_success() {
        return Err(format!("status {status}"));
    }
    drop(sender);
    let parts = conn
        .await
        .unwrap()
        .map_err(|e| format!("connection: {e}"))?;
    let mut stream = parts.io.into_inner();
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
    let ssl = stream.ssl();
    Ok(Exchange {
        resumed: ssl.session_reused(),
        session: ssl.session().expect("a session").to_owned(),
    })
}
