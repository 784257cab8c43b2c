//! The client side: a reloading `SslConnector` for node-to-node mutual TLS.

use std::fmt;
use std::io;
use std::sync::Arc;

use arc_swap::ArcSwap;
use openssl::ssl::{ConnectConfiguration, SslConnector, SslContext, SslMethod};
use openssl::x509::store::X509StoreBuilder;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_openssl::SslStream;

use crate::builder::{Builder, Policy};
use crate::material::Material;
use crate::reloader::{Build, Reloader};
use crate::{CertificateInfo, CertificateStatus, Error, Reload};

/// A TLS client whose client certificate, key and CA bundle follow the files on disk.
///
/// Every connection is configured from the [`SslConnector`] published last: one
/// atomic load, no I/O, no lock. Server names (DNS or IP) are verified by default,
/// as `SslConnector::configure` does.
///
/// Built by [`ReloadingConnector::builder`]. Cheap to clone; the poller thread stops
/// when the last clone is dropped.
#[derive(Clone)]
pub struct ReloadingConnector {
    inner: Arc<Reloader<SslConnector>>,
    /// A CA bundle is configured: [`configure_ssl`](Self::configure_ssl) puts its
    /// store on foreign connections.
    pub(crate) pinned: bool,
}

impl ReloadingConnector {
    /// Starts a builder. With neither an [`identity`](Builder::identity) nor a
    /// [`ca`](Builder::ca) it is a plain client trusting the system's default CA
    /// paths.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = openssl_reload::ReloadingConnector::builder()
    ///     .identity("node.crt", "node.key")
    ///     .ca("cluster-ca.pem")
    ///     .build()?;
    /// let tcp = tokio::net::TcpStream::connect("10.0.0.2:4002").await?;
    /// let stream = client.connect("node2.cluster.internal", tcp).await?;
    /// # drop(stream); Ok(()) }
    /// ```
    pub fn builder() -> ReloadingConnectorBuilder {
        Builder::new()
    }

    /// The connector in service right now.
    pub fn connector(&self) -> Arc<SslConnector> {
        self.current().load_full()
    }

    /// The context in service right now: the one the next connection is made
    /// from, with the policy, the client certificate and the CA bundle. As
    /// [`ReloadingAcceptor::current_context`](crate::ReloadingAcceptor::current_context)
    /// is for the server side.
    pub fn current_context(&self) -> SslContext {
        self.current().load().context().to_owned()
    }

    pub(crate) fn current(&self) -> &ArcSwap<SslConnector> {
        self.inner.current()
    }

    /// A configuration for one new connection from the current material, with
    /// hostname (or IP address) verification on.
    ///
    /// # Errors
    ///
    /// OpenSSL's error from `SSL_new`.
    pub fn configure(&self) -> Result<ConnectConfiguration, openssl::error::ErrorStack> {
        self.current().load().configure()
    }

    /// Connects over `stream` with tokio-openssl (`SSL_connect`), verifying that
    /// the server's certificate is valid for `domain` (a DNS name or an IP address).
    ///
    /// # Errors
    ///
    /// The handshake's error, including a verification failure, as an `io::Error`
    /// whose source is the `openssl::ssl::Error`; `InvalidInput` for a `domain`
    /// with a NUL byte.
    pub async fn connect<S>(&self, domain: &str, stream: S) -> io::Result<SslStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if domain.contains('\0') {
            // The openssl crate's `set_hostname` would unwrap a CString of it.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "server name contains a NUL byte",
            ));
        }
        let ssl = self
            .configure()
            .and_then(|c| c.into_ssl(domain))
            .map_err(io::Error::other)?;
        let mut stream = SslStream::new(ssl, stream).map_err(io::Error::other)?;
        std::pin::Pin::new(&mut stream)
            .connect()
            .await
            .map_err(crate::common::tls_to_io)?;
        Ok(stream)
    }

    /// A snapshot of what is in service and how reloading went.
    pub fn status(&self) -> CertificateStatus {
        self.inner.status()
    }

    /// A receiver that sees every change of [`status`](Self::status).
    pub fn subscribe(&self) -> watch::Receiver<CertificateStatus> {
        self.inner.subscribe()
    }

    /// Reads and, if the content changed, publishes the files right now.
    ///
    /// # Errors
    ///
    /// The reason the files were not published; the previous material stays in service.
    pub fn reload_now(&self) -> Result<Reload, Error> {
        self.inner.reload_now()
    }
}

impl fmt::Debug for ReloadingConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingConnector")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// The client's own settings in a [`Builder`]: none yet beyond the shared ones.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ClientSide {}

/// Configures a [`ReloadingConnector`]: the shared settings of [`Builder`].
pub type ReloadingConnectorBuilder = Builder<ClientSide>;

impl Builder<ClientSide> {
    /// Loads and validates the files once, as [`build`](Self::build) would, and builds
    /// a connector from them with the policy; starts nothing.
    ///
    /// Returns the client certificate that would be presented, `None` for a
    /// connector without one (a CA bundle alone).
    ///
    /// # Errors
    ///
    /// The reason the material would be refused at start-up.
    pub fn check(&self) -> Result<Option<CertificateInfo>, Error> {
        let material = self.load_once()?;
        let info = material.identity.as_ref().map(|i| i.info.clone());
        client_connector(&self.policy, self.files.ca.is_some(), material)?;
        Ok(info)
    }

    /// Loads and validates the files and starts the poller.
    ///
    /// # Errors
    ///
    /// Any problem with the initial material, an error from the policy, or a failure
    /// to spawn the poller thread.
    pub fn build(self) -> Result<ReloadingConnector, Error> {
        let pinned = self.files.ca.is_some();
        let build = ClientContexts {
            policy: Arc::clone(&self.policy),
            pinned,
        };
        let reloader = Reloader::start(self.setup("connector"), build)?;
        Ok(ReloadingConnector {
            inner: Arc::new(reloader),
            pinned,
        })
    }
}

/// How the client side builds the connector it publishes, from the policy.
struct ClientContexts {
    policy: Policy,
    /// A CA bundle is configured, so the system's CAs must never be trusted,
    /// not even while the bundle is missing at start-up.
    pinned: bool,
}

impl Build<SslConnector> for ClientContexts {
    fn build(&self, material: Material) -> Result<SslConnector, Error> {
        client_connector(&self.policy, self.pinned, material)
    }
}

/// `pinned`: a CA bundle is configured, so the system's CAs must never be trusted,
/// not even while the bundle is missing at start-up.
fn client_connector(
    policy: &Policy,
    pinned: bool,
    material: Material,
) -> Result<SslConnector, Error> {
    let mut builder = SslConnector::builder(SslMethod::tls_client())
        .map_err(Error::openssl("build the client context"))?;
    policy(&mut builder).map_err(Error::openssl("apply the TLS policy"))?;
    if let Some(identity) = &material.identity {
        identity.install(&mut builder)?;
    }
    match material.trust {
        Some(trust) => builder.set_cert_store(trust.store),
        None if pinned => builder.set_cert_store(
            X509StoreBuilder::new()
                .map_err(Error::openssl("build an empty trust store"))?
                .build(),
        ),
        None => {}
    }
    Ok(builder.build())
}
