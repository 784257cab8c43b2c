//! Start-up and the server's life: listen, load the certificate, serve until
//! SIGTERM or SIGINT, shut down.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use openssl_reload::{ReloadingAcceptor, ReloadingAcceptorBuilder};
use tokio::sync::{mpsc, watch};

use super::accept;
use super::connections::{HttpLimits, Shared};
use super::listeners::{self, Bound, Listener, Listening};
use super::signals::Signals;
use super::{banner, shutdown, sighup, tls};
use crate::cli::serve::{ServeArgs, TicketArgs};
use crate::dev_cert::{self, DevFiles, Outcome};
use crate::metrics::Stats;
use crate::routes::App;
use crate::timefmt::human_duration;
use crate::{acceptor_builder, Failure};

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
    let Listening {
        pool,
        public,
        admin,
    } = listeners::listen(&args)?;
    let (builder, dev) = identity(&args)?;
    // Material that cannot be loaded at start-up is a configuration error: the
    // service manager must not restart into the same failure (exit status 78).
    let tls = tls::configure(builder, &args)
        .build()
        .map_err(|error| Failure::config(error.report()))?;

    let result = runtime.block_on(serve(args, signals, public, admin, tls, dev));
    // Connections still open after the grace period are dropped here, on the
    // main runtime and then on each worker's.
    runtime.shutdown_timeout(Duration::from_secs(1));
    drop(pool);
    result
}

/// The builder with the identity the flags name, or else with the development
/// certificate (made if needed), and what became of it.
fn identity(
    args: &ServeArgs,
) -> Result<(ReloadingAcceptorBuilder, Option<(DevFiles, Outcome)>), Failure> {
    Ok(match acceptor_builder(&args.identity)? {
        Some(builder) => (builder, None),
        None => {
            let dir = args.dev_dir.clone().unwrap_or_else(dev_cert::default_dir);
            let (files, outcome) = dev_cert::ensure(&dir)?;
            let builder = ReloadingAcceptor::builder().identity(&files.cert, &files.key);
            (builder, Some((files, outcome)))
        }
    })
}

/// Serves until SIGTERM or SIGINT, then shuts down gracefully.
async fn serve(
    args: ServeArgs,
    signals: Signals,
    listeners: Vec<Listener>,
    admin: Option<Bound>,
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

    let max_connections = accept::max_connections(args.limits.max_connections);
    let stats = Arc::new(Stats::new(max_connections));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // Every connection task holds a sender; `recv` returns `None` once all are gone.
    let (open_tx, mut open_rx) = mpsc::channel::<Infallible>(1);
    let shared = Arc::new(shared(&args, &tls, &stats, open_tx, &shutdown_rx));
    let accept_tasks = listeners::spawn_accept_loops(
        listeners,
        admin,
        &shared,
        &args.admin,
        max_connections,
        &shutdown_rx,
    );
    let open_tx = shared.open.clone();
    drop(shared);
    log_serving(&args, max_connections);
    tokio::spawn(sighup::reload_on_sighup(sighup, tls));

    let name = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
    };
    shutdown::stop_accepting(name, args.shutdown_grace, &shutdown_tx, accept_tasks).await;
    drop(open_tx);
    shutdown::drain(
        &mut open_rx,
        args.shutdown_grace,
        &stats,
        &mut sigterm,
        &mut sigint,
    )
    .await;
    Ok(())
}

/// What every connection shares: the application and the flags' HTTP limits.
fn shared(
    args: &ServeArgs,
    tls: &ReloadingAcceptor,
    stats: &Arc<Stats>,
    open: mpsc::Sender<Infallible>,
    shutdown: &watch::Receiver<bool>,
) -> Shared {
    let app = Arc::new(App {
        tls: tls.clone(),
        stats: Arc::clone(stats),
    });
    let limits = HttpLimits {
        idle_timeout: args.limits.idle_timeout,
        max_header_size: args.limits.max_header_size,
        max_concurrent_streams: args.limits.max_concurrent_streams,
    };
    Shared::new(app, args.handshake_timeout, limits, open, shutdown.clone())
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
