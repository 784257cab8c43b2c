//! actix-web with `openssl` over an acceptor builder the reloader is attached
//! to: the files' certificate is served, actix's ALPN still negotiates h2 and
//! http/1.1, rotations under load are picked up with no failed request, and
//! a client of a dropped CA is refused, resumption included.

#[path = "../../../tests/support/mod.rs"]
mod support;

mod common;

use std::time::Duration;

use hyper::Version;
use openssl_reload::{ClientAuth, ReloadingAcceptor};
use support::{Ca, K8sVolume, Leaf};
use tempfile::TempDir;

/// The poll interval of the rotation tests.
const POLL: Duration = support::ROTATION_POLL;

/// A server's secret volume (`tls.crt`, `tls.key`) and a reloader over it.
fn served(dir: &TempDir, leaf: &Leaf) -> (K8sVolume, ReloadingAcceptor) {
    let volume = K8sVolume::new(
        dir.path(),
        &[("tls.crt", &leaf.cert_pem()), ("tls.key", &leaf.key_pem())],
    );
    let tls = ReloadingAcceptor::builder()
        .identity(volume.path("tls.crt"), volume.path("tls.key"))
        .poll_interval(POLL)
        .build()
        .unwrap();
    (volume, tls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_files_certificate_and_negotiates_h2_and_http1() {
    let (dir, ca) = (TempDir::new().unwrap(), Ca::new("actix test CA"));
    let (volume, tls) = served(&dir, &ca.leaf("localhost"));
    let server = common::server::start(tls);
    let served = common::served_certificate(&ca.pem(), server.addr).await;
    assert_eq!(
        support::fingerprint(&served),
        support::file_fingerprint(&volume.path("tls.crt"))
    );
    let h2 = common::https(&ca.pem(), b"\x02h2");
    let (version, body) = common::get(&h2, server.addr).await.unwrap();
    assert_eq!((version, body.as_str()), (Version::HTTP_2, "hello\n"));
    let http1 = common::https(&ca.pem(), b"\x08http/1.1");
    let (version, _) = common::get(&http1, server.addr).await.unwrap();
    assert_eq!(version, Version::HTTP_11);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_under_load() {
    let (dir, ca) = (TempDir::new().unwrap(), Ca::new("actix test CA"));
    let (mut volume, tls) = served(&dir, &ca.leaf("localhost"));
    let server = common::server::start(tls);
    let (addr, ca_pem) = (server.addr, ca.pem());
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
        |_| {
            let leaf = ca.leaf("localhost");
            volume.update(&[("tls.crt", &leaf.cert_pem()), ("tls.key", &leaf.key_pem())]);
            leaf.serial
        },
        || async {
            support::handshake_serial(&connector, addr, "localhost")
                .await
                .ok()
        },
    )
    .await;
    let counts = load.stop().await;
    server.stop().await;
    support::assert_clean("actix-web", &counts, &rotated);
}

/// A server's volume with the clients' CA bundle `ca.crt` too, and a reloader
/// over it that requires client certificates.
fn mtls_served(
    dir: &TempDir,
    cert: &[u8],
    key: &[u8],
    ca: &[u8],
) -> (K8sVolume, ReloadingAcceptor) {
    let files = [("tls.crt", cert), ("tls.key", key), ("ca.crt", ca)];
    let volume = K8sVolume::new(dir.path(), &files);
    let tls = ReloadingAcceptor::builder()
        .identity(volume.path("tls.crt"), volume.path("tls.key"))
        .ca(volume.path("ca.crt"))
        .client_auth(ClientAuth::Required)
        .poll_interval(POLL)
        .build()
        .unwrap();
    (volume, tls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_cas_client_is_refused_resumption_included() {
    let dir = TempDir::new().unwrap();
    let (server_ca, dropped_ca) = (Ca::new("server CA"), Ca::new("dropped CA"));
    let kept_ca = Ca::new("kept CA");
    let leaf = server_ca.leaf("localhost");
    let (cert, key) = (leaf.cert_pem(), leaf.key_pem());
    let both = [dropped_ca.pem(), kept_ca.pem()].concat();
    let (mut volume, tls) = mtls_served(&dir, &cert, &key, &both);
    let server = common::server::start(tls.clone());
    let addr = server.addr;
    let dropped = common::mtls::connector(&server_ca.pem(), &dropped_ca.leaf("dropped client"));
    let kept = common::mtls::connector(&server_ca.pem(), &kept_ca.leaf("kept client"));

    // Both work and resume.
    let mut sessions = Vec::new();
    for client in [&dropped, &kept] {
        let first = common::mtls::get(client, addr, None).await.unwrap();
        let again = common::mtls::get(client, addr, Some(&first.session))
            .await
            .unwrap();
        assert!(again.resumed, "a good client resumes");
        sessions.push(again.session);
    }

    volume.update(&[
        ("tls.crt", &cert),
        ("tls.key", &key),
        ("ca.crt", &kept_ca.pem()),
    ]);
    support::wait_status(&tls, "the bundle without the dropped CA", |s| {
        s.ca_certificates == 1
    })
    .await;

    let fresh = common::mtls::get(&dropped, addr, None).await;
    assert!(
        fresh.is_err(),
        "a fresh handshake of the dropped CA's client succeeded"
    );
    let resumed = common::mtls::get(&dropped, addr, Some(&sessions[0])).await;
    assert!(
        resumed.is_err(),
        "the dropped CA's client resumed its old session"
    );

    // The kept CA's client: its old session is a full handshake (the trust
    // changed), then it resumes again.
    let full = common::mtls::get(&kept, addr, Some(&sessions[1]))
        .await
        .unwrap();
    let again = common::mtls::get(&kept, addr, Some(&full.session))
        .await
        .unwrap();
    assert!(
        again.resumed,
        "the kept CA's client resumes after the rotation"
    );
    server.stop().await;
}
