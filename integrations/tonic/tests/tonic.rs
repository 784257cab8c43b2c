//! tonic over mutual TLS through tonic-tls, for real: a gRPC server on
//! 127.0.0.1 behind the reloader's front acceptor, clients through the
//! reloading connector, files renamed into place while calls run.

#[path = "../../../tests/support/mod.rs"]
mod support;

mod common;

use common::{files, fresh_call, probe, raw_client, who_am_i, Node, CONNECTION_AGE, POLL};
use support::{file_fingerprint, serial_hex};

/// The serial of the first certificate in the PEM file at `path`.
fn file_serial(path: &std::path::Path) -> String {
    let pem = std::fs::read(path).unwrap();
    serial_hex(&openssl::x509::X509::from_pem(&pem).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_files_certificate_and_sees_the_clients() {
    let node = Node::start(POLL, Some(CONNECTION_AGE)).await;
    let raw = raw_client(&node.ca.leaf("raw client"), &node.ca);
    let served = probe(&raw, node.addr, None).await.unwrap();
    assert_eq!(
        served.fingerprint,
        file_fingerprint(&node.server_files.path("tls.crt"))
    );
    // The gRPC client presented its certificate file's, and the server saw it.
    let seen = fresh_call(&node.client, node.addr).await.unwrap();
    assert_eq!(seen, file_serial(&node.client_files.path("tls.crt")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_rotations_under_grpc_calls() {
    // No max connection age here: a call racing the close of an aged
    // connection can fail in tonic's channel (README), whatever the certificates.
    let mut node = Node::start(POLL, None).await;
    let (client, addr) = (node.client.clone(), node.addr);
    // Clients 0 and 1 call on a new connection each time (a handshake per call,
    // across every rotation); client 2 keeps one channel and its connection.
    let kept = node.channel().await.unwrap();
    let load = support::load(3, move |i| {
        let (client, kept) = (client.clone(), kept.clone());
        let call = async move {
            match i {
                2 => who_am_i(kept).await.map(drop),
                _ => fresh_call(&client, addr).await.map(drop),
            }
        };
        async move { call.await.map_err(|e| format!("client {i}: {e}")) }
    });
    let raw = raw_client(&node.ca.leaf("probe"), &node.ca);
    let (volume, ca, other) = (&mut node.server_files, &node.ca, &node.other);
    let rotated = support::rotate(
        200,
        |_| {
            let leaf = ca.leaf("localhost");
            volume.update(&files(&leaf, &[ca, other]));
            leaf.serial
        },
        || {
            let raw = &raw;
            async move { probe(raw, addr, None).await.ok().map(|p| p.serial) }
        },
    )
    .await;
    let counts = load.stop().await;
    support::assert_clean("tonic", &counts, &rotated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_presents_its_rotated_certificate() {
    let mut node = Node::start(POLL, Some(CONNECTION_AGE)).await;
    let kept = node.channel().await.unwrap();
    let first = who_am_i(kept.clone()).await.unwrap();
    assert_eq!(first, file_serial(&node.client_files.path("tls.crt")));

    let leaf = node.ca.leaf("node-client");
    node.client_files.update(&files(&leaf, &[&node.ca]));
    // A new connection presents the new certificate within the poll interval.
    let (client, addr) = (&node.client, node.addr);
    support::eventually(
        "a new connection with the new client certificate",
        || async {
            fresh_call(client, addr)
                .await
                .ok()
                .filter(|s| *s == leaf.serial)
        },
    )
    .await;
    // The kept channel's connection keeps the old one until the server closes
    // it (max connection age); the channel then reconnects with the new one.
    support::eventually(
        "the kept channel reconnected with the new certificate",
        || {
            let kept = kept.clone();
            async { who_am_i(kept).await.ok().filter(|s| *s == leaf.serial) }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_ca_refused_resumed_or_not_good_clients_never() {
    let mut node = Node::start(POLL, Some(CONNECTION_AGE)).await;
    let addr = node.addr;
    let good = raw_client(&node.ca.leaf("good"), &node.ca);
    let dropped = raw_client(&node.other.leaf("dropped"), &node.ca);
    // Before the drop both are served, and both resume their sessions.
    let good_session = probe(&good, addr, None).await.unwrap().session;
    let dropped_session = probe(&dropped, addr, None).await.unwrap().session;
    let again = probe(&dropped, addr, Some(&dropped_session)).await.unwrap();
    assert!(
        again.resumed,
        "the dropped CA's client resumes before the drop"
    );
    let good_again = probe(&good, addr, Some(&good_session)).await.unwrap();
    assert!(good_again.resumed);
    let dropped_grpc = node.connector("dropped", &node.other.leaf("dropped grpc"));
    let dropped_channel = common::channel(&dropped_grpc, addr).await.unwrap();

    // Good gRPC clients call without pause through the drop.
    let client = node.client.clone();
    let load = support::load(2, move |_| {
        let client = client.clone();
        async move { fresh_call(&client, addr).await.map(drop) }
    });
    node.server_files
        .update(&files(&node.server_leaf, &[&node.ca]));
    support::eventually("the dropped CA's client refused", || async {
        probe(&dropped, addr, None).await.err()
    })
    .await;
    let resumed = probe(&dropped, addr, Some(&again.session)).await;
    assert!(resumed.is_err(), "its old session must not let it in");
    assert!(fresh_call(&dropped_grpc, addr).await.is_err());
    // Its channel from before the drop ends with the connection's max age.
    support::eventually("the dropped client's old channel refused", || {
        let channel = dropped_channel.clone();
        async { who_am_i(channel).await.err() }
    })
    .await;

    // The good client's old session was bound to the old bundle: one full
    // handshake (not a refusal), and the new session resumes.
    let after = probe(&good, addr, Some(&good_again.session)).await.unwrap();
    assert!(
        !after.resumed,
        "a session of the old bundle resumes no more"
    );
    let resumed = probe(&good, addr, Some(&after.session)).await.unwrap();
    assert!(resumed.resumed, "the good client resumes again");
    let counts = load.stop().await;
    println!(
        "tonic (CA dropped): {} good calls, {} failures",
        counts.requests, counts.failures
    );
    assert_eq!(
        counts.failures, 0,
        "first failure: {:?}",
        counts.first_failure
    );
}
