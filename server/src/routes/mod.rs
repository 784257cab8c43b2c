//! The HTTP endpoints: `/`, `/status`, `/metrics` and the diagnostic `/slow`,
//! and which listener serves which (`Endpoints`).
//!
//! `handle` takes a request from hyper to its response and log line, `route`
//! picks the endpoint, `response` holds the helpers every endpoint answers
//! with; `index` (`/`), `status` (`/status`) and `slow` (`/slow`) are the
//! endpoints (`/metrics` is `crate::metrics`).

mod handle;
mod index;
mod response;
mod route;
mod slow;
mod status;

use std::sync::Arc;

use openssl_reload::ReloadingAcceptor;

use crate::metrics::Stats;

pub(crate) use handle::handle;
pub(crate) use index::Connection;
pub(crate) use route::Endpoints;

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) tls: ReloadingAcceptor,
    pub(crate) stats: Arc<Stats>,
}
