//! Accepting connections: one loop per listener, the TLS handshake with its
//! timeout, then HTTP/1.1 or HTTP/2 (as ALPN chose) until the client is done or
//! a graceful shutdown has finished the requests in flight.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use openssl_reload::CertificateInfo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_openssl::SslStream;

use crate::metrics::Stats;
use crate::routes::{self, App, Connection};
use crate::timefmt::human_duration;
use crate::Failure;

/// One accept loop per listener, each logging the address it listens on.
pub(super) fn spawn_accept_loops(
    listeners: Vec<(std::net::TcpListener, SocketAddr)>,
    app: &Arc<App>,
    handshake_timeout: Duration,
    shutdown: &watch::Receiver<bool>,
    open: &mpsc::Sender<Infallible>,
) -> Result<Vec<JoinHandle<()>>, Failure> {
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
