//! Worker threads, nginx's model: each runs a current-thread tokio runtime
//! with its own listening socket per `--listen` address (`SO_REUSEPORT`, so
//! the kernel spreads new connections over the workers), and every connection
//! it accepts, HTTP/2 stream tasks included, stays on it. No work-stealing
//! queues and no cross-thread wake-ups on the request path; the main thread
//! keeps the signals, the admin address and the shutdown.

use std::io;
use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use tokio::net::TcpSocket;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::Failure;

/// The kernel's queue of connections not yet accepted, per socket (capped by
/// `net.core.somaxconn`). nginx uses 511.
const LISTEN_BACKLOG: u32 = 1024;

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

    /// Binds every address once per worker, in that worker's runtime. The
    /// first worker's socket picks the port of an address with port 0; the
    /// others bind the same one. An address in use fails here, at start-up.
    pub(super) fn bind(
        &self,
        addrs: &[SocketAddr],
    ) -> Result<Vec<(std::net::TcpListener, SocketAddr, Handle)>, Failure> {
        let mut listeners = Vec::new();
        for addr in addrs {
            let fail = |e: io::Error| Failure::runtime(format!("cannot listen on {addr}: {e}"));
            let mut local = *addr;
            for (i, worker) in self.0.iter().enumerate() {
                let listener = bind_reuseport(&worker.handle, local).map_err(fail)?;
                if i == 0 {
                    local = listener.local_addr().map_err(fail)?;
                }
                listeners.push((listener, local, worker.handle.clone()));
            }
        }
        Ok(listeners)
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

/// A non-blocking listening socket on `addr` with `SO_REUSEPORT`.
fn bind_reuseport(handle: &Handle, addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    // tokio's `listen` registers the socket with a runtime; `into_std` takes it
    // back out, non-blocking, for the accept loop to watch on its worker.
    let _runtime = handle.enter();
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)?.into_std()
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
