//! `openssl-reload serve`: listeners, TLS handshakes with a timeout, HTTP/1.1 and
//! HTTP/2 through hyper, SIGHUP reloads, and graceful shutdown on SIGTERM/SIGINT.

use std::convert::Infallible;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use openssl::ssl::{select_next_proto, AlpnError, SslContextBuilder};
use openssl_reload::openssl::error::ErrorStack;
use openssl_reload::{
    CertificateInfo, ClientAuth, Reload, ReloadingAcceptor, ReloadingAcceptorBuilder,
    TicketKeyStatus,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio_openssl::SslStream;

use crate::cli::{ClientAuthArg, ServeArgs, TicketArgs};
use crate::dev_cert::{self, DevFiles, Outcome};
use crate::metrics::Stats;
use crate::routes::{self, App, Connection};
use crate::timefmt::human_duration;
use crate::{acceptor_builder, Failure};

/// ALPN protocols offered, in the server's order of preference (wire format).
const ALPN: &[u8] = b"\x02h2\x08http/1.1";

/// The TLS policy replayed on the front context and every reloaded one: ALPN.
fn policy(ctx: &mut SslContextBuilder) -> Result<(), ErrorStack> {
    ctx.set_alpn_select_callback(|_, client| {
        select_next_proto(ALPN, client).ok_or(AlpnError::NOACK)
    });
    Ok(())
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

/// Runs the server until SIGTERM or SIGINT.
pub(crate) fn run(args: ServeArgs) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the async runtime: {e}")))?;
    let signals = {
        let _entered = runtime.enter();
        Signals::install()?
    };

    // Listen first: an address in use is reported before anything else happens.
    let listeners = bind(&args.listen)?;
    let (builder, dev) = match acceptor_builder(&args.identity) {
        Some(builder) => (builder, None),
        None => {
            let dir = args.dev_dir.clone().unwrap_or_else(dev_cert::default_dir);
            let (files, outcome) = dev_cert::ensure(&dir)?;
            let builder = ReloadingAcceptor::builder(&files.cert, &files.key);
            (builder, Some((files, outcome)))
        }
    };
    let tls = configure(builder, &args).build()?;

    let result = runtime.block_on(serve(args, signals, listeners, tls, dev));
    // Connections still open after the grace period are dropped here.
    runtime.shutdown_timeout(Duration::from_secs(1));
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
            .client_ca(ca, auth)
            .check_chain_against_ca(args.require_chain_to_ca);
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

async fn serve(
    args: ServeArgs,
    signals: Signals,
    listeners: Vec<(std::net::TcpListener, SocketAddr)>,
    tls: ReloadingAcceptor,
    dev: Option<(DevFiles, Outcome)>,
) -> Result<(), Failure> {
    let Signals {
        term: mut sigterm,
        int: mut sigint,
        hup: sighup,
    } = signals;

    if let Some((files, outcome)) = &dev {
        let locals: Vec<_> = listeners.iter().map(|(_, local)| *local).collect();
        print_dev_banner(files, *outcome, &locals);
    }

    let stats = Arc::new(Stats::new());
    let app = Arc::new(App {
        tls: tls.clone(),
        stats: Arc::clone(&stats),
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // Every connection task holds a sender; `recv` returns `None` once all are gone.
    let (open_tx, mut open_rx) = mpsc::channel::<Infallible>(1);
    let accept_tasks = spawn_accept_loops(
        listeners,
        &app,
        args.handshake_timeout,
        &shutdown_rx,
        &open_tx,
    )?;
    tracing::info!(
        poll_interval = %human_duration(args.poll_interval),
        handshake_timeout = %human_duration(args.handshake_timeout),
        ticket_keys = %ticket_key_source(&args.tickets),
        "serving; send SIGHUP to reload now, SIGTERM or SIGINT to stop"
    );
    tokio::spawn(reload_on_sighup(sighup, tls));

    let name = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
    };
    tracing::info!(
        signal = name,
        grace = %human_duration(args.shutdown_grace),
        "shutting down: no longer accepting connections; letting requests in flight finish"
    );
    let _ = shutdown_tx.send(true);
    for task in accept_tasks {
        // The listeners are closed when their tasks end.
        let _ = task.await;
    }
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

/// One accept loop per listener, each logging the address it listens on.
fn spawn_accept_loops(
    listeners: Vec<(std::net::TcpListener, SocketAddr)>,
    app: &Arc<App>,
    handshake_timeout: Duration,
    shutdown: &watch::Receiver<bool>,
    open: &mpsc::Sender<Infallible>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, Failure> {
    let mut tasks = Vec::new();
    for (listener, local) in listeners {
        let listener = TcpListener::from_std(listener)
            .map_err(|e| Failure::runtime(format!("cannot listen on {local}: {e}")))?;
        tracing::info!(addr = %local, "listening");
        tasks.push(tokio::spawn(accept_loop(
            listener,
            Arc::clone(app),
            handshake_timeout,
            shutdown.clone(),
            open.clone(),
        )));
    }
    Ok(tasks)
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

/// Resolves once shutdown has begun.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|&stop| stop).await;
}

async fn accept_loop(
    listener: TcpListener,
    app: Arc<App>,
    handshake_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
    open: mpsc::Sender<Infallible>,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = stopped(&mut shutdown) => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                tokio::spawn(connection(
                    tcp,
                    peer,
                    Arc::clone(&app),
                    handshake_timeout,
                    shutdown.clone(),
                    open.clone(),
                ));
            }
            Err(error) if is_resource_exhaustion(&error) => {
                // Out of file descriptors or memory: accepting again at once would spin.
                tracing::warn!(%error, "cannot accept connections; retrying in 100ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => tracing::debug!(%error, "accept failed; continuing"),
        }
    }
}

fn is_resource_exhaustion(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Counts an open connection for as long as it lives.
struct OpenConnection(Arc<Stats>);

impl OpenConnection {
    fn new(stats: &Arc<Stats>) -> Self {
        Stats::bump(&stats.connections_open);
        Self(Arc::clone(stats))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0
            .connections_open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    app: Arc<App>,
    handshake_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
    _open: mpsc::Sender<Infallible>,
) {
    let _counted = OpenConnection::new(&app.stats);
    // `accept` gives up after --handshake-timeout (set on the builder).
    let stream = tokio::select! {
        result = app.tls.accept(tcp) => match result {
            Ok(stream) => stream,
            Err(error) => return handshake_failed(&app.stats, peer, &error, handshake_timeout),
        },
        // A handshake in progress at shutdown has no request in flight yet.
        () = stopped(&mut shutdown) => return,
    };
    Stats::bump(&app.stats.handshakes);
    let (info, alpn) = describe(&stream, peer);
    serve_http(stream, app, Arc::new(info), alpn, shutdown).await;
}

/// Counts and logs a handshake that failed or timed out.
fn handshake_failed(stats: &Stats, peer: SocketAddr, error: &io::Error, timeout: Duration) {
    // The library's timeout is the only `TimedOut` without an OS error code; an
    // ETIMEDOUT from the socket is a broken connection, counted as an error.
    if error.kind() == io::ErrorKind::TimedOut && error.raw_os_error().is_none() {
        Stats::bump(&stats.handshake_timeouts);
        tracing::debug!(
            %peer,
            timeout = %human_duration(timeout),
            "TLS handshake timed out; closing the connection"
        );
    } else {
        Stats::bump(&stats.handshake_errors);
        tracing::debug!(%peer, %error, "TLS handshake failed; closing the connection");
    }
}

/// What the handshake negotiated, and the ALPN protocol.
fn describe(stream: &SslStream<TcpStream>, peer: SocketAddr) -> (Connection, Option<Vec<u8>>) {
    let ssl = stream.ssl();
    let certificate = ssl
        .certificate()
        .and_then(|cert| CertificateInfo::of(cert).ok())
        .map(|info| (info.subject, info.serial));
    let client = ssl
        .peer_certificate()
        .and_then(|cert| CertificateInfo::of(&cert).ok())
        .map(|info| info.subject);
    let alpn = ssl.selected_alpn_protocol().map(<[u8]>::to_vec);
    let info = Connection {
        peer,
        certificate,
        tls_version: ssl.version_str(),
        client,
    };
    tracing::debug!(
        %peer,
        tls = info.tls_version,
        resumed = ssl.session_reused(),
        alpn = alpn.as_deref().map(String::from_utf8_lossy).as_deref(),
        "TLS handshake completed"
    );
    (info, alpn)
}

/// Serves HTTP on an established TLS stream until the client is done or shutdown
/// has finished the requests in flight.
async fn serve_http(
    stream: SslStream<TcpStream>,
    app: Arc<App>,
    info: Arc<Connection>,
    alpn: Option<Vec<u8>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = info.peer;
    let service =
        service_fn(move |request| routes::handle(request, Arc::clone(&app), Arc::clone(&info)));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    // ALPN already said which protocol the client speaks.
    let builder = match alpn.as_deref() {
        Some(b"h2") => builder.http2_only(),
        Some(b"http/1.1") => builder.http1_only(),
        _ => builder,
    };
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stopped(&mut shutdown) => {
            // HTTP/1.1: finish the response in flight, then close; HTTP/2: GOAWAY,
            // then finish the streams in flight.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

async fn reload_on_sighup(mut hangup: Signal, tls: ReloadingAcceptor) {
    while hangup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the certificate files now");
        let before = tls.ticket_keys();
        let reloader = tls.clone();
        // Reading files and decrypting a key block; keep them off the runtime threads.
        match tokio::task::spawn_blocking(move || reloader.reload_now()).await {
            Ok(Ok(Reload::Published(generation))) => {
                tracing::info!(generation, "SIGHUP: new certificate in service");
            }
            Ok(Ok(Reload::Unchanged)) => {
                tracing::info!(
                    "SIGHUP: the files hold the certificate already in service; nothing to do"
                );
            }
            Ok(Ok(other)) => tracing::info!(outcome = ?other, "SIGHUP: reload done"),
            Ok(Err(error)) => {
                tracing::warn!(%error, "SIGHUP: reload failed; keeping previous certificate");
            }
            Err(error) => {
                tracing::warn!(%error, "SIGHUP: the reload task failed; keeping previous certificate");
            }
        }
        log_ticket_reload(&before, &tls.ticket_keys());
    }
}

/// What a SIGHUP did to the ticket-key file, if there is one (`reload_now` reads
/// it too). The library logs a failure only when it differs from the last one;
/// whoever sent the signal wants an answer every time.
fn log_ticket_reload(before: &TicketKeyStatus, after: &TicketKeyStatus) {
    let Some(file) = &after.file else { return };
    let file = file.display();
    if after.rotations > before.rotations {
        tracing::info!(%file, keys = after.keys, "SIGHUP: new session ticket keys in service");
    } else if after.failures > before.failures {
        let error = after.last_error.as_ref().map(|e| e.message.as_str());
        tracing::warn!(
            %file,
            error,
            "SIGHUP: ticket-key file not usable; keeping the ticket keys in service"
        );
    } else {
        tracing::info!(%file, "SIGHUP: the ticket-key file holds the keys already in service");
    }
}

/// Tells a newcomer where the development files are and how to try the server.
fn print_dev_banner(files: &DevFiles, outcome: Outcome, locals: &[SocketAddr]) {
    let how = match outcome {
        Outcome::Created => "created now",
        Outcome::Reissued => "certificate issued again, CA reused",
        Outcome::Reused => "reused from an earlier run",
    };
    let reachable_as_localhost =
        |addr: &&SocketAddr| addr.ip().is_loopback() || addr.ip().is_unspecified();
    let curl = match locals
        .iter()
        .find(reachable_as_localhost)
        .or(locals.first())
    {
        Some(addr) => {
            let resolve = if reachable_as_localhost(&addr) {
                String::new()
            } else {
                let ip = match addr.ip() {
                    IpAddr::V4(ip) => ip.to_string(),
                    IpAddr::V6(ip) => format!("[{ip}]"),
                };
                format!(" --resolve localhost:{}:{ip}", addr.port())
            };
            format!(
                "curl --cacert {}{resolve} https://localhost:{}/",
                shell_quote(&files.ca_cert.to_string_lossy()),
                addr.port()
            )
        }
        None => String::new(),
    };
    let text = format!(
        "\
No --cert/--key/--pkcs12 given: serving a development certificate ({how}).
  directory:       {dir}
  CA certificate:  {ca}
  certificate:     {cert}
  private key:     {key}
  CA private key:  {ca_key}
The CA is for development only. Try the server with:
  {curl}
",
        dir = files.dir.display(),
        ca = files.ca_cert.display(),
        cert = files.cert.display(),
        key = files.key.display(),
        ca_key = files.ca_key.display(),
    );
    // A closed standard output is no reason to stop serving.
    let _ = io::stdout().lock().write_all(text.as_bytes());
    let _ = io::stdout().flush();
}

/// Quotes `text` for a POSIX shell when it needs it.
fn shell_quote(text: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_./:@%+=,-~".contains(c);
    if !text.is_empty() && text.chars().all(safe) && !text.starts_with('~') {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/a/b-c_d.pem"), "/a/b-c_d.pem");
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("/it's"), r"'/it'\''s'");
        assert_eq!(shell_quote("~x"), "'~x'");
    }
}
