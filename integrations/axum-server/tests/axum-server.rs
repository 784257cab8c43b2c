//! axum-server with `tls-openssl` over the reloader's fixed front acceptor:
//! the files' certificate is served, rotations under load are picked up
//! with no `reload_from_*` call and no failed request, and h2 is negotiated.

#[path = "../../../tests/support/mod.rs"]
mod support;

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum_server::Handle;
use hyper::Version;
use openssl_reload::ReloadingAcceptor;
use support::{Ca, K8sVolume};
use tempfile::TempDir;

/// The poll interval of the rotation tests.
const POLL: Duration = support::ROTATION_POLL;

/// A running server: its address, its files and what stops it.
struct Running {
    addr: SocketAddr,
    handle: Handle,
    ca: Ca,
    volume: K8sVolume,
    _dir: TempDir,
}

impl Running {
    async fn start() -> Self {
        let dir = TempDir::new().unwrap();
        let ca = Ca::new("axum-server test CA");
        let leaf = ca.leaf("localhost");
        let volume = K8sVolume::new(
            dir.path(),
            &[("tls.crt", &leaf.cert_pem()), ("tls.key", &leaf.key_pem())],
        );
        let tls = ReloadingAcceptor::builder()
            .identity(volume.path("tls.crt"), volume.path("tls.key"))
            .policy(openssl_reload_axum_server::alpn_h2_http1)
            .poll_interval(POLL)
            .build()
            .unwrap();
        let handle = Handle::new();
        let server = handle.clone();
        tokio::spawn(async move {
            let addr = SocketAddr::from(([127, 0, 0, 1], 0));
            openssl_reload_axum_server::serve(&tls, addr, server)
                .await
                .unwrap();
        });
        let addr = handle.listening().await.expect("the server listens");
        Self {
            addr,
            handle,
            ca,
            volume,
            _dir: dir,
        }
    }

    /// Mints a new leaf, renames it into place (one `..data` swap) and
    /// returns its serial.
    fn rotate(&mut self) -> String {
        let leaf = self.ca.leaf("localhost");
        self.volume
            .update(&[("tls.crt", &leaf.cert_pem()), ("tls.key", &leaf.key_pem())]);
        leaf.serial
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_files_certificate() {
    let server = Running::start().await;
    let served = common::served_certificate(&server.ca.pem(), server.addr).await;
    assert_eq!(
        support::fingerprint(&served),
        support::file_fingerprint(&server.volume.path("tls.crt"))
    );
    let client = common::https(&server.ca.pem(), b"\x08http/1.1");
    let (_, body) = common::get(&client, server.addr).await.unwrap();
    assert_eq!(body, "hello\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiates_h2_and_http1_by_alpn() {
    let server = Running::start().await;
    let h2 = common::https(&server.ca.pem(), b"\x02h2");
    let (version, body) = common::get(&h2, server.addr).await.unwrap();
    assert_eq!((version, body.as_str()), (Version::HTTP_2, "hello\n"));
    let http1 = common::https(&server.ca.pem(), b"\x08http/1.1");
    let (version, _) = common::get(&http1, server.addr).await.unwrap();
    assert_eq!(version, Version::HTTP_11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_under_load_need_no_reload_call() {
    let mut server = Running::start().await;
    let (addr, ca_pem) = (server.addr, server.ca.pem());
    let clients = [
        common::https(&ca_pem, b"\x08http/1.1"),
        common::https(&ca_pem, b"\x02h2"),
    ];
    let load = support::load(2, move |i| {
        let client = clients[i].clone();
        async move { common::get(&client, addr).await.map(drop) }
    });
    let connector = support::client(&ca_pem);
    let rotated = support::rotate(
        200,
        |_| server.rotate(),
        || async {
            support::handshake_serial(&connector, addr, "localhost")
                .await
                .ok()
        },
    )
    .await;
    let counts = load.stop().await;
    support::assert_clean("axum-server", &counts, &rotated);
}
