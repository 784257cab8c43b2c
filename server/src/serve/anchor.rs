//! A timer that keeps a worker's time driver from waking itself for each new
//! connection.
//!
//! When a timer is registered earlier than the wake-up tokio's time driver
//! last planned (or when it planned none), the driver unparks itself through
//! the I/O driver's eventfd: a `write(2)`, and one more `epoll_wait` that
//! returns at once. Every connection registers timers (the handshake timeout,
//! then the idle timeout), and on a worker with no other timer pending each
//! connection's first one paid that (ci/bench-latency.sh counted the writes).
//! While a worker has connections, the anchor keeps a wake-up planned at most
//! [`PERIOD`] ahead, earlier than any connection's timer, so registering those
//! costs no syscall. It stops once the worker has no connection left, so an
//! idle server still has no wake-ups.
//!
//! Every runtime of the server is a current-thread one (the workers', and the
//! main thread's), so a thread's count is its runtime's.

use std::cell::Cell;
use std::time::Duration;

use tokio::runtime::{Handle, RuntimeFlavor};

/// How far ahead the anchor keeps a wake-up planned: shorter than any
/// connection's timer, long enough to cost nothing.
const PERIOD: Duration = Duration::from_millis(500);

thread_local! {
    /// Connections open on this thread's runtime.
    static OPEN: Cell<usize> = const { Cell::new(0) };
    /// Whether this thread's runtime runs the anchor.
    static TICKING: Cell<bool> = const { Cell::new(false) };
}

/// A connection counted on its worker while it lives.
#[derive(Debug)]
pub(super) struct Anchored(bool);

impl Anchored {
    /// Counts a connection on the current runtime, starting the anchor there
    /// if it is not running. Does nothing on a multi-thread runtime, where a
    /// thread's count would not be its runtime's.
    pub(super) fn hold() -> Self {
        let current_thread =
            Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::CurrentThread);
        if current_thread {
            OPEN.with(|n| n.set(n.get() + 1));
            if !TICKING.with(|t| t.replace(true)) {
                tokio::spawn(tick());
            }
        }
        Self(current_thread)
    }
}

impl Drop for Anchored {
    fn drop(&mut self) {
        if self.0 {
            OPEN.with(|n| n.set(n.get().saturating_sub(1)));
        }
    }
}

/// Keeps a timer pending until the runtime has no connection left.
async fn tick() {
    loop {
        tokio::time::sleep(PERIOD).await;
        if OPEN.with(Cell::get) == 0 {
            TICKING.with(|t| t.set(false));
            return;
        }
    }
}
