//! The listening sockets: binding `--listen` and `--admin-listen`, sharing the
//! public ones with the workers, and one accept loop on each.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::accept::{self, AcceptErrors, Gate};
use super::connections::{self, Shared, Transport};
use super::workers::{self, Workers};
use crate::cli::serve::{AdminArgs, ServeArgs};
use crate::routes::Endpoints;
use crate::Failure;

/// A public listener and the runtime its connections are served on (`None`:
/// the main one).
pub(super) type Listener = (std::net::TcpListener, SocketAddr, Option<Handle>);

/// A bound socket and its local address.
pub(super) type Bound = (std::net::TcpListener, SocketAddr);

/// The sockets the server listens on, and the workers that share the public ones.
pub(super) struct Listening {
    /// `None` with one worker: the main thread serves the connections.
    pub(super) pool: Option<Workers>,
    pub(super) public: Vec<Listener>,
    pub(super) admin: Option<Bound>,
}

/// Binds the public addresses, shared with the workers when there are more
/// than one, and the admin address.
pub(super) fn listen(args: &ServeArgs) -> Result<Listening, Failure> {
    let workers = workers::count(args.workers);
    let (pool, public) = if workers == 1 {
        let listeners = bind(&args.listen)?
            .into_iter()
            .map(|(listener, local)| (listener, local, None))
            .collect();
        (None, listeners)
    } else {
        let pool = Workers::start(workers)?;
        let listeners = pool
            .share(bind(&args.listen)?)?
            .into_iter()
            .map(|(listener, local, handle)| (listener, local, Some(handle)))
            .collect();
        (Some(pool), listeners)
    };
    let admin = match args.admin.admin_listen {
        Some(addr) => bind(&[addr])?.pop(),
        None => None,
    };
    Ok(Listening {
        pool,
        public,
        admin,
    })
}

/// Binds every `--listen` address (non-blocking, for tokio).
fn bind(addrs: &[SocketAddr]) -> Result<Vec<Bound>, Failure> {
    let mut listeners = Vec::new();
    for addr in addrs {
        let fail = |e: io::Error| Failure::runtime(format!("cannot listen on {addr}: {e}"));
        let listener = std::net::TcpListener::bind(addr).map_err(fail)?;
        listener.set_nonblocking(true).map_err(fail)?;
        let local = listener.local_addr().map_err(fail)?;
        listeners.push((listener, local));
    }
    Ok(listeners)
}

/// The accept loops spawned so far, and what each of them needs.
struct AcceptLoops<'a> {
    shared: &'a Arc<Shared>,
    errors: Arc<AcceptErrors>,
    shutdown: &'a watch::Receiver<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl AcceptLoops<'_> {
    /// Spawns the accept loop of one listener, whose connections are served as
    /// `transport` with `endpoints`.
    fn spawn(
        &mut self,
        listener: Listener,
        gate: Gate,
        transport: Transport,
        endpoints: Endpoints,
    ) {
        let (listener, local, runtime) = listener;
        let shared = Arc::clone(self.shared);
        // The accept loop, and the connections it spawns, run on the worker
        // that owns the listener.
        let _entered = runtime.as_ref().map(Handle::enter);
        self.tasks.push(accept::spawn_accept_loop(
            listener,
            local,
            gate,
            Arc::clone(&self.errors),
            self.shutdown.clone(),
            move |tcp, peer, permit| {
                tokio::spawn(connections::connection(
                    tcp,
                    peer,
                    Arc::clone(&shared),
                    transport,
                    endpoints,
                    permit,
                ));
            },
        ));
    }

    /// The admin address's loop, under its own connection limit: plain HTTP
    /// on a loopback address, else TLS.
    fn spawn_admin(&mut self, (listener, local): Bound) {
        let transport = if local.ip().is_loopback() {
            Transport::Plain
        } else {
            Transport::Tls
        };
        let scheme = if transport == Transport::Plain {
            "http"
        } else {
            "https"
        };
        // Not `addr=`: that field names the public addresses.
        tracing::info!(admin_addr = %local, scheme, "admin endpoints /status and /metrics listening");
        self.spawn(
            (listener, local, None),
            Gate::new(accept::ADMIN_CONNECTIONS as u64),
            transport,
            Endpoints::Admin,
        );
    }
}

/// One accept loop per `--listen` address, all under one connection limit, and
/// one for the admin address under its own.
pub(super) fn spawn_accept_loops(
    listeners: Vec<Listener>,
    admin: Option<Bound>,
    shared: &Arc<Shared>,
    admin_args: &AdminArgs,
    max_connections: u64,
    shutdown: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let public = Endpoints::Public {
        admin: admin.is_some(),
        diagnostics: admin_args.diagnostics,
    };
    let mut loops = AcceptLoops {
        shared,
        errors: Arc::new(AcceptErrors::new(&shared.app.stats)),
        shutdown,
        tasks: Vec::new(),
    };
    let gate = Gate::new(max_connections);
    let mut logged = Vec::new();
    for listener in listeners {
        if !logged.contains(&listener.1) {
            tracing::info!(addr = %listener.1, "listening");
            logged.push(listener.1);
        }
        loops.spawn(listener, gate.clone(), Transport::Tls, public);
    }
    if let Some(bound) = admin {
        loops.spawn_admin(bound);
    }
    loops.tasks
}
