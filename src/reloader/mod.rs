//! The reloader core that both sides use: the watched files, the poller thread,
//! the engine that reads, validates, builds and publishes, and the status.
//!
//! ```text
//! Poller (poll.rs) --tick--> Engine::poll (engine.rs)
//!   stat -> changed? -> WatchedFiles::read + parse (material/) -> Build::build
//!   (ServerContexts in acceptor/contexts.rs, SiteBuild in sites/set/snapshot.rs,
//!   ClientContexts in connector.rs) -> ArcSwap::store -> CertificateStatus
//!   (status.rs), subscribers; a failure is logged once and retried (retry.rs)
//! ```

mod engine;
mod retry;
mod start;
pub(crate) mod status;

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;

pub(crate) use self::engine::{Engine, Polled, Setup};
pub(crate) use self::retry::{Backoff, FailureLog};
pub(crate) use self::status::{initial_status, mark_polled};
pub use self::status::{CertificateStatus, Reload, ReloadFailure};

use crate::material::Material;
use crate::poll::Poller;
use crate::Error;

/// Turns parsed material into the value handshakes use; it consumes the
/// material, whose trust store goes into the context. Three types build:
/// `acceptor::ServerContexts` the context a server handshake switches to,
/// `sites::SiteBuild` one site's certificate, `connector::ClientContexts` the
/// client's connector.
pub(crate) trait Build<T>: Send + Sync {
    fn build(&self, material: Material) -> Result<T, Error>;
}

/// An engine and the poller thread that ticks it; the thread stops when this
/// is dropped.
pub(crate) struct Reloader<T> {
    engine: Arc<Engine<T>>,
    _poller: Poller,
}

impl<T: Send + Sync + 'static> Reloader<T> {
    /// Loads the initial material and starts polling.
    pub(crate) fn start(setup: Setup, build: impl Build<T> + 'static) -> Result<Self, Error> {
        let interval = setup.poll_interval;
        let engine = Arc::new(Engine::start(setup, build)?);
        let ticked = Arc::clone(&engine);
        let poller = Poller::spawn(interval, move || {
            ticked.poll();
            ticked.mark_polled();
        })
        .map_err(|source| Error::Thread { source })?;
        Ok(Self {
            engine,
            _poller: poller,
        })
    }

    /// The published value, shared with handshake callbacks.
    pub(crate) fn current(&self) -> &Arc<ArcSwap<T>> {
        self.engine.current()
    }

    pub(crate) fn status(&self) -> CertificateStatus {
        self.engine.status()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<CertificateStatus> {
        self.engine.subscribe()
    }

    pub(crate) fn reload_now(&self) -> Result<Reload, Error> {
        self.engine.reload_now()
    }
}
