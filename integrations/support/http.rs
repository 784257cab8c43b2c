//! A real HTTP client for the integration tests that serve HTTP over TLS
//! (actix-web, axum-server): hyper-util's legacy client over hyper-openssl, a
//! new connection (and TLS handshake) for every request. Included by each
//! test crate's `common` module with `#[path]`.

use std::net::SocketAddr;
use std::pin::Pin;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::Version;
use hyper_openssl::client::legacy::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// The client's type: HTTPS through hyper-openssl.
pub type Https = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// A client that trusts `ca_pem` and offers `alpn` (wire format, e.g.
/// `b"\x02h2"`). No idle connection is kept, so every request connects anew.
pub fn https(ca_pem: &[u8], alpn: &[u8]) -> Https {
    let mut ssl = SslConnector::builder(SslMethod::tls_client()).unwrap();
    let mut store = X509StoreBuilder::new().unwrap();
    for ca in X509::stack_from_pem(ca_pem).unwrap() {
        store.add_cert(ca).unwrap();
    }
    ssl.set_cert_store(store.build());
    ssl.set_verify(SslVerifyMode::PEER);
    ssl.set_alpn_protos(alpn).unwrap();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let connector = HttpsConnector::with_connector(http, ssl).unwrap();
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .http2_only(alpn == b"\x02h2")
        .build(connector)
}

/// `GET https://127.0.0.1:PORT/` (the leaves carry the IP address): the
/// HTTP version and the body of a 200 answer.
pub async fn get(client: &Https, addr: SocketAddr) -> Result<(Version, String), String> {
    let url = format!("https://127.0.0.1:{}/", addr.port());
    let response = client
        .get(url.parse().unwrap())
        .await
        .map_err(|e| format!("request: {e:?}"))?;
    let (version, status) = (response.version(), response.status());
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    if !status.is_success() {
        return Err(format!("status {status}: {body}"));
    }
    Ok((version, body))
}

/// The certificate the server presents to a client that trusts `ca_pem`.
pub async fn served_certificate(ca_pem: &[u8], addr: SocketAddr) -> X509 {
    let connector = crate::support::client(ca_pem);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let ssl = connector
        .configure()
        .unwrap()
        .into_ssl("localhost")
        .unwrap();
    let mut stream = SslStream::new(ssl, tcp).unwrap();
    Pin::new(&mut stream).connect().await.unwrap();
    stream.ssl().peer_certificate().unwrap()
}
