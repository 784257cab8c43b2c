//! Where an acceptor's poller runs: started by `build`, or, for a server that
//! forks after building ([`defer_polling`](crate::ReloadingAcceptorBuilder::defer_polling)),
//! by [`ReloadingAcceptor::start_polling`] in each process that serves.
//!
//! `fork(2)` copies the memory of the process but only the thread that called
//! it: a child of a process whose acceptor polls has the acceptor without its
//! poller, and perhaps with a lock that the poller held at the fork. So a
//! poller belongs to the process that started it; in another process the
//! calls that would need it refuse with [`Error::Forked`] rather than wait
//! for ever or silently never reload.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::poll::Poller;
use crate::sites::Sites;
use crate::tickets::TicketKeys;
use crate::Error;

/// The acceptor's poller, once started, and the process it runs in.
#[derive(Debug, Default)]
pub(super) struct Polling {
    /// The process the poller runs in; 0 until it is started. Read without the
    /// lock, so that a forked child never takes a lock the parent's thread
    /// may have held.
    pid: AtomicU32,
    poller: Mutex<Option<Poller>>,
}

impl Polling {
    /// Starts the poller in the calling process, unless it runs here already.
    ///
    /// # Errors
    ///
    /// [`Error::Forked`] when it runs in another process (the one this one was
    /// forked from); [`Error::Thread`] when the thread cannot be spawned.
    pub(super) fn start(
        &self,
        interval: Duration,
        sites: &Arc<Sites>,
        tickets: &Arc<TicketKeys>,
    ) -> Result<(), Error> {
        if self.here()? {
            return Ok(());
        }
        let mut slot = self.poller.lock().unwrap_or_else(PoisonError::into_inner);
        // Another thread of this process may have started it meanwhile.
        if self.here()? {
            return Ok(());
        }
        // A hardware key opened before a fork (PKCS#11 sessions are the
        // parent's) is opened again before this process serves: one tick here
        // first. Without one, the poller's first tick is soon enough.
        if crate::material::opened_elsewhere() {
            let _turn = crate::hardware_key_lock();
            sites.poll();
        }
        let (sites, tickets) = (Arc::clone(sites), Arc::clone(tickets));
        let poller = Poller::spawn(interval, move || {
            sites.poll();
            tickets.poll();
        })
        .map_err(|source| Error::Thread { source })?;
        self.pid.store(poller.pid(), Ordering::Release);
        *slot = Some(poller);
        Ok(())
    }

    /// Whether the poller runs in this process (`false`: not started).
    ///
    /// # Errors
    ///
    /// [`Error::Forked`] when it runs in another process.
    pub(super) fn here(&self) -> Result<bool, Error> {
        match self.pid.load(Ordering::Acquire) {
            0 => Ok(false),
            pid if pid == std::process::id() => Ok(true),
            pid => Err(Error::Forked { pid }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy of a `Polling` whose poller runs in another process, as a
    /// forked child has it, refuses to start and to say it polls here.
    #[test]
    fn a_poller_of_another_process_is_refused_not_restarted() {
        let other = std::process::id().wrapping_add(1).max(1);
        let polling = Polling {
            pid: AtomicU32::new(other),
            poller: Mutex::new(None),
        };
        assert!(matches!(polling.here(), Err(Error::Forked { pid }) if pid == other));
        assert!(Polling::default().here().is_ok_and(|here| !here));
    }
}
