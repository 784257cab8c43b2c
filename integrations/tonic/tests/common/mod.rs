//! The tonic tests' setup: a gRPC node (server and client) over mutual TLS
//! with its files in Kubernetes-style volumes, and raw TLS probes for what a
//! gRPC call does not show (the server's certificate, sessions).

// `pub` for the test crate, which reaches it as `common`.
#![allow(unreachable_pub)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod, SslSession, SslSessionRef, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use openssl_reload::{ClientAuth, ReloadingAcceptor, ReloadingConnector};
use openssl_reload_tonic::{PeerClient, WhoAmIRequest};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};

use crate::support::{fingerprint, serial_hex, Ca, K8sVolume, Leaf};

/// The poll interval of the rotation tests.
pub const POLL: Duration = crate::support::ROTATION_POLL;
/// The server's `max_connection_age` in the tests of client rotation and CA
/// drop: long-lived channels reconnect this often.
pub const CONNECTION_AGE: Duration = Duration::from_secs(1);

/// One node: `ca` issues the server's and the clients' certificates, `other`
/// a second client CA the server trusts until a test drops it.
pub struct Node {
    pub ca: Ca,
    pub other: Ca,
    pub server_leaf: Leaf,
    /// The server's `tls.crt`, `tls.key` and `ca.crt` (the client CAs).
    pub server_files: K8sVolume,
    /// The client's `tls.crt`, `tls.key` and `ca.crt` (the server's CA).
    pub client_files: K8sVolume,
    pub client: ReloadingConnector,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    dir: TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The files of one side: a leaf of `ca`, and the CA bundle it trusts.
pub fn files(leaf: &Leaf, trusted: &[&Ca]) -> Vec<(&'static str, Vec<u8>)> {
    let bundle = trusted.iter().flat_map(|ca| ca.pem()).collect();
    vec![
        ("tls.crt", leaf.cert_pem()),
        ("tls.key", leaf.key_pem()),
        ("ca.crt", bundle),
    ]
}

impl Node {
    /// Starts the gRPC server on 127.0.0.1:0, closing connections at
    /// `max_age` if any, and builds the client.
    pub async fn start(poll: Duration, max_age: Option<Duration>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (ca, other) = (Ca::new("cluster CA"), Ca::new("other CA"));
        let server_leaf = ca.leaf("localhost");
        let server = K8sVolume::new(
            &dir.path().join("server"),
            &files(&server_leaf, &[&ca, &other]),
        );
        let client_files = K8sVolume::new(
            &dir.path().join("client"),
            &files(&ca.leaf("node-client"), &[&ca]),
        );
        let tls = ReloadingAcceptor::builder()
            .identity(server.path("tls.crt"), server.path("tls.key"))
            .ca(server.path("ca.crt"))
            .client_auth(ClientAuth::Required)
            .poll_interval(poll)
            .build()
            .unwrap();
        let client = ReloadingConnector::builder()
            .identity(client_files.path("tls.crt"), client_files.path("tls.key"))
            .ca(client_files.path("ca.crt"))
            .poll_interval(poll)
            .build()
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tls.clone();
        tokio::spawn(async move {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            let shutdown = async {
                let _ = stopped.await;
            };
            let server = match max_age {
                Some(age) => Server::builder().max_connection_age(age),
                None => Server::builder(),
            };
            openssl_reload_tonic::serve(server, incoming, &serving, shutdown)
                .await
                .unwrap();
        });
        Self {
            ca,
            other,
            server_leaf,
            server_files: server,
            client_files,
            client,
            addr,
            stop: Some(stop),
            dir,
        }
    }

    /// A new channel (a new connection) through the reloading connector.
    pub async fn channel(&self) -> Result<Channel, String> {
        channel(&self.client, self.addr).await
    }

    /// A reloading connector presenting `leaf`, trusting the cluster CA, its
    /// files in a directory of their own named `name`.
    pub fn connector(&self, name: &str, leaf: &Leaf) -> ReloadingConnector {
        let dir = self.dir.path().join(name);
        let files = K8sVolume::new(&dir, &files(leaf, &[&self.ca]));
        ReloadingConnector::builder()
            .identity(files.path("tls.crt"), files.path("tls.key"))
            .ca(files.path("ca.crt"))
            .build()
            .unwrap()
    }
}

/// A new channel (a new connection) to `addr` through `client`.
pub async fn channel(client: &ReloadingConnector, addr: SocketAddr) -> Result<Channel, String> {
    let endpoint = Endpoint::from_shared(format!("https://{addr}")).unwrap();
    openssl_reload_tonic::connect(endpoint, client, "localhost")
        .await
        .map_err(|e| format!("connect: {e:?}"))
}

/// `WhoAmI` on a new connection: the client serial the server saw.
pub async fn fresh_call(client: &ReloadingConnector, addr: SocketAddr) -> Result<String, String> {
    who_am_i(channel(client, addr).await?).await
}

/// One `WhoAmI` call on `channel`.
pub async fn who_am_i(channel: Channel) -> Result<String, String> {
    let reply = PeerClient::new(channel)
        .who_am_i(WhoAmIRequest {})
        .await
        .map_err(|e| format!("call: {e:?}"))?;
    Ok(reply.into_inner().client_serial)
}

/// A plain OpenSSL client presenting `leaf` and trusting `trusted`.
pub fn raw_client(leaf: &Leaf, trusted: &Ca) -> SslConnector {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    let mut store = X509StoreBuilder::new().unwrap();
    for c in X509::stack_from_pem(&trusted.pem()).unwrap() {
        store.add_cert(c).unwrap();
    }
    b.set_cert_store(store.build());
    b.set_verify(SslVerifyMode::PEER);
    b.set_certificate(&leaf.cert).unwrap();
    b.set_private_key(&leaf.key).unwrap();
    b.build()
}

/// What a raw connection saw.
pub struct Probe {
    /// The serial of the server's certificate.
    pub serial: String,
    /// Its SHA-256 fingerprint.
    pub fingerprint: String,
    pub resumed: bool,
    pub session: SslSession,
}

/// The HTTP/2 client preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

/// A handshake as `localhost` (offering `session`, if any), then the HTTP/2
/// preface, until the server's first frame arrives: the server took the
/// client. In TLS 1.3 a refused client certificate shows only there, as an
/// alert or a close after the client's handshake finished.
pub async fn probe(
    connector: &SslConnector,
    addr: SocketAddr,
    session: Option<&SslSessionRef>,
) -> Result<Probe, String> {
    let mut tls = crate::support::connect_offering(connector, addr, "localhost", session).await?;
    tls.write_all(H2_PREFACE).await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await;
    match read {
        Ok(Ok(n)) if n > 0 => {}
        Ok(Ok(_)) => return Err("closed by the server".to_owned()),
        Ok(Err(e)) => return Err(format!("read: {e}")),
        Err(_) => return Err("no answer in 5 s".to_owned()),
    }
    let _ = Pin::new(&mut tls).shutdown().await;
    let ssl = tls.ssl();
    let cert = ssl.peer_certificate().unwrap();
    Ok(Probe {
        serial: serial_hex(&cert),
        fingerprint: fingerprint(&cert),
        resumed: ssl.session_reused(),
        session: ssl.session().unwrap().to_owned(),
    })
}
