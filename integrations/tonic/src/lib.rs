//! tonic (gRPC) with mutual TLS through `tonic-tls` (openssl), both sides
//! reloading: the server's certificate and client CA bundle follow a
//! [`ReloadingAcceptor`], the client's certificate and server CA bundle a
//! [`ReloadingConnector`]. The node-to-node case: every node serves and calls.
//!
//! The service is one unary call, `reload.Peer/WhoAmI`, that answers with the
//! serial of the client certificate the server verified. Its stubs come from
//! `tonic-build`'s `manual` module in `build.rs` and its messages are plain
//! structs deriving `prost::Message`: no `.proto` file and no `protoc`.

use std::future::Future;

use openssl_reload::{ReloadingAcceptor, ReloadingConnector};
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::transport::server::{TcpConnectInfo, TcpIncoming};
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status};
use tonic_tls::openssl::{SslConnectInfo, TlsIncoming};

/// The generated stubs: `peer_server::{Peer, PeerServer}` and
/// `peer_client::PeerClient`.
#[allow(unreachable_pub, missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/reload.Peer.rs"));
}

pub use pb::peer_client::PeerClient;
pub use pb::peer_server::{Peer, PeerServer};

/// The request of `WhoAmI`: empty.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct WhoAmIRequest {}

/// The answer of `WhoAmI`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct WhoAmIReply {
    /// The serial (hex, upper case) of the client certificate the server
    /// verified on this call's connection.
    #[prost(string, tag = "1")]
    pub client_serial: String,
}

/// The service: tells each client which certificate it presented.
#[derive(Clone, Copy, Debug, Default)]
pub struct PeerService;

#[tonic::async_trait]
impl Peer for PeerService {
    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIReply>, Status> {
        // tonic-tls puts the verified chain, leaf first, in the request.
        let info = request.extensions().get::<SslConnectInfo<TcpConnectInfo>>();
        let chain = info.and_then(SslConnectInfo::peer_certs);
        let leaf = chain.as_ref().and_then(|c| c.first());
        let serial = leaf
            .and_then(|c| c.serial_number().to_bn().ok())
            .and_then(|bn| bn.to_hex_str().ok())
            .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
        Ok(Response::new(WhoAmIReply {
            client_serial: serial.to_string(),
        }))
    }
}

/// Serves [`PeerService`] over mutual TLS on `incoming` until `shutdown`,
/// with `server`'s settings.
///
/// tonic-tls takes one `SslAcceptor`; the reloader's is a fixed front
/// acceptor whose client hello callback puts the server certificate, client
/// CA bundle and verify mode in service on each new handshake. An HTTP/2
/// connection keeps what it was verified with while it lives: give `server`
/// a `max_connection_age` to bound how long a client whose CA was dropped
/// keeps its connection (clients then reconnect, with their current certificate).
///
/// # Errors
///
/// tonic's, if the server fails (a failed handshake only drops that connection).
pub async fn serve(
    mut server: Server,
    incoming: TcpIncoming,
    tls: &ReloadingAcceptor,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let incoming = TlsIncoming::new(incoming, tls.acceptor().clone());
    server
        .add_service(PeerServer::new(PeerService))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// tonic-tls's TLS step for one new client connection, from the connector in
/// service now.
#[derive(Clone)]
struct Reloading(ReloadingConnector);

impl<S> tonic_tls::TlsConnector<S> for Reloading
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type TlsStream = tokio_openssl::SslStream<S>;
    type Arg = String;

    async fn connect(&self, domain: String, tcp: S) -> Result<Self::TlsStream, tonic_tls::Error> {
        // The current client certificate and CA bundle; the server's name verified.
        Ok(self.0.connect(&domain, tcp).await?)
    }
}

/// A channel to `endpoint` whose every new connection presents the client
/// certificate in service and verifies the server (as `domain`) against the
/// CA bundle in service.
///
/// `tonic_tls::openssl::TlsConnector` holds one fixed `SslConnector`, so the
/// reloading one goes through tonic-tls's backend hook (`TlsConnector` and
/// `connector_inner`), which runs once per connection.
///
/// # Errors
///
/// tonic's, if the first connection fails.
pub async fn connect(
    endpoint: Endpoint,
    client: &ReloadingConnector,
    domain: &str,
) -> Result<Channel, tonic::transport::Error> {
    let transport = tonic_tls::TcpTransport::from_endpoint(&endpoint);
    let tls = Reloading(client.clone());
    let connector = tonic_tls::connector_inner(transport, tls, domain.to_owned());
    endpoint.connect_with_connector(connector).await
}
