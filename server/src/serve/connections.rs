//! One connection: the TLS handshake with its timeout (or none, on a loopback
//! admin address), then HTTP/1.1 or HTTP/2 (as ALPN chose) until the client is
//! done, has been idle for `--idle-timeout`, or a graceful shutdown has finished
//! the requests in flight.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use openssl::x509::X509;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_openssl::SslStream;

use super::anchor::Anchored;
use crate::metrics::Stats;
use crate::routes::{self, App, Connection, Endpoints};
use crate::timefmt::human_duration;

/// Resolves once shutdown has begun.
pub(super) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|&stop| stop).await;
}

/// The HTTP settings of every connection.
#[derive(Clone, Copy, Debug)]
pub(super) struct HttpLimits {
    pub(super) idle_timeout: Duration,
    pub(super) max_header_size: u32,
    pub(super) max_concurrent_streams: u32,
}

/// How long an HTTP/2 connection may go without traffic before it is pinged,
/// and how long the answer may take (each at most `--idle-timeout`).
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// After an idle connection is told to close (GOAWAY), how long it may take
/// before it is dropped: a client that sent no preface never reads the GOAWAY.
const IDLE_CLOSE_BOUND: Duration = Duration::from_millis(500);

/// What every connection of the server shares: the application, the HTTP
/// builders (one per ALPN outcome, configured once) and the limits.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) app: Arc<App>,
    pub(super) handshake_timeout: Duration,
    pub(super) limits: HttpLimits,
    auto: auto::Builder<TokioExecutor>,
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
    /// Every connection task holds a sender; shutdown waits until all are gone.
    pub(super) open: mpsc::Sender<Infallible>,
    pub(super) shutdown: watch::Receiver<bool>,
}

impl Shared {
    pub(super) fn new(
        app: Arc<App>,
        handshake_timeout: Duration,
        limits: HttpLimits,
        open: mpsc::Sender<Infallible>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.idle_timeout)
            // The read buffer bounds the request line and headers (431 beyond it).
            .max_buf_size(limits.max_header_size as usize);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_concurrent_streams)
            .max_header_list_size(limits.max_header_size)
            .keep_alive_interval(H2_PING_INTERVAL.min(limits.idle_timeout))
            .keep_alive_timeout(H2_PING_TIMEOUT.min(limits.idle_timeout));
        Self {
            app,
            handshake_timeout,
            limits,
            http1: builder.clone().http1_only(),
            http2: builder.clone().http2_only(),
            auto: builder,
            open,
            shutdown,
        }
    }

    /// The builder for what ALPN said the client speaks, else one that detects it.
    fn builder(&self, alpn: Option<&[u8]>) -> &auto::Builder<TokioExecutor> {
        match alpn {
            Some(b"h2") => &self.http2,
            Some(b"http/1.1") => &self.http1,
            _ => &self.auto,
        }
    }
}

