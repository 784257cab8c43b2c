//! A long-lived hyper client over hyper-openssl whose connector callback puts
//! the `ReloadingConnector`'s material on each connection: a real HTTPS server
//! (hyper over the reloader's acceptor, client certificates required) sees
//! every rotated client certificate, and the client follows a rotation of
//! its CA bundle, refusing a server of a dropped CA, resumption included.

#[path = "../../../tests/support/mod.rs"]
mod support;

mod common;

use std::path::Path;
use std::time::Duration;

use openssl_reload::{ClientAuth, ReloadingAcceptor, ReloadingConnector};
use openssl_reload_hyper_openssl::{client, HttpsClient};
use support::{Ca, K8sVolume, Leaf};
use tempfile::TempDir;

/// The poll interval of the rotation tests.
const POLL: Duration = support::ROTATION_POLL;

/// A secret volume of `tls.crt`, `tls.key` and the peers' CA bundle `ca.crt`.
fn volume(dir: &Path, leaf: &Leaf, ca_pem: &[u8]) -> K8sVolume {
    std::fs::create_dir(dir).unwrap();
    let (cert, key) = (leaf.cert_pem(), leaf.key_pem());
    K8sVolume::new(
        dir,
        &[
            ("tls.crt", &cert[..]),
            ("tls.key", &key[..]),
            ("ca.crt", ca_pem),
        ],
    )
}

/// Renames a new `tls.crt`, `tls.key` and `ca.crt` into place at once.
fn update(volume: &mut K8sVolume, leaf: &Leaf, ca_pem: &[u8]) {
    let (cert, key) = (leaf.cert_pem(), leaf.key_pem());
    volume.update(&[
        ("tls.crt", &cert[..]),
        ("tls.key", &key[..]),
        ("ca.crt", ca_pem),
    ]);
}

/// An HTTPS server for `leaf` that requires clients of `client_ca`.
async fn server(volume: &K8sVolume) -> (support::Server, ReloadingAcceptor) {
    let tls = ReloadingAcceptor::builder()
        .identity(volume.path("tls.crt"), volume.path("tls.key"))
        .ca(volume.path("ca.crt"))
        .client_auth(ClientAuth::Required)
        .poll_interval(POLL)
        .build()
        .unwrap();
    (common::serve(tls.clone()).await, tls)
}

