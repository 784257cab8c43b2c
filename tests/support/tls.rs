//! TLS over loopback: an echo server behind a reloading acceptor, a verifying
//! client, and one exchange that reports what the client saw.

use std::net::SocketAddr;
use std::pin::Pin;

use openssl::ssl::{
    Ssl, SslConnector, SslContext, SslMethod, SslSession, SslSessionRef, SslVerifyMode,
};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use openssl_reload::ReloadingAcceptor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_openssl::SslStream;

use super::certs::serial_hex;

/// A TLS echo server on 127.0.0.1:0 driven by a reloading acceptor: each
/// connection answers one line per line it reads, naming the certificate serial
/// it negotiated with (`serial=<hex>`) followed by what it read.
pub struct Server {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    /// A server at `addr` whose accept loop is `task`, aborted on drop: for
    /// tests that serve something other than the echo (HTTP, for one).
    pub fn new(addr: SocketAddr, task: JoinHandle<()>) -> Self {
        Self { addr, task }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn serve(tls: ReloadingAcceptor) -> Server {
    spawn_echo(move |tcp| {
        let tls = tls.clone();
        async move { tls.accept(tcp).await.ok() }
    })
    .await
}

/// The same echo server over an application's own context (one a reloader
/// is attached to), each connection made with `Ssl::new(&ctx)`.
pub async fn serve_context(ctx: SslContext) -> Server {
    spawn_echo(move |tcp| {
        let ssl = Ssl::new(&ctx);
        async move {
            let mut stream = SslStream::new(ssl.ok()?, tcp).ok()?;
            Pin::new(&mut stream).accept().await.ok()?;
            Some(stream)
        }
    })
    .await
}

async fn spawn_echo<F, Fut>(accept: F) -> Server
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Option<SslStream<TcpStream>>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            // Without it every small reply waits for Nagle and delayed ACKs (~40 ms).
            let _ = tcp.set_nodelay(true);
            let handshake = accept(tcp);
            tokio::spawn(async move {
                if let Some(stream) = handshake.await {
                    echo(stream).await;
                }
            });
        }
    });
    Server { addr, task }
}