/// How a listener's connections are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Transport {
    /// TLS with the reloading acceptor.
    Tls,
    /// Plain HTTP: the admin endpoints on a loopback address.
    Plain,
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
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one accepted connection; `permit` holds its place under the
/// connection limit until it closes.
pub(super) async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    transport: Transport,
    endpoints: Endpoints,
    permit: OwnedSemaphorePermit,
) {
    let _permit = permit;
    let _anchored = Anchored::hold();
    let _open = shared.open.clone();
    let mut shutdown = shared.shutdown.clone();
    let _counted = (endpoints != Endpoints::Admin).then(|| OpenConnection::new(&shared.app.stats));
    if transport == Transport::Plain {
        let info = Connection {
            peer,
            served: None,
            tls_version: "no TLS",
            description: OnceLock::new(),
            index: OnceLock::new(),
        };
        serve_http(tcp, None, Arc::new(info), endpoints, &shared, shutdown).await;
        return;
    }
    let stats = &shared.app.stats;
    // `accept` gives up after --handshake-timeout (set on the builder).
    let stream = tokio::select! {
        result = shared.app.tls.accept(tcp) => match result {
            Ok(stream) => stream,
            Err(error) => return handshake_failed(stats, peer, &error, shared.handshake_timeout),
        },
        // A handshake in progress at shutdown has no request in flight yet.
        () = stopped(&mut shutdown) => return,
    };
    Stats::bump(&stats.handshakes);
    let (info, alpn) = describe(&stream, peer);
    serve_http(stream, alpn, Arc::new(info), endpoints, &shared, shutdown).await;
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

/// What the handshake negotiated, and the ALPN protocol. The certificates are
/// described only if a request asks (`/`): a handshake costs no more than OpenSSL's.
fn describe(stream: &SslStream<TcpStream>, peer: SocketAddr) -> (Connection, Option<Vec<u8>>) {
    let ssl = stream.ssl();
    let served = ssl.certificate().map(|cert| {
        let cert: X509 = cert.to_owned();
        (cert, ssl.peer_certificate())
    });
    let alpn = ssl.selected_alpn_protocol().map(<[u8]>::to_vec);
    let info = Connection {
        peer,
        served,
        tls_version: ssl.version_str(),
        description: OnceLock::new(),
        index: OnceLock::new(),
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

/// Whether a connection has a request in flight, and since when it has had none.
#[derive(Debug)]
struct Activity {
    base: Instant,
    in_flight: AtomicUsize,
    /// When the last request ended, in nanoseconds since `base`.
    last_end_nanos: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_end_nanos: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }

    /// `None` when the connection has been idle for `idle`; otherwise when it
    /// will have been, at the earliest.
    fn idle_deadline(&self, idle: Duration) -> Option<Instant> {
        let now = Instant::now();
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return Some(now + idle);
        }
        let last = self.base + Duration::from_nanos(self.last_end_nanos.load(Ordering::SeqCst));
        let deadline = last + idle;
        (deadline > now).then_some(deadline)
    }
}

/// A request in flight, from its headers until its response is ready.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let nanos = u64::try_from(self.0.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.0.last_end_nanos.fetch_max(nanos, Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves HTTP on an established stream until the client is done, the
/// connection has been idle for `--idle-timeout`, or shutdown has finished the
/// requests in flight.
async fn serve_http<I>(
    io: I,
    alpn: Option<Vec<u8>>,
    info: Arc<Connection>,
    endpoints: Endpoints,
    shared: &Shared,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = info.peer;
    let idle = shared.limits.idle_timeout;
    let activity = Arc::new(Activity::new());
    let service = {
        let app = Arc::clone(&shared.app);
        let activity = Arc::clone(&activity);
        service_fn(move |request| {
            let in_flight = activity.begin();
            let response = routes::handle(request, Arc::clone(&app), Arc::clone(&info), endpoints);
            async move {
                let response = response.await;
                drop(in_flight);
                response
            }
        })
    };
    let conn = shared
        .builder(alpn.as_deref())
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let timer = tokio::time::sleep(idle);
    tokio::pin!(timer);
    let result = loop {
        tokio::select! {
            result = conn.as_mut() => break result,
            () = stopped(&mut shutdown) => {
                // HTTP/1.1: finish the response in flight, then close; HTTP/2: GOAWAY,
                // then finish the streams in flight.
                conn.as_mut().graceful_shutdown();
                break conn.await;
            }
            () = timer.as_mut() => match activity.idle_deadline(idle) {
                Some(deadline) => timer.as_mut().reset(deadline),
                None => {
                    Stats::bump(&shared.app.stats.idle_closed);
                    tracing::debug!(%peer, idle = %human_duration(idle), "connection idle; closing it");
                    conn.as_mut().graceful_shutdown();
                    break tokio::time::timeout(IDLE_CLOSE_BOUND, conn.as_mut())
                        .await
                        .unwrap_or(Ok(()));
                }
            },
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}
