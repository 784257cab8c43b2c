//! Hot-reload TLS certificates, keys and CA bundles for OpenSSL servers and clients.
//!
//! Certificates rotated by cert-manager, Let's Encrypt, Vault or a cloud CA are
//! picked up without a restart, without dropping a connection, and without ever
//! serving a broken pair: new files are loaded and validated off the handshake
//! path, and a bad file leaves the last good material in service.
//!
//! # Example
//!
//! A tokio server whose certificate follows `cert.pem` and `key.pem`:
//!
//! ```no_run
//! use openssl_reload::{Passphrase, ReloadingAcceptor};
//! use tokio::io::AsyncWriteExt;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let tls = ReloadingAcceptor::builder().identity("/etc/tls/cert.pem", "/etc/tls/key.pem")
//!     .passphrase(Passphrase::from_env("TLS_KEY_PASSPHRASE"))
//!     .policy(|ctx| {
//!         ctx.set_min_proto_version(Some(openssl_reload::openssl::ssl::SslVersion::TLS1_2))
//!     })
//!     .build()?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
//! loop {
//!     let (tcp, _) = listener.accept().await?;
//!     let tls = tls.clone();
//!     tokio::spawn(async move {
//!         if let Ok(mut stream) = tls.accept(tcp).await {
//!             let _ = stream.write_all(b"hello\n").await;
//!         }
//!     });
//! }
//! # }
//! ```
//!
//! Blocking servers use the same front acceptor: `tls.acceptor().accept(tcp)`.
//!
//! # How reloading works
//!
//! ```text
//! poller thread (every interval)           handshake (any thread, many at once)
//! stat each file -> fingerprint            client hello callback:
//! changed? read, hash, parse, validate       snapshot = ArcSwap::load()
//! build, rebuild the site table,             site = snapshot.lookup(SNI)
//! ArcSwap::store(snapshot)                   SSL_set_SSL_CTX(ssl, trust context)
//!                                            install the site's cert, chain, key
//! ```
//!
//! - A **fingerprint** is device, inode, size, mtime and ctime (nanoseconds) of the
//!   file a path resolves to, symlinks followed, compared with `!=`. It sees atomic
//!   renames, in-place rewrites, restores with an older mtime, and Kubernetes'
//!   `..data` symlink swaps. While nothing changes, a tick costs one `stat(2)` per
//!   file and reads nothing.
//! - A changed file is read whole (size-capped) and hashed; identical content is not
//!   republished. New material must parse, the key must match the certificate, the
//!   certificate must be within its validity period ([`ValidityPolicy`]) and each
//!   certificate of the chain must be signed by the next. The CA bundle verifies
//!   peers; the server's own chain is checked against it only on request.
//! - The fixed front `SslAcceptor`'s **client hello callback** runs for every
//!   handshake (with or without SNI) and switches it to the current trust context
//!   with `SSL_set_SSL_CTX` (trust store and client CA list), then puts the
//!   certificate, chain and key of the site its SNI name selects on the
//!   connection. One acceptor serves many sites ([`ReloadingAcceptorBuilder::site`],
//!   [`site_dir`](ReloadingAcceptorBuilder::site_dir)), each reloaded on its own.
//!   Verify mode, options and protocol versions are not switched; they come from
//!   the front context, which is why one **policy** closure configures the front
//!   and every reloaded context alike.
//! - Session tickets and the session cache live on the front context, so clients
//!   resume across reloads. Connections already open keep the certificate they
//!   started with. Ticket keys rotate (hourly by default, three kept) or come
//!   from a file shared by a fleet.
//! - A failure keeps the current material, is recorded in [`CertificateStatus`],
//!   logged once (warn) until it changes, and retried when a file changes again
//!   (otherwise with a back-off up to a minute: a not-yet-valid certificate
//!   becomes valid without any file changing).
//! - With client authentication, every session is bound to the CA bundle that
//!   verified its client: it resumes only while that bundle is in service, and
//!   otherwise the client falls back to a full handshake against the new bundle.
//!   A dropped CA's clients stop getting in, good clients never notice, and a
//!   rotation of the server certificate alone costs no resumption.
//!
//! # Crate features
//!
//! None is on by default; the library pulls in no server dependencies (the demo
//! server is the workspace's `openssl-reload-server` package).
//!
//! - `fips`: `fips::enable()` switches the process to OpenSSL 3's FIPS provider
//!   (the demo server's `--fips`).
//! - `vendored`: build and statically link OpenSSL from source (see `build.md`).
//!
//! # Design notes
//!
//! Why it is built this way, and the OpenSSL behaviour it rests on: [`design`].

#![warn(missing_docs, missing_debug_implementations, clippy::too_many_lines)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod acceptor;
mod attach;
mod builder;
mod common;
mod connector;
mod error;
mod ffi;
pub mod fips;
mod material;
mod poll;
mod reloader;
mod session;
mod sites;
mod tickets;

pub use openssl;

/// For this workspace's own crates (the C interface), so that a helper is
/// written once: not part of the API, and without semver promise.
#[doc(hidden)]
pub mod __private {
    pub use crate::common::panic_message;
}

pub use crate::acceptor::{
    ClientAuth, ReloadingAcceptor, ReloadingAcceptorBuilder, ServerSide, DEFAULT_HANDSHAKE_TIMEOUT,
};
pub use crate::builder::{Builder, DEFAULT_POLL_INTERVAL};
pub use crate::connector::{ClientSide, ReloadingConnector, ReloadingConnectorBuilder};
pub use crate::error::{
    ChainProblem, CrlProblem, Error, OcspProblem, PassphraseProblem, TicketKeyProblem,
};
pub use crate::material::{
    hardware_key_lock, load_key_providers, CertificateInfo, CrlCheck, CrlInfo, HardwareKeyProblem,
    KeyRoute, KeyStatus, KeyTurn, KeyUri, OcspInfo, Passphrase, StaleCrl, ValidityPolicy,
    DEFAULT_MAX_FILE_SIZE,
};
pub use crate::reloader::{CertificateStatus, Reload, ReloadFailure};
pub use crate::session::SESSION_ID_CONTEXT;
pub use crate::sites::SiteStatus;
pub use crate::tickets::{TicketKeyStatus, DEFAULT_TICKET_KEYS_KEPT, DEFAULT_TICKET_KEY_ROTATION};

/// The design notes (`docs/design.md`): the data flow from a file change to a
/// handshake, change detection, failures, sessions and trust, ticket keys.
/// `(test module::name)` names the test that shows a point: under `tests/it/`
/// for the integration tests, in the module for unit tests.
#[cfg(doc)]
#[doc = include_str!("../docs/design.md")]
pub mod design {}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
