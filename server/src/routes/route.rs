//! Which endpoint answers a GET or HEAD, on which listener.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::index::{index_response, Connection};
use super::response::{no_store, respond, text, Body};
use super::slow::slow;
use super::status::status_json;
use super::App;
use crate::metrics;

/// Which endpoints a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoints {
    /// A `--listen` address: `/`, plus `/status` and `/metrics` when there is no
    /// admin address, plus `/slow` with `--diagnostics`.
    Public { admin: bool, diagnostics: bool },
    /// The `--admin-listen` address: `/status` and `/metrics`.
    Admin,
}

/// A route's answer: now, or (`/slow`) later.
pub(super) enum Routed {
    Now(Response<Body>),
    Later(Pin<Box<dyn Future<Output = Response<Body>> + Send>>),
}

/// The response to a GET or HEAD of `path` on a listener serving `endpoints`.
pub(super) fn route(
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
