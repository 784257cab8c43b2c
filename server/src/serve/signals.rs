//! The signals the server handles: SIGHUP reloads (`sighup`), SIGTERM and
//! SIGINT shut down gracefully (`shutdown`).

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::Failure;

/// The signals the server handles, installed before anything slow happens.
pub(super) struct Signals {
    pub(super) term: Signal,
    pub(super) int: Signal,
    pub(super) hup: Signal,
}

impl Signals {
    /// Must run inside the runtime. From here on SIGHUP no longer has its default
    /// action (exit): a `systemctl reload` right after a (re)start, while the key
    /// is still being decrypted, must not stop the service.
    pub(super) fn install() -> Result<Self, Failure> {
        let install = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| Failure::runtime(format!("cannot handle {name}: {e}")))
        };
        Ok(Self {
            term: install(SignalKind::terminate(), "SIGTERM")?,
            int: install(SignalKind::interrupt(), "SIGINT")?,
            hup: install(SignalKind::hangup(), "SIGHUP")?,
        })
    }
}
