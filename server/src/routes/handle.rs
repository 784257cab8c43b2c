//! One request from hyper to its response: the method check, the route, HEAD's
//! empty body and the request's log line.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body_util::Full;
use hyper::body::Body as _;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH};
use hyper::{Method, Request, Response, StatusCode, Version};

use super::index::Connection;
use super::response::{text, Body};
use super::route::{route, Endpoints, Routed};
use super::App;
use crate::metrics::Stats;

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