/// A reloading client over the files of `volume`, and its hyper client that
/// makes a new connection for every request.
fn reloading_client(volume: &K8sVolume) -> (ReloadingConnector, HttpsClient) {
    let tls = ReloadingConnector::builder()
        .identity(volume.path("tls.crt"), volume.path("tls.key"))
        .ca(volume.path("ca.crt"))
        .poll_interval(POLL)
        .build()
        .unwrap();
    let https = client(&tls, 0).unwrap();
    (tls, https)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rotated_client_certificate_is_presented() {
    let dir = TempDir::new().unwrap();
    let (server_ca, client_ca) = (Ca::new("server CA"), Ca::new("client CA"));
    let server_files = volume(
        &dir.path().join("server"),
        &server_ca.leaf("localhost"),
        &client_ca.pem(),
    );
    let first = client_ca.leaf("client");
    let mut client_files = volume(&dir.path().join("client"), &first, &server_ca.pem());
    let (server, _server_tls) = server(&server_files).await;
    let (_tls, https) = reloading_client(&client_files);
    let addr = server.addr;
    assert_eq!(
        common::get(&https, addr).await.unwrap().client,
        first.serial
    );

    let load = support::load(2, {
        let https = https.clone();
        move |_| {
            let https = https.clone();
            async move { common::get(&https, addr).await.map(drop) }
        }
    });
    let rotated = support::rotate(
        200,
        |_| {
            let leaf = client_ca.leaf("client");
            update(&mut client_files, &leaf, &server_ca.pem());
            leaf.serial
        },
        || async { common::get(&https, addr).await.ok().map(|seen| seen.client) },
    )
    .await;
    let counts = load.stop().await;
    support::assert_clean("hyper-openssl", &counts, &rotated);
}

/// Requests until one resumed: the client's session cache is in use.
async fn until_resumed(https: &HttpsClient, addr: std::net::SocketAddr) -> common::Seen {
    support::eventually("a resumed session", || async {
        common::get(https, addr)
            .await
            .ok()
            .filter(|seen| seen.resumed)
    })
    .await
}

/// Waits until `tls` has published past `generation`.
async fn published_after(tls: &ReloadingConnector, generation: u64) {
    support::eventually("the client's reload", || async {
        (tls.status().generation > generation).then_some(())
    })
    .await;
}

/// Renames a new CA bundle into the client's volume and waits until the
/// client has it in service.
async fn trust(files: &mut K8sVolume, me: &Leaf, ca_pem: &[u8], tls: &ReloadingConnector) {
    let generation = tls.status().generation;
    update(files, me, ca_pem);
    published_after(tls, generation).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_never_resumes_with_the_old_client_certificate() {
    let dir = TempDir::new().unwrap();
    let (server_ca, client_ca) = (Ca::new("server CA"), Ca::new("client CA"));
    let server_files = volume(
        &dir.path().join("server"),
        &server_ca.leaf("localhost"),
        &client_ca.pem(),
    );
    let mut client_files = volume(
        &dir.path().join("client"),
        &client_ca.leaf("old"),
        &server_ca.pem(),
    );
    let (server, _server_tls) = server(&server_files).await;
    let (tls, https) = reloading_client(&client_files);
    until_resumed(&https, server.addr).await;

    let generation = tls.status().generation;
    let new = client_ca.leaf("new");
    update(&mut client_files, &new, &server_ca.pem());
    published_after(&tls, generation).await;
    for _ in 0..10 {
        let seen = common::get(&https, server.addr).await.unwrap();
        assert_eq!(seen.client, new.serial, "resumed: {}", seen.resumed);
    }
    // Sessions made with the new certificate resume.
    assert_eq!(until_resumed(&https, server.addr).await.client, new.serial);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_ca_rotation_and_refuses_servers_of_the_dropped_ca() {
    let dir = TempDir::new().unwrap();
    let (old_ca, new_ca, client_ca) = (Ca::new("old CA"), Ca::new("new CA"), Ca::new("client CA"));
    let old_server = |name| {
        volume(
            &dir.path().join(name),
            &old_ca.leaf("localhost"),
            &client_ca.pem(),
        )
    };
    // One server is reissued by the new CA; the other keeps its old CA's certificate.
    let (mut server_files, stays_files) = (old_server("server"), old_server("stays"));
    let me = client_ca.leaf("client");
    let mut client_files = volume(&dir.path().join("client"), &me, &old_ca.pem());
    let ((server, _), (stays, _)) = (server(&server_files).await, server(&stays_files).await);
    let (tls, https) = reloading_client(&client_files);
    // Sessions with the server of the old CA are cached and resume.
    until_resumed(&https, stays.addr).await;

    let addr = server.addr;
    let load = support::load(2, {
        let https = https.clone();
        move |_| {
            let https = https.clone();
            async move { common::get(&https, addr).await.map(drop) }
        }
    });
    // Old + new CA, then the server reissued by the new CA, then the new CA alone.
    let both = [old_ca.pem(), new_ca.pem()].concat();
    trust(&mut client_files, &me, &both, &tls).await;
    let reissued = new_ca.leaf("localhost");
    update(&mut server_files, &reissued, &client_ca.pem());
    support::eventually("the reissued certificate", || async {
        let seen = common::get(&https, addr).await.ok()?;
        (seen.server == reissued.serial).then_some(())
    })
    .await;
    trust(&mut client_files, &me, &new_ca.pem(), &tls).await;
    let counts = load.stop().await;
    assert_eq!(
        counts.failures, 0,
        "first failure: {:?}",
        counts.first_failure
    );
    assert_eq!(
        common::get(&https, addr).await.unwrap().server,
        reissued.serial
    );

    // The server of the dropped CA is refused: no cached session resumes.
    for _ in 0..5 {
        let refused = common::get(&https, stays.addr).await;
        assert!(refused.is_err(), "{refused:?}");
    }
    // A client whose bundle holds only the old CA is refused by the reissued server.
    let stale_files = volume(&dir.path().join("stale"), &me, &old_ca.pem());
    let (_stale_tls, stale) = reloading_client(&stale_files);
    let refused = common::get(&stale, addr).await;
    assert!(refused.is_err(), "{refused:?}");
}
