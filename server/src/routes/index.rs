//! `GET /`: what the connection negotiated, described once per connection.

use std::net::SocketAddr;
use std::sync::OnceLock;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, Version};
use openssl::x509::X509;
use openssl_reload::CertificateInfo;

use super::response::Body;

/// What a connection negotiated, for `/` and the request log.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) peer: SocketAddr,
    /// The certificate this connection was served with, and the client's (mutual TLS).
    pub(crate) served: Option<(X509, Option<X509>)>,
    pub(crate) tls_version: &'static str,
    /// `served` described, at the first request for `/`.
    pub(crate) description: OnceLock<Description>,
    /// The body of `/` for the connection's first HTTP version: made once per
    /// connection, then sent as is (a reference-counted buffer).
    pub(crate) index: OnceLock<(Version, Bytes)>,
}

/// Subject and serial of the served certificate, subject of the client's.
#[derive(Debug, Default)]
pub(crate) struct Description {
    certificate: Option<(String, String)>,
    client: Option<String>,
}

impl Connection {
    fn description(&self) -> &Description {
        self.description.get_or_init(|| {
            let Some((cert, client)) = &self.served else {
                return Description::default();
            };
            Description {
                certificate: CertificateInfo::of(cert)
                    .ok()
                    .map(|info| (info.subject, info.serial)),
                client: client
                    .as_ref()
                    .and_then(|cert| CertificateInfo::of(cert).ok())
                    .map(|info| info.subject),
            }
        })
    }
}

/// `GET /`, its body made at the connection's first request for it.
pub(super) fn index_response(
    connection: &Connection,
    version: Version,
    admin_here: bool,
) -> Response<Body> {
    let (first, body) = connection
        .index
        .get_or_init(|| (version, Bytes::from(index(connection, version, admin_here))));
    let body = if *first == version {
        body.clone()
    } else {
        Bytes::from(index(connection, version, admin_here))
    };
    let mut response = Response::new(Full::new(body));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn index(connection: &Connection, version: Version, admin_here: bool) -> String {
    let mut body = String::from("Hello from openssl-reload.\n\n");
    let description = connection.description();
    match &description.certificate {
        Some((subject, serial)) => {
            body.push_str("This connection was served the certificate\n");
            body.push_str(&format!("  subject: {subject}\n  serial:  {serial}\n"));
        }
        None => body.push_str("This connection was served no certificate.\n"),
    }
    let http = match version {
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    body.push_str(&format!("over {} and {http}.\n", connection.tls_version));
    if let Some(client) = &description.client {
        body.push_str(&format!("Your client certificate: {client}\n"));
    }
    if admin_here {
        body.push_str("\nMore: /status (JSON) and /metrics (Prometheus).\n");
    }
    body
}