/// Answers every read with `serial=<ours> peer=<theirs or -> <what was read>`.
async fn echo(mut stream: SslStream<TcpStream>) {
    let serial = stream
        .ssl()
        .certificate()
        .map(serial_hex)
        .unwrap_or_default();
    let peer = stream
        .ssl()
        .peer_certificate()
        .map(|c| serial_hex(&c))
        .unwrap_or_else(|| "-".to_owned());
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let reply = format!(
                    "serial={serial} peer={peer} {}",
                    String::from_utf8_lossy(&buf[..n])
                );
                if stream.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A client that trusts `ca_pem` and verifies `localhost`.
pub fn client(ca_pem: &[u8]) -> SslConnector {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    let store = {
        let mut s = X509StoreBuilder::new().unwrap();
        for c in X509::stack_from_pem(ca_pem).unwrap() {
            s.add_cert(c).unwrap();
        }
        s.build()
    };
    b.set_cert_store(store);
    b.set_verify(SslVerifyMode::PEER);
    b.build()
}

/// What one exchange over TLS saw.
pub struct Seen {
    pub serial: String,
    pub reply: String,
    pub alpn: Option<Vec<u8>>,
    pub resumed: bool,
    pub session: Option<SslSession>,
    /// The protocol version, e.g. `TLSv1.3`.
    pub version: &'static str,
    /// OpenSSL's name of the negotiated cipher suite, e.g. `TLS_AES_256_GCM_SHA384`.
    pub cipher: &'static str,
}

/// Connects as `localhost` (SNI and host name check), sends one line, and returns
/// what the server's certificate and reply were.
pub async fn exchange(
    connector: &SslConnector,
    addr: SocketAddr,
    session: Option<&SslSessionRef>,
) -> Result<Seen, String> {
    connect_and_ping(connector, addr, Some("localhost"), true, session).await
}

/// [`exchange`] sending `sni` (no SNI for `None`) without checking the host
/// name: for tests that judge the server's choice by the serial it presented.
pub async fn exchange_sni(
    connector: &SslConnector,
    addr: SocketAddr,
    sni: Option<&str>,
    session: Option<&SslSessionRef>,
) -> Result<Seen, String> {
    connect_and_ping(connector, addr, sni, false, session).await
}

async fn connect_and_ping(
    connector: &SslConnector,
    addr: SocketAddr,
    sni: Option<&str>,
    verify_hostname: bool,
    session: Option<&SslSessionRef>,
) -> Result<Seen, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let mut ssl = connector
        .configure()
        .unwrap()
        .verify_hostname(verify_hostname)
        .use_server_name_indication(sni.is_some())
        .into_ssl(sni.unwrap_or("localhost"))
        .unwrap();
    if let Some(s) = session {
        // SAFETY: `set_session` is unsafe because the session must come from a
        // context compatible with this one; it comes from this same connector.
        #[allow(unsafe_code)]
        unsafe {
            ssl.set_session(s).unwrap();
        }
    }
    let mut stream = SslStream::new(ssl, tcp).unwrap();
    Pin::new(&mut stream)
        .connect()
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let reply = ping(&mut stream).await?;
    // TLS 1.3 tickets arrive after the handshake; the read above received them.
    // A clean close_notify keeps the session resumable: OpenSSL marks the session
    // of a connection dropped without one as not resumable.
    let _ = Pin::new(&mut stream).shutdown().await;
    let ssl = stream.ssl();
    Ok(Seen {
        serial: ssl
            .peer_certificate()
            .map(|c| serial_hex(&c))
            .unwrap_or_default(),
        reply,
        alpn: ssl.selected_alpn_protocol().map(|p| p.to_vec()),
        resumed: ssl.session_reused(),
        session: ssl.session().map(|s| s.to_owned()),
        version: ssl.version_str(),
        cipher: ssl.current_cipher().map_or("", |c| c.name()),
    })
}

/// Sends `ping` and returns the server's one reply.
async fn ping(stream: &mut SslStream<TcpStream>) -> Result<String, String> {
    stream
        .write_all(b"ping\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0; 1024];
    let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&buf[..n]).to_string())
}

/// A handshake alone (no data) as `name` (SNI and host name check): the serial
/// of the certificate the server presented. For servers that do not echo, such
/// as the framework integrations' HTTP servers.
pub async fn handshake_serial(
    connector: &SslConnector,
    addr: SocketAddr,
    name: &str,
) -> Result<String, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let ssl = connector
        .configure()
        .and_then(|c| c.into_ssl(name))
        .map_err(|e| e.to_string())?;
    let mut stream = SslStream::new(ssl, tcp).map_err(|e| e.to_string())?;
    Pin::new(&mut stream)
        .connect()
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let serial = stream.ssl().peer_certificate().map(|c| serial_hex(&c));
    let _ = Pin::new(&mut stream).shutdown().await;
    serial.ok_or_else(|| "no server certificate".to_owned())
}

/// Connects as `name` (SNI and host name check) offering `session`, if any,
/// and completes the handshake: for tests that speak their own protocol over
/// it, or look at what the handshake resumed.
pub async fn connect_offering(
    connector: &SslConnector,
    addr: SocketAddr,
    name: &str,
    session: Option<&SslSessionRef>,
) -> Result<SslStream<TcpStream>, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut ssl = connector
        .configure()
        .and_then(|c| c.into_ssl(name))
        .map_err(|e| e.to_string())?;
    if let Some(session) = session {
        // SAFETY: `set_session` is unsafe because the session must come from a
        // context compatible with this one; the callers' come from this same
        // connector.
        #[allow(unsafe_code)]
        unsafe {
            ssl.set_session(session).map_err(|e| e.to_string())?;
        }
    }
    let mut stream = SslStream::new(ssl, tcp).map_err(|e| e.to_string())?;
    Pin::new(&mut stream)
        .connect()
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    Ok(stream)
}
