//! `GET /slow`: a request that takes its time, for watching graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use hyper::{Response, StatusCode};

use super::index::Connection;
use super::response::{text, Body};
use crate::cli::MAX_SLOW_MS;

/// `GET /slow?ms=N`: answers after N milliseconds (default 1000, at most
/// [`MAX_SLOW_MS`]), to watch graceful shutdown finish a request in flight.
pub(super) async fn slow(query: Option<String>, connection: Arc<Connection>) -> Response<Body> {
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
