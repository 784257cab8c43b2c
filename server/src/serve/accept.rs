//! Accepting connections within bounds: one loop per listener, a connection
//! limit that leaves new clients in the kernel's listen backlog, and a back-off
//! on `EMFILE`/`ENFILE` that logs at most once a second.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use super::accept4::accept_nonblocking;
use super::connections::stopped;
use crate::metrics::Stats;
use crate::timefmt::human_duration;

/// File descriptors kept out of `--max-connections`' default: the certificate,
/// key, CA and ticket-key files read at a reload, the listeners, the admin port
/// and its connections, and what the runtime and logging hold.
const FD_RESERVE: u64 = 64;

/// How many admin connections may be open at once, apart from `--max-connections`.
pub(super) const ADMIN_CONNECTIONS: usize = 64;

/// The soft limit on open files (`RLIMIT_NOFILE`), if it can be read and is finite.
fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through a valid, exclusive pointer.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (rc == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// `--max-connections` when it is not given: the open-file limit less
/// [`FD_RESERVE`], at least 1 (and 65536 when the limit is unknown or infinite).
fn default_max_connections(open_files: Option<u64>) -> u64 {
    match open_files {
        Some(limit) => limit.saturating_sub(FD_RESERVE).max(1),
        None => 65_536,
    }
}

/// `--max-connections`, or the default from the open-file limit; warns when
/// the limit given leaves fewer file descriptors than the reserve.
pub(super) fn max_connections(flag: Option<u32>) -> u64 {
    let open_files = open_file_limit();
    match flag {
        Some(n) => {
            let n = u64::from(n);
            if let Some(limit) = open_files.filter(|&l| n.saturating_add(FD_RESERVE) > l) {
                tracing::warn!(
                    max_connections = n,
                    open_file_limit = limit,
                    reserve = FD_RESERVE,
                    "--max-connections leaves too few file descriptors (raise `ulimit -n` or \
                     LimitNOFILE=); accepting will back off when they run out"
                );
            }
            n
        }
        None => default_max_connections(open_files),
    }
}

/// A connection limit shared by listeners: a permit is taken before `accept(2)`,
/// so at the limit the kernel queues new connections instead of the server
/// accepting and dropping them.
#[derive(Clone, Debug)]
pub(super) struct Gate(Arc<Semaphore>);

impl Gate {
    pub(super) fn new(permits: u64) -> Self {
        let permits = usize::try_from(permits)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Self(Arc::new(Semaphore::new(permits)))
    }

    async fn enter(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.0)
            .acquire_owned()
            .await
            .expect("the connection gate is never closed")
    }
}

/// `accept(2)` failures for lack of resources: the back-off, and a warning at
/// most once a second that counts the failures since the last one.
#[derive(Debug)]
pub(super) struct AcceptErrors {
    /// Set while failing, so that a successful accept costs one load otherwise.
    failing: AtomicBool,
    state: Mutex<ErrorState>,
    stats: Arc<Stats>,
}

#[derive(Debug)]
struct ErrorState {
    last_logged: Option<Instant>,
    unlogged: u64,
    backoff: Duration,
}

const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(1);

impl AcceptErrors {
    pub(super) fn new(stats: &Arc<Stats>) -> Self {
        Self {
            failing: AtomicBool::new(false),
            state: Mutex::new(ErrorState {
                last_logged: None,
                unlogged: 0,
                backoff: Duration::ZERO,
            }),
            stats: Arc::clone(stats),
        }
    }

    /// Records a failure; returns how long to wait before accepting again
    /// (doubling from 10 ms to 1 s while failures go on).
    fn failed(&self, error: &io::Error, addr: SocketAddr) -> Duration {
        Stats::bump(&self.stats.accept_errors);
        self.failing.store(true, Ordering::Relaxed);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.unlogged += 1;
        state.backoff = (state.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
        let due = state.last_logged.is_none_or(|at| at.elapsed() >= LOG_EVERY);
        if due {
            tracing::warn!(
                %error,
                %addr,
                failures = state.unlogged,
                retry_in = %human_duration(state.backoff),
                "cannot accept connections (out of file descriptors or memory); backing off, \
                 waiting connections stay queued (failures: count since the last such line)"
            );
            state.unlogged = 0;
            state.last_logged = Some(Instant::now());
        }
        state.backoff
    }

    fn succeeded(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.backoff = Duration::ZERO;
        }
    }
}

