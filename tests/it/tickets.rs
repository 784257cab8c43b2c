//! Session ticket keys: automatic rotation keeps older tickets usable for a window,
//! and a ticket-key file shared by a fleet is followed like the certificates.

use std::path::Path;
use std::time::{Duration, Instant};

use openssl::ssl::{SslConnector, SslMethod, SslSession, SslVersion};
use openssl_reload::{ReloadingAcceptor, ReloadingAcceptorBuilder, TicketKeyStatus};

use crate::support::*;

/// A TLS 1.2 or 1.3 client trusting `ca`.
fn client(ca: &Ca, version: SslVersion) -> SslConnector {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    let mut store = openssl::x509::store::X509StoreBuilder::new().unwrap();
    store.add_cert(ca.cert.clone()).unwrap();
    b.set_cert_store(store.build());
    b.set_min_proto_version(Some(version)).unwrap();
    b.set_max_proto_version(Some(version)).unwrap();
    b.build()
}

struct Fixture {
    tls: ReloadingAcceptor,
    server: Server,
    ca: Ca,
    _dir: tempfile::TempDir,
}

async fn fixture(
    configure: impl FnOnce(ReloadingAcceptorBuilder) -> ReloadingAcceptorBuilder,
) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("tickets CA");
    let (cert, key) = ca.leaf("tickets").write(dir.path());
    let tls = configure(
        ReloadingAcceptor::builder()
            .identity(cert, key)
            .poll_interval(INTERVAL),
    )
    .build()
    .unwrap();
    let server = serve(tls.clone()).await;
    Fixture {
        tls,
        server,
        ca,
        _dir: dir,
    }
}

async fn wait_rotations(tls: &ReloadingAcceptor, at_least: u64) {
    let start = Instant::now();
    while tls.ticket_keys().rotations < at_least {
        assert!(
            start.elapsed() < DEADLINE,
            "waited {DEADLINE:?} for {at_least} ticket key rotations: {:#?}",
            tls.ticket_keys()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// With two keys kept, a ticket resumes after one rotation (its key now only
/// decrypts) and, once its key has left the ring, falls back to a full handshake
/// without an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_ticket_keys_keep_a_window_then_expire() {
    for version in [SslVersion::TLS1_3, SslVersion::TLS1_2] {
        // 400 ms a key: a ticket is resumable for 400-800 ms, which leaves the
        // check below hundreds of milliseconds even on a loaded machine. A round
        // that saw two rotations during its attempt proves nothing and is retried.
        let f = fixture(|b| b.ticket_key_rotation(Duration::from_millis(400), 2)).await;
        let client = client(&f.ca, version);
        let mut proved = false;
        for _ in 0..5 {
            let base = f.tls.ticket_keys().rotations;
            let first = exchange(&client, f.server.addr, None).await.unwrap();
            let session = first.session.expect("a session ticket");
            let issued_under = f.tls.ticket_keys().rotations;
            wait_rotations(&f.tls, issued_under + 1).await;
            let again = exchange(&client, f.server.addr, Some(&session))
                .await
                .unwrap();
            let rotations = f.tls.ticket_keys().rotations;
            if rotations > issued_under + 1 || issued_under != base {
                continue;
            }
            assert!(
                again.resumed,
                "{version:?}: a ticket of the previous key did not resume"
            );
            wait_rotations(&f.tls, issued_under + 2).await;
            let late = exchange(&client, f.server.addr, Some(&session))
                .await
                .expect("a ticket whose key is gone falls back to a full handshake");
            assert!(
                !late.resumed,
                "{version:?}: a ticket resumed after its key left the ring"
            );
            proved = true;
            break;
        }
        assert!(
            proved,
            "{version:?}: no round saw exactly one rotation between issue and resumption"
        );
        assert_eq!(f.tls.ticket_keys().keys, 2);
        assert_eq!(f.tls.ticket_keys().failures, 0);
    }
}

fn key_line(byte: u8) -> String {
    let mut key = [0u8; 80];
    openssl::rand::rand_bytes(&mut key).unwrap();
    key[0] = byte; // distinct names even if the random bytes were not
    openssl::base64::encode_block(&key)
}

fn write_keys(path: &Path, lines: &[&str]) {
    write_atomic(path, format!("{}\n", lines.join("\n")).as_bytes());
}

/// A full handshake's session (with its ticket).
async fn new_session(client: &SslConnector, addr: std::net::SocketAddr) -> SslSession {
    exchange(client, addr, None).await.unwrap().session.unwrap()
}

/// Waits until the ticket keys report a failed read, failing the test with the
/// status after [`DEADLINE`].
async fn ticket_key_failure(tls: &ReloadingAcceptor) -> TicketKeyStatus {
    let start = Instant::now();
    loop {
        let status = tls.ticket_keys();
        if status.failures > 0 {
            return status;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the garbage file was not reported: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The file's first key encrypts and every key decrypts; dropping a key ends its
/// tickets (full handshake, no error); a bad file keeps the keys in service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_key_file_is_followed() {
    let keys_dir = tempfile::tempdir().unwrap();
    let file = keys_dir.path().join("ticket.keys");
    let (a, b) = (key_line(1), key_line(2));
    write_keys(&file, &[&a]);
    let f = fixture(|builder| builder.ticket_key_file(&file)).await;
    assert_eq!(f.tls.ticket_keys().file.as_deref(), Some(&*file));
    let client = client(&f.ca, SslVersion::TLS1_2);
    let under_a = new_session(&client, f.server.addr).await;

    write_keys(&file, &[&b, &a]);
    wait_rotations(&f.tls, 1).await;
    let seen = exchange(&client, f.server.addr, Some(&under_a))
        .await
        .unwrap();
    assert!(seen.resumed, "a ticket of the second line resumes");
    let under_b = new_session(&client, f.server.addr).await;

    write_keys(&file, &[&b]);
    wait_rotations(&f.tls, 2).await;
    let seen = exchange(&client, f.server.addr, Some(&under_a))
        .await
        .expect("a ticket of a dropped key falls back to a full handshake");
    assert!(!seen.resumed, "a ticket of a dropped key resumed");

    write_atomic(&file, b"this is not a ticket key\n");
    let status = ticket_key_failure(&f.tls).await;
    let message = status.last_error.unwrap().message;
    assert!(
        message.contains("ticket.keys") && message.contains("line 1"),
        "{message}"
    );
    assert!(
        !message.contains("not a ticket key"),
        "the error shows the file's content: {message}"
    );
    assert_eq!(status.keys, 1);
    let seen = exchange(&client, f.server.addr, Some(&under_b))
        .await
        .unwrap();
    assert!(seen.resumed, "the keys in service stay after a bad file");
}
