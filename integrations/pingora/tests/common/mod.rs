//! The Pingora tests' setup: two SNI sites and a client CA bundle in
//! Kubernetes-style volumes, a Pingora server on its own thread, and clients
//! that make one HTTPS request per connection.

// `pub` for the test crate, which reaches it as `common`.
#![allow(unreachable_pub)]

use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod, SslSession, SslSessionRef, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use openssl_reload::{ClientAuth, ReloadingAcceptor};
use openssl_reload_pingora::{service, tls_settings, Reloading};
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::server::{RunArgs, Server};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{fingerprint, serial_hex, Ca, K8sVolume, Leaf, LeafSpec};

/// The poll interval of the tests.
pub const POLL: Duration = crate::support::ROTATION_POLL;
pub const ALPHA: &str = "alpha.test";
pub const BETA: &str = "beta.test";

/// How the Pingora server takes the reloader.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// [`tls_settings`]: the certificate callback adapter, and the reloader
    /// attached for its client hello callback (session binding).
    Attached,
    /// The certificate callback adapter alone.
    CallbackOnly,
}

/// The files and the running server: `ca` issues the sites and the good
/// clients, `other` clients whose CA a test drops from the bundle.
pub struct Sites {
    pub ca: Ca,
    pub other: Ca,
    pub alpha: K8sVolume,
    pub beta: K8sVolume,
    /// `ca.crt`: the client CAs.
    pub bundle: K8sVolume,
    pub beta_serial: String,
    pub addr: SocketAddr,
    _dir: TempDir,
}

pub fn site_leaf(ca: &Ca, name: &str) -> Leaf {
    ca.leaf_with(LeafSpec::new(name).dns(&[name]))
}

pub fn key_pair(leaf: &Leaf) -> [(&'static str, Vec<u8>); 2] {
    [("tls.crt", leaf.cert_pem()), ("tls.key", leaf.key_pem())]
}

impl Sites {
    /// Writes the files, builds the reloader and starts Pingora with it.
    pub async fn start(mode: Mode) -> Self {
        Self::start_with(mode, false).await
    }

    /// [`start`](Self::start), with unknown names refused if `strict_sni`.
    pub async fn start_with(mode: Mode, strict_sni: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (ca, other) = (Ca::new("sites CA"), Ca::new("other CA"));
        let beta_leaf = site_leaf(&ca, BETA);
        let alpha = K8sVolume::new(&dir.path().join("alpha"), &key_pair(&site_leaf(&ca, ALPHA)));
        let beta = K8sVolume::new(&dir.path().join("beta"), &key_pair(&beta_leaf));
        let both = [ca.pem(), other.pem()].concat();
        let bundle = K8sVolume::new(&dir.path().join("clients"), &[("ca.crt", both)]);
        let tls = ReloadingAcceptor::builder()
            .site(alpha.path("tls.crt"), alpha.path("tls.key"))
            .site(beta.path("tls.crt"), beta.path("tls.key"))
            .ca(bundle.path("ca.crt"))
            .client_auth(ClientAuth::Required)
            .strict_sni(strict_sni)
            .poll_interval(POLL)
            .build()
            .unwrap();
        let addr = run_pingora(tls, mode);
        crate::support::eventually("Pingora listening", || async {
            TcpStream::connect(addr).await.ok().map(drop)
        })
        .await;
        Self {
            ca,
            other,
            alpha,
            beta,
            bundle,
            beta_serial: beta_leaf.serial,
            addr,
            _dir: dir,
        }
    }
}

/// Runs a Pingora server on its own thread, as Pingora requires (it builds
/// and owns its runtimes); it lives until the test process exits.
fn run_pingora(tls: ReloadingAcceptor, mode: Mode) -> SocketAddr {
    // Pingora binds by address: take a free port from the system.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    std::thread::spawn(move || {
        let settings = match mode {
            Mode::Attached => tls_settings(&tls).unwrap(),
            Mode::CallbackOnly => TlsSettings::with_callbacks(Box::new(Reloading(tls))).unwrap(),
        };
        let mut server = Server::new(None).unwrap();
        server.bootstrap();
        server.add_service(service(&addr.to_string(), settings));
        server.run(RunArgs::default());
    });
    addr
}

/// A client presenting `leaf` (if any) and trusting `trusted`.
pub fn client(leaf: Option<&Leaf>, trusted: &Ca) -> SslConnector {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    let mut store = X509StoreBuilder::new().unwrap();
    store
        .add_cert(X509::from_pem(&trusted.pem()).unwrap())
        .unwrap();
    b.set_cert_store(store.build());
    b.set_verify(SslVerifyMode::PEER);
    if let Some(leaf) = leaf {
        b.set_certificate(&leaf.cert).unwrap();
        b.set_private_key(&leaf.key).unwrap();
    }
    b.build()
}

/// What one request saw.
pub struct Reply {
    /// The serial and fingerprint of the server's certificate.
    pub serial: String,
    pub fingerprint: String,
    /// The response body: `hello, client <serial>`.
    pub body: String,
    pub resumed: bool,
    pub session: SslSession,
}

/// One `GET /` on a new connection to `name` (SNI and host name check),
/// offering `session` if any. In TLS 1.3 a refused client certificate shows
/// only after the client's handshake, as an alert or a close: the request
/// counts only with a `200` and its body.
pub async fn get(
    connector: &SslConnector,
    addr: SocketAddr,
    name: &str,
    session: Option<&SslSessionRef>,
) -> Result<Reply, String> {
    let mut tls = crate::support::connect_offering(connector, addr, name, session)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let request = format!("GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("{name}: write: {e}"))?;
    let mut response = Vec::new();
    let read = tls.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    let body = match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") && body.ends_with('\n') => body,
        _ => return Err(format!("{name}: response {text:?}, read {read:?}")),
    };
    // A close_notify of ours keeps the session resumable: OpenSSL marks the
    // session of a connection freed without one as not resumable.
    let _ = Pin::new(&mut tls).shutdown().await;
    let ssl = tls.ssl();
    let cert = ssl.peer_certificate().unwrap();
    Ok(Reply {
        serial: serial_hex(&cert),
        fingerprint: fingerprint(&cert),
        body: body.to_owned(),
        resumed: ssl.session_reused(),
        session: ssl.session().unwrap().to_owned(),
    })
}
