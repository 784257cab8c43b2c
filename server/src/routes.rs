//! The HTTP endpoints: `/`, `/status`, `/metrics` and the diagnostic `/slow`,
//! and which listener serves which (`Endpoints`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Body as _;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode, Version};
use openssl::x509::X509;
use openssl_reload::{
    CertificateInfo, CertificateStatus, CrlInfo, OcspInfo, ReloadFailure, ReloadingAcceptor,
    SiteStatus, TicketKeyStatus,
};
use serde_json::{json, Value};

use crate::cli::MAX_SLOW_MS;
use crate::metrics::{self, Stats};
use crate::timefmt::{human_duration, rfc3339, rfc3339_millis};

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) tls: ReloadingAcceptor,
    pub(crate) stats: Arc<Stats>,
}

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

type Body = Full<Bytes>;

/// Which endpoints a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoints {
    /// A `--listen` address: `/`, plus `/status` and `/metrics` when there is no
    /// admin address, plus `/slow` with `--diagnostics`.
    Public { admin: bool, diagnostics: bool },
    /// The `--admin-listen` address: `/status` and `/metrics`.
    Admin,
}

/// Routes one request. Every endpoint but `/slow` answers at once, so the
/// future returned holds only the response, not the request: hyper moves that
/// future into a task per HTTP/2 stream, and its size was a measurable part of
/// each request's cost (BENCHMARKS.md).
pub(crate) fn handle(
    request: Request<Incoming>,
    app: Arc<App>,
    connection: Arc<Connection>,
    endpoints: Endpoints,
) -> Handled {
    let started = Instant::now();
    Stats::bump(&app.stats.requests);
    let method = request.method().clone();
    let version = request.version();
    let path = request.uri().path();
    let routed = if method == Method::GET || method == Method::HEAD {
        route(&request, path, &app, &connection, endpoints)
    } else {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are supported\n".to_owned(),
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        Routed::Now(response)
    };
    match routed {
        Routed::Now(response) => Handled::Ready(Some(finish(
            response,
            &method,
            path,
            version,
            started,
            &connection,
            endpoints,
        ))),
        Routed::Later(later) => {
            let path = path.to_owned();
            Handled::Later(Box::pin(async move {
                let response = later.await;
                finish(
                    response,
                    &method,
                    &path,
                    version,
                    started,
                    &connection,
                    endpoints,
                )
            }))
        }
    }
}

/// The response to one request, as a future for hyper.
pub(crate) enum Handled {
    Ready(Option<Response<Body>>),
    Later(Pin<Box<dyn Future<Output = Response<Body>> + Send>>),
}

impl Future for Handled {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            // Taken once; hyper does not poll a finished future again.
            Self::Ready(response) => Poll::Ready(Ok(response.take().unwrap_or_default())),
            Self::Later(later) => later.as_mut().poll(cx).map(Ok),
        }
    }
}

/// A route's answer: now, or (`/slow`) later.
enum Routed {
    Now(Response<Body>),
    Later(Pin<Box<dyn Future<Output = Response<Body>> + Send>>),
}

/// What every response gets: HEAD's empty body, and the request's log line.
fn finish(
    mut response: Response<Body>,
    method: &Method,
    path: &str,
    version: Version,
    started: Instant,
    connection: &Connection,
    endpoints: Endpoints,
) -> Response<Body> {
    if method == Method::HEAD {
        // hyper strips the body of a HEAD response on HTTP/1.1 but not on HTTP/2,
        // where sending one is a protocol error; the length still describes GET's.
        let length = response.body().size_hint().exact().unwrap_or(0);
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(length));
        *response.body_mut() = Full::new(Bytes::new());
    }
    tracing::debug!(
        peer = %connection.peer,
        method = %method,
        path,
        version = ?version,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        admin = endpoints == Endpoints::Admin,
        "request"
    );
    response
}

/// The response to a GET or HEAD of `path` on a listener serving `endpoints`.
fn route(
    request: &Request<Incoming>,
    path: &str,
    app: &App,
    connection: &Arc<Connection>,
    endpoints: Endpoints,
) -> Routed {
    let (public, admin, diagnostics) = match endpoints {
        Endpoints::Public { admin, diagnostics } => (true, !admin, diagnostics),
        Endpoints::Admin => (false, true, false),
    };
    let response = match path {
        "/" if public => index_response(connection, request.version(), admin),
        "/status" if admin => {
            let body = status_json(
                &app.tls.status(),
                &app.tls.sites(),
                &app.tls.ticket_keys(),
                &app.stats,
            );
            let mut body = serde_json::to_string_pretty(&body).unwrap_or_default();
            body.push('\n');
            no_store(respond(StatusCode::OK, "application/json", body))
        }
        "/metrics" if admin => no_store(respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics::render(
                &app.tls.status(),
                &app.tls.sites(),
                &app.tls.ticket_keys(),
                &app.stats,
            ),
        )),
        "/slow" if diagnostics => {
            let query = request.uri().query().map(str::to_owned);
            return Routed::Later(Box::pin(slow(query, Arc::clone(connection))));
        }
        _ if admin && !public => text(
            StatusCode::NOT_FOUND,
            "not found; try /status or /metrics\n".to_owned(),
        ),
        _ if admin => text(
            StatusCode::NOT_FOUND,
            "not found; try /, /status or /metrics\n".to_owned(),
        ),
        _ => text(StatusCode::NOT_FOUND, "not found; try /\n".to_owned()),
    };
    Routed::Now(response)
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", body)
}

