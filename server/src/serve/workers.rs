//! Worker threads, nginx's model: each runs a current-thread tokio runtime
//! that watches the listening sockets and serves every connection it accepts,
//! HTTP/2 stream tasks included, to its end. No work-stealing queues and no
//! cross-thread wake-ups on the request path; the main thread keeps the
//! signals, the admin address and the shutdown.
//!
//! The workers share each listening socket, as nginx's workers do by
//! default: every worker is woken by a new connection and the first free one
//! accepts it (the others find the queue empty). One socket per worker
//! (`SO_REUSEPORT`) was measured too: the kernel then assigns a connection to
//! a worker by a hash of its addresses, busy or not, and with few concurrent
//! clients two new connections often queued behind each other on one worker
//! while the other was idle (full handshakes with two workers: 0.89 × nginx,
//! against 1.01 × with one; BENCHMARKS.md).

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::Failure;

/// How long a worker's remaining tasks get once the server is done with them:
/// after the graceful shutdown's own grace period, so only stragglers.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

struct Worker {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

/// The worker threads; dropping it stops and joins them.
pub(super) struct Workers(Vec<Worker>);

impl Workers {
    /// Starts `n` workers, each idle until tasks are spawned on its handle.
    pub(super) fn start(n: usize) -> Result<Self, Failure> {
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let (handle_tx, handle_rx) = std::sync::mpsc::channel();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    let runtime = match runtime {
                        Ok(runtime) => runtime,
                        Err(e) => {
                            let _ = handle_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = handle_tx.send(Ok(runtime.handle().clone()));
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                    runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
                })
                .map_err(|e| Failure::runtime(format!("cannot start worker thread {i}: {e}")))?;
            let handle = handle_rx
                .recv()
                .map_err(|_| Failure::runtime(format!("worker thread {i} exited at start")))?
                .map_err(|e| Failure::runtime(format!("cannot start worker {i}'s runtime: {e}")))?;
            workers.push(Worker {
                handle,
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(Self(workers))
    }

    /// Each listener once per worker: the same socket (a duplicate
    /// descriptor), which each worker's accept loop watches on its own runtime.
    pub(super) fn share(
        &self,
        listeners: Vec<(std::net::TcpListener, SocketAddr)>,
    ) -> Result<Vec<(std::net::TcpListener, SocketAddr, Handle)>, Failure> {
        let mut shared = Vec::new();
        for (listener, local) in listeners {
            for worker in &self.0 {
                let copy = listener
                    .try_clone()
                    .map_err(|e| Failure::runtime(format!("cannot listen on {local}: {e}")))?;
                shared.push((copy, local, worker.handle.clone()));
            }
        }
        Ok(shared)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for worker in &mut self.0 {
            drop(worker.stop.take());
        }
        for worker in &mut self.0 {
            if let Some(thread) = worker.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// `--workers`, else `TOKIO_WORKER_THREADS`, else one per core.
pub(super) fn count(flag: Option<u16>) -> usize {
    if let Some(n) = flag {
        return usize::from(n);
    }
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|n| n.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| thread::available_parallelism().map_or(1, usize::from))
}
