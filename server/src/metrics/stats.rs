//! The connection counters the server keeps besides the reloader's status.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// Counters the server keeps besides the reloader's status.
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) started: SystemTime,
    pub(crate) handshakes: AtomicU64,
    pub(crate) handshake_errors: AtomicU64,
    pub(crate) handshake_timeouts: AtomicU64,
    pub(crate) connections_open: AtomicU64,
    /// `--max-connections`, in force.
    pub(crate) connections_max: u64,
    /// Connections closed for having had no request in flight for `--idle-timeout`.
    pub(crate) idle_closed: AtomicU64,
    /// `accept(2)` failures for lack of file descriptors or memory.
    pub(crate) accept_errors: AtomicU64,
    pub(crate) requests: AtomicU64,
}

impl Stats {
    pub(crate) fn new(connections_max: u64) -> Self {
        Self {
            connections_max,
            idle_closed: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
            started: SystemTime::now(),
            handshakes: AtomicU64::new(0),
            handshake_errors: AtomicU64::new(0),
            handshake_timeouts: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        }
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
