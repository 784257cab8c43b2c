//! The other side of the client's tests: a real HTTPS server (hyper over the
//! reloader's own acceptor) that demands a client certificate and answers
//! with the serials it saw, and the client's request.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use openssl_reload::ReloadingAcceptor;
use tokio::net::TcpListener;

use crate::support::{serial_hex, Server};

/// Serves every request with `client=<serial> server=<serial> resumed=<bool>`:
/// the client certificate of the connection (the session's, when it resumed),
/// the certificate the server presented, and whether the session resumed.
/// On an HTTPS server on 127.0.0.1:0, stopped when dropped.
pub async fn serve(tls: ReloadingAcceptor) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let tls = tls.clone();
            tokio::spawn(async move {
                let Ok(stream) = tls.accept(tcp).await else {
                    return;
                };
                let ssl = stream.ssl();
                let seen = format!(
                    "client={} server={} resumed={}",
                    ssl.peer_certificate()
                        .map_or("-".into(), |c| serial_hex(&c)),
                    ssl.certificate().map_or("-".into(), serial_hex),
                    ssl.session_reused(),
                );
                let service = service_fn(move |_| {
                    let body = Full::new(Bytes::from(seen.clone()));
                    async move { Ok::<_, Infallible>(Response::new(body)) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server::new(addr, task)
}

/// What the server saw on one request.
#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    pub client: String,
    pub server: String,
    pub resumed: bool,
}

/// `GET https://127.0.0.1:PORT/` (the leaves carry the IP address) with
/// `client`: what the server saw.
pub async fn get(
    client: &openssl_reload_hyper_openssl::HttpsClient,
    addr: SocketAddr,
) -> Result<Seen, String> {
    let url = format!("https://127.0.0.1:{}/", addr.port());
    let response = client
        .get(url.parse().unwrap())
        .await
        .map_err(|e| format!("request: {e:?}"))?;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    let parse = |key: &str| {
        body.split(' ')
            .find_map(|part| part.strip_prefix(key))
            .map(str::to_owned)
            .ok_or_else(|| format!("no {key} in {body:?}"))
    };
    Ok(Seen {
        client: parse("client=")?,
        server: parse("server=")?,
        resumed: parse("resumed=")? == "true",
    })
}