fn is_resource_exhaustion(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Accepts on `listener` (non-blocking) until shutdown, within `gate`, handing
/// each connection (with its permit) to `serve`. Runs, and registers the
/// listener and its connections, on the runtime it is spawned from.
///
/// A permit is taken only once a connection is waiting: with one listener per
/// worker, a loop that held a permit while idle would keep it from another
/// worker's waiting client at the limit. At the limit the loop waits for a
/// permit with the connection still in the kernel's queue.
pub(super) fn spawn_accept_loop<F>(
    listener: std::net::TcpListener,
    local: SocketAddr,
    gate: Gate,
    errors: Arc<AcceptErrors>,
    mut shutdown: watch::Receiver<bool>,
    serve: F,
) -> JoinHandle<()>
where
    F: Fn(TcpStream, SocketAddr, OwnedSemaphorePermit) + Send + 'static,
{
    tokio::spawn(async move {
        let Some(listener) = watch(listener, local) else {
            return;
        };
        loop {
            let mut ready = tokio::select! {
                biased;
                () = stopped(&mut shutdown) => return,
                ready = listener.readable() => match ready {
                    Ok(ready) => ready,
                    Err(error) => {
                        tracing::error!(%error, addr = %local, "the listening socket failed; not accepting on it");
                        return;
                    }
                },
            };
            let permit = tokio::select! {
                biased;
                () = stopped(&mut shutdown) => return,
                permit = gate.enter() => permit,
            };
            // WouldBlock clears the readiness: another look, then wait again.
            let Ok(accepted) = ready.try_io(|l| accept_nonblocking(l.get_ref())) else {
                continue;
            };
            if let Some(wait) = hand_over(accepted, permit, &errors, local, &serve) {
                tokio::select! {
                    biased;
                    () = stopped(&mut shutdown) => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    })
}

/// `listener` registered with the runtime, or `None` (logged) if it cannot be.
fn watch(
    listener: std::net::TcpListener,
    local: SocketAddr,
) -> Option<AsyncFd<std::net::TcpListener>> {
    // SAFETY: the AsyncFd owns the std listener, whose descriptor stays open
    // and the same until the AsyncFd (and the listener with it) is dropped.
    #[allow(unsafe_code)]
    match unsafe { AsyncFd::register_with_interest(listener, Interest::READABLE) } {
        Ok(listener) => Some(listener),
        Err(error) => {
            tracing::error!(%error, addr = %local, "cannot watch the listening socket; not accepting on it");
            None
        }
    }
}

/// Hands an accepted connection, with its permit, to `serve`. After a failure
/// for lack of resources, returns how long to wait before accepting again: at
/// once would spin, and the connection stays queued (the permit is released).
fn hand_over<F>(
    accepted: io::Result<(std::net::TcpStream, SocketAddr)>,
    permit: OwnedSemaphorePermit,
    errors: &AcceptErrors,
    local: SocketAddr,
    serve: &F,
) -> Option<Duration>
where
    F: Fn(TcpStream, SocketAddr, OwnedSemaphorePermit),
{
    match accepted.and_then(|(tcp, peer)| Ok((TcpStream::from_std(tcp)?, peer))) {
        Ok((tcp, peer)) => {
            errors.succeeded();
            let _ = tcp.set_nodelay(true);
            serve(tcp, peer, permit);
            None
        }
        Err(error) if is_resource_exhaustion(&error) => Some(errors.failed(&error, local)),
        Err(error) => {
            tracing::debug!(%error, "accept failed; continuing");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limit_leaves_a_reserve() {
        assert_eq!(default_max_connections(Some(1024)), 1024 - FD_RESERVE);
        assert_eq!(default_max_connections(Some(65536)), 65536 - FD_RESERVE);
        assert_eq!(default_max_connections(Some(10)), 1);
        assert_eq!(default_max_connections(None), 65_536);
    }

    #[test]
    fn backoff_doubles_and_resets() {
        let errors = AcceptErrors::new(&Arc::new(Stats::new(1)));
        let error = io::Error::from_raw_os_error(libc::EMFILE);
        let addr: SocketAddr = ([127, 0, 0, 1], 1).into();
        assert_eq!(errors.failed(&error, addr), MIN_BACKOFF);
        assert_eq!(errors.failed(&error, addr), MIN_BACKOFF * 2);
        for _ in 0..20 {
            errors.failed(&error, addr);
        }
        assert_eq!(errors.failed(&error, addr), MAX_BACKOFF);
        errors.succeeded();
        assert_eq!(errors.failed(&error, addr), MIN_BACKOFF);
    }
}
