//! `openssl-reload serve`: listeners, TLS handshakes with a timeout, HTTP/1.1 and
//! HTTP/2 through hyper, SIGHUP reloads, and graceful shutdown on SIGTERM/SIGINT.
//!
//! This module starts and stops the server; `accept` accepts within the
//! connection limit, `connections` handshakes and serves HTTP with the idle
//! timeout, `sighup` reloads on SIGHUP, `banner` prints where the development
//! certificate is.

mod accept;
mod banner;
mod connections;
mod sighup;
mod workers;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openssl::ssl::{select_next_proto, AlpnError, SslContextBuilder, SslMode};
use openssl_reload::openssl::error::ErrorStack;
use openssl_reload::{ClientAuth, CrlCheck, ReloadingAcceptor, ReloadingAcceptorBuilder, StaleCrl};
use tokio::runtime::Handle;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::cli::serve::{AdminArgs, ServeArgs, TicketArgs};
use crate::cli::{ClientAuthArg, CrlCheckArg, StaleCrlArg};
use crate::dev_cert::{self, DevFiles, Outcome};
use crate::metrics::Stats;
use crate::routes::{App, Endpoints};
use crate::timefmt::human_duration;
use crate::{acceptor_builder, Failure};
use accept::{AcceptErrors, Gate};
use connections::{HttpLimits, Shared, Transport};

/// ALPN protocols offered, in the server's order of preference (wire format).
const ALPN: &[u8] = b"\x02h2\x08http/1.1";

/// The TLS policy replayed on the front context and every reloaded one: ALPN,
/// and how records are read and buffered (taken from the front context at
/// `SSL_new`, so the same for every certificate):
/// - read-ahead: one `read(2)` fetches as many records as have arrived, where
///   OpenSSL otherwise reads each record's 5-byte header and then its body;
/// - the record buffers are kept for the connection's life
///   (`SSL_MODE_RELEASE_BUFFERS`, which `SslAcceptor`'s profiles set, is
///   cleared): with keep-alive, freeing and reallocating them around every
///   request cost more than the rest of the request's handling. An idle
///   connection holds them until `--idle-timeout` closes it.
/// - `SSL_MODE_NO_AUTO_CHAIN`: the chain file is sent as it is, as nginx does;
///   OpenSSL does not try to complete it from the context's store at every
///   handshake (with `--ca`, that store holds the client CAs).
fn policy(ctx: &mut SslContextBuilder) -> Result<(), ErrorStack> {
    ctx.set_alpn_select_callback(|_, client| {
        select_next_proto(ALPN, client).ok_or(AlpnError::NOACK)
    });
    ctx.set_read_ahead(true);
    keep_record_buffers(ctx);
    ctx.set_mode(SslMode::NO_AUTO_CHAIN);
    Ok(())
}

/// Clears `SSL_MODE_RELEASE_BUFFERS`, which the openssl crate has no call for.
fn keep_record_buffers(ctx: &mut SslContextBuilder) {
    const SSL_CTRL_CLEAR_MODE: libc::c_int = 78;
    let mode = SslMode::RELEASE_BUFFERS.bits() as libc::c_long;
    // SAFETY: `ctx` is a valid SSL_CTX that we hold exclusively; SSL_CTX_ctrl
    // with SSL_CTRL_CLEAR_MODE only clears bits of its mode and reads no pointer.
    #[allow(unsafe_code)]
    unsafe {
        openssl_sys::SSL_CTX_ctrl(
            ctx.as_ptr(),
            SSL_CTRL_CLEAR_MODE,
            mode,
            std::ptr::null_mut(),
        );
    }
}