fn no_store(mut response: Response<Body>) -> Response<Body> {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /`, its body made at the connection's first request for it.
fn index_response(connection: &Connection, version: Version, admin_here: bool) -> Response<Body> {
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

/// `GET /slow?ms=N`: answers after N milliseconds (default 1000, at most
/// [`MAX_SLOW_MS`]), to watch graceful shutdown finish a request in flight.
async fn slow(query: Option<String>, connection: Arc<Connection>) -> Response<Body> {
    let requested = query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("ms="))
        .map_or(Ok(1000), str::parse::<u64>);
    let Ok(requested) = requested else {
        return text(
            StatusCode::BAD_REQUEST,
            "ms must be a whole number of milliseconds, e.g. /slow?ms=500\n".to_owned(),
        );
    };
    let ms = requested.min(MAX_SLOW_MS);
    tracing::debug!(peer = %connection.peer, ms, "slow request: waiting before answering");
    tokio::time::sleep(Duration::from_millis(ms)).await;
    text(StatusCode::OK, format!("slept {ms} ms\n"))
}

fn certificate_json(cert: &CertificateInfo) -> Value {
    json!({
        "subject": cert.subject,
        "issuer": cert.issuer,
        "serial": cert.serial,
        "subject_alt_names": cert.subject_alt_names,
        "not_before": rfc3339(cert.not_before_unix),
        "not_after": rfc3339(cert.not_after_unix),
        "sha256": cert.sha256,
        "ocsp": cert.ocsp.as_ref().map(ocsp_json),
    })
}

/// The certificate's OCSP staple file: whether it is stapled, the response's
/// status and times, or why it is not stapled.
fn ocsp_json(ocsp: &OcspInfo) -> Value {
    json!({
        "path": ocsp.path.display().to_string(),
        "stapled": ocsp.in_service(),
        "status": ocsp.status,
        "this_update": ocsp.this_update_unix.map(rfc3339),
        "next_update": ocsp.next_update_unix.map(rfc3339),
        "error": ocsp.error,
    })
}

/// One site: its names and certificate, and its own reload record.
fn site_json(site: &SiteStatus) -> Value {
    let status = &site.status;
    json!({
        "name": site.name,
        "path": site.path.display().to_string(),
        "names": site.names,
        "key_type": site.key_type,
        "default": site.default,
        "serving": site.serving,
        "serial": site.certificate().map(|c| c.serial.clone()),
        "not_after": site.certificate().map(|c| rfc3339(c.not_after_unix)),
        "generation": status.generation,
        "reloads": status.reloads,
        "failures": status.failures,
        "last_error": status.last_error.as_ref().map(error_json),
    })
}

/// A CRL in service: `number` and `next_update` are null when the CRL has none.
fn crl_json(crl: &CrlInfo) -> Value {
    json!({
        "path": crl.path.display().to_string(),
        "issuer": crl.issuer,
        "number": crl.number,
        "revoked": crl.revoked,
        "last_update": rfc3339(crl.last_update_unix),
        "next_update": crl.next_update_unix.map(rfc3339),
    })
}

fn error_json(error: &ReloadFailure) -> Value {
    json!({
        "message": error.message,
        "path": error.path.as_ref().map(|p| p.display().to_string()),
        "at": rfc3339_millis(error.at),
    })
}

/// The session ticket keys: `file` is null when they are made and rotated in
/// memory, `rotation_period` null with a file.
fn ticket_keys_json(tickets: &TicketKeyStatus) -> Value {
    json!({
        "file": tickets.file.as_ref().map(|p| p.display().to_string()),
        "rotation_period": tickets.rotation_period.map(human_duration),
        "rotation_period_seconds": tickets.rotation_period.map(|p| p.as_secs_f64()),
        "keys": tickets.keys,
        "rotations": tickets.rotations,
        "last_rotation": rfc3339_millis(tickets.last_rotation),
        "failures": tickets.failures,
        "last_error": tickets.last_error.as_ref().map(error_json),
    })
}

/// The `/status` document. Times are RFC 3339 UTC strings; durations are seconds
/// (with a human form alongside). Add a field here to publish it.
pub(crate) fn status_json(
    status: &CertificateStatus,
    sites: &[SiteStatus],
    tickets: &TicketKeyStatus,
    stats: &Stats,
) -> Value {
    json!({
        "sites": sites.iter().map(site_json).collect::<Vec<_>>(),
        "certificate": status.certificate.as_ref().map(certificate_json),
        "generation": status.generation,
        "reloads": status.reloads,
        "failures": status.failures,
        "consecutive_failures": status.consecutive_failures,
        "last_error": status.last_error.as_ref().map(error_json),
        "last_reload": rfc3339_millis(status.last_reload),
        "last_poll": status.last_poll.map(rfc3339_millis),
        "poll_interval": human_duration(status.poll_interval),
        "poll_interval_seconds": status.poll_interval.as_secs_f64(),
        "ca_certificates": status.ca_certificates,
        "crls": status.crls.iter().map(crl_json).collect::<Vec<_>>(),
        "ticket_keys": ticket_keys_json(tickets),
        "handshakes": {
            "completed": Stats::get(&stats.handshakes),
            "failed": Stats::get(&stats.handshake_errors),
            "timed_out": Stats::get(&stats.handshake_timeouts),
        },
        "connections_open": Stats::get(&stats.connections_open),
        "connections_max": stats.connections_max,
        "connections_idle_closed": Stats::get(&stats.idle_closed),
        "accept_errors": Stats::get(&stats.accept_errors),
        "fips_enabled": crate::fips_enabled(),
        "started": rfc3339_millis(stats.started),
        "version": env!("CARGO_PKG_VERSION"),
    })
}