/// The signals the server handles, installed before anything slow happens.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Must run inside the runtime. From here on SIGHUP no longer has its default
    /// action (exit): a `systemctl reload` right after a (re)start, while the key
    /// is still being decrypted, must not stop the service.
    fn install() -> Result<Self, Failure> {
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

/// A public listener and the runtime its connections are served on (`None`:
/// the main one).
type Listener = (std::net::TcpListener, SocketAddr, Option<Handle>);

/// Runs the server until SIGTERM or SIGINT.
///
/// The main thread runs a current-thread runtime: signals, SIGHUP reloads,
/// the admin address and the shutdown. With one worker it serves the
/// connections too; with more, each worker thread serves its own (see
/// `workers`).
pub(crate) fn run(args: ServeArgs) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the async runtime: {e}")))?;
    let signals = {
        let _entered = runtime.enter();
        Signals::install()?
    };

    // Listen first: an address in use is reported before anything else happens.
    let workers = workers::count(args.workers);
    let (pool, listeners) = if workers == 1 {
        let listeners = bind(&args.listen)?
            .into_iter()
            .map(|(listener, local)| (listener, local, None))
            .collect();
        (None, listeners)
    } else {
        let pool = workers::Workers::start(workers)?;
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
    let (builder, dev) = match acceptor_builder(&args.identity)? {
        Some(builder) => (builder, None),
        None => {
            let dir = args.dev_dir.clone().unwrap_or_else(dev_cert::default_dir);
            let (files, outcome) = dev_cert::ensure(&dir)?;
            let builder = ReloadingAcceptor::builder().identity(&files.cert, &files.key);
            (builder, Some((files, outcome)))
        }
    };
    // Material that cannot be loaded at start-up is a configuration error: the
    // service manager must not restart into the same failure (exit status 78).
    let tls = configure(builder, &args)
        .build()
        .map_err(|error| Failure::config(error.report()))?;

    let result = runtime.block_on(serve(args, signals, listeners, admin, tls, dev));
    // Connections still open after the grace period are dropped here, on the
    // main runtime and then on each worker's.
    runtime.shutdown_timeout(Duration::from_secs(1));
    drop(pool);
    result
}

/// Binds every `--listen` address (non-blocking, for tokio).
fn bind(addrs: &[SocketAddr]) -> Result<Vec<(std::net::TcpListener, SocketAddr)>, Failure> {
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

/// The flags' settings on top of the identity: polling, the handshake timeout
/// (enforced by `ReloadingAcceptor::accept`), ALPN, mutual TLS, ticket keys.
fn configure(builder: ReloadingAcceptorBuilder, args: &ServeArgs) -> ReloadingAcceptorBuilder {
    let mut builder = builder
        .poll_interval(args.poll_interval)
        .handshake_timeout(args.handshake_timeout)
        .policy(policy);
    if let Some(ca) = &args.ca {
        let auth = match args.client_auth.unwrap_or(ClientAuthArg::Required) {
            ClientAuthArg::Required => ClientAuth::Required,
            ClientAuthArg::Optional => ClientAuth::Optional,
        };
        builder = builder
            .ca(ca)
            .client_auth(auth)
            .check_chain_against_ca(args.require_chain_to_ca);
        if let Some(crl) = &args.crl {
            builder = builder
                .crl(crl)
                .crl_check(match args.crl_check.unwrap_or(CrlCheckArg::Leaf) {
                    CrlCheckArg::Leaf => CrlCheck::Leaf,
                    CrlCheckArg::Chain => CrlCheck::Chain,
                })
                .stale_crl(match args.stale_crl.unwrap_or(StaleCrlArg::Enforce) {
                    StaleCrlArg::Enforce => StaleCrl::KeepEnforcing,
                    StaleCrlArg::Refuse => StaleCrl::RefuseAll,
                });
        }
    }
    let tickets = &args.tickets;
    match &tickets.ticket_keys {
        Some(file) => builder.ticket_key_file(file),
        None => builder.ticket_key_rotation(
            tickets.ticket_key_rotation,
            usize::try_from(tickets.ticket_keys_kept).unwrap_or(usize::MAX),
        ),
    }
}

/// Serves until SIGTERM or SIGINT, then shuts down gracefully.
async fn serve(
    args: ServeArgs,
    signals: Signals,
    listeners: Vec<Listener>,
    admin: Option<(std::net::TcpListener, SocketAddr)>,
    tls: ReloadingAcceptor,
    dev: Option<(DevFiles, Outcome)>,
) -> Result<(), Failure> {
    let Signals {
        term: mut sigterm,
        int: mut sigint,
        hup: sighup,
    } = signals;

    if let Some((files, outcome)) = &dev {
        let mut locals: Vec<_> = listeners.iter().map(|(_, local, _)| *local).collect();
        locals.dedup();
        banner::print_dev_banner(files, *outcome, &locals);
    }

    let max_connections = max_connections(&args);
    let stats = Arc::new(Stats::new(max_connections));
    let app = Arc::new(App {
        tls: tls.clone(),
        stats: Arc::clone(&stats),
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // Every connection task holds a sender; `recv` returns `None` once all are gone.
    let (open_tx, mut open_rx) = mpsc::channel::<Infallible>(1);
    let limits = HttpLimits {
        idle_timeout: args.limits.idle_timeout,
        max_header_size: args.limits.max_header_size,
        max_concurrent_streams: args.limits.max_concurrent_streams,
    };
    let shared = Arc::new(Shared::new(
        app,
        args.handshake_timeout,
        limits,
        open_tx,
        shutdown_rx.clone(),
    ));
    let accept_tasks = spawn_accept_loops(
        listeners,
        admin,
        &shared,
        &args.admin,
        max_connections,
        &shutdown_rx,
    )?;
    let open_tx = shared.open.clone();
    drop(shared);
    log_serving(&args, max_connections);
    tokio::spawn(sighup::reload_on_sighup(sighup, tls));

    let name = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
    };
    stop_accepting(name, args.shutdown_grace, &shutdown_tx, accept_tasks).await;
    drop(open_tx);
    drain(
        &mut open_rx,
        args.shutdown_grace,
        &stats,
        &mut sigterm,
        &mut sigint,
    )
    .await;
    Ok(())
}

/// `--max-connections`, or the default from the open-file limit; warns when
/// the limit given leaves fewer file descriptors than the reserve.
fn max_connections(args: &ServeArgs) -> u64 {
    let open_files = accept::open_file_limit();
    match args.limits.max_connections {
        Some(n) => {
            let n = u64::from(n);
            if let Some(limit) = open_files.filter(|&l| n.saturating_add(accept::FD_RESERVE) > l) {
                tracing::warn!(
                    max_connections = n,
                    open_file_limit = limit,
                    reserve = accept::FD_RESERVE,
                    "--max-connections leaves too few file descriptors (raise `ulimit -n` or \
                     LimitNOFILE=); accepting will back off when they run out"
                );
            }
            n
        }
        None => accept::default_max_connections(open_files),
    }
}

/// One accept loop per `--listen` address, all under one connection limit, and
/// one for the admin address under its own.
fn spawn_accept_loops(
    listeners: Vec<Listener>,
    admin: Option<(std::net::TcpListener, SocketAddr)>,
    shared: &Arc<Shared>,
    admin_args: &AdminArgs,
    max_connections: u64,
    shutdown: &watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, Failure> {
    let errors = Arc::new(AcceptErrors::new(&shared.app.stats));
    let public = Endpoints::Public {
        admin: admin.is_some(),
        diagnostics: admin_args.diagnostics,
    };
    let gate = Gate::new(max_connections);
    let mut tasks = Vec::new();
    let mut spawn = |(listener, local, runtime): Listener,
                     gate: Gate,
                     transport: Transport,
                     endpoints: Endpoints| {
        let shared = Arc::clone(shared);
        // The accept loop, and the connections it spawns, run on the worker
        // that owns the listener.
        let _entered = runtime.as_ref().map(Handle::enter);
        tasks.push(accept::spawn_accept_loop(
            listener,
            local,
            gate,
            Arc::clone(&errors),
            shutdown.clone(),
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
    };
    let mut logged = Vec::new();
    for listener in listeners {
        if !logged.contains(&listener.1) {
            tracing::info!(addr = %listener.1, "listening");
            logged.push(listener.1);
        }
        spawn(listener, gate.clone(), Transport::Tls, public);
    }
    if let Some((listener, local)) = admin {
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
        spawn(
            (listener, local, None),
            Gate::new(accept::ADMIN_CONNECTIONS as u64),
            transport,
            Endpoints::Admin,
        );
    }
    Ok(tasks)
}

/// The start-up line that says the server is up and how to drive it.
fn log_serving(args: &ServeArgs, max_connections: u64) {
    tracing::info!(
        poll_interval = %human_duration(args.poll_interval),
        handshake_timeout = %human_duration(args.handshake_timeout),
        idle_timeout = %human_duration(args.limits.idle_timeout),
        max_connections,
        ticket_keys = %ticket_key_source(&args.tickets),
        "serving; send SIGHUP to reload now, SIGTERM or SIGINT to stop"
    );
}

/// The first step of a graceful shutdown: tells every task that it has begun
/// and waits for the accept loops to end, which closes the listeners.
async fn stop_accepting(
    signal: &str,
    grace: Duration,
    shutdown: &watch::Sender<bool>,
    accept_tasks: Vec<JoinHandle<()>>,
) {
    tracing::info!(
        signal,
        grace = %human_duration(grace),
        "shutting down: no longer accepting connections; letting requests in flight finish"
    );
    let _ = shutdown.send(true);
    for task in accept_tasks {
        let _ = task.await;
    }
}

/// Waits for the connections still open, for at most `grace` or until a second signal.
async fn drain(
    open: &mut mpsc::Receiver<Infallible>,
    grace: Duration,
    stats: &Stats,
    sigterm: &mut Signal,
    sigint: &mut Signal,
) {
    tokio::select! {
        _ = open.recv() => tracing::info!("all connections closed; exiting"),
        () = tokio::time::sleep(grace) => tracing::warn!(
            connections = Stats::get(&stats.connections_open),
            "grace period over; closing the remaining connections"
        ),
        _ = sigterm.recv() => tracing::warn!("second signal; exiting now"),
        _ = sigint.recv() => tracing::warn!("second signal; exiting now"),
    }
}

/// Where the session ticket keys come from, for the start-up log.
fn ticket_key_source(tickets: &TicketArgs) -> String {
    match &tickets.ticket_keys {
        Some(file) => format!("file {}", file.display()),
        None => format!(
            "in memory, rotated every {}, {} kept",
            human_duration(tickets.ticket_key_rotation),
            tickets.ticket_keys_kept
        ),
    }
}
