//! Forking servers: `defer_polling` builds and attaches without a poller
//! thread (what a parent does before `fork(2)`), and `start_polling` starts it
//! where the server runs. The fork itself, with a C server whose children each
//! start polling, is `server/tests/cli/capi/forking.rs`.

use std::time::{Duration, Instant};

use openssl::ssl::{SslAcceptor, SslMethod};
use openssl_reload::ReloadingAcceptor;

use crate::support::{self, eventually, exchange, Ca, Leaf, INTERVAL};

/// A CA, its first leaf written in a temp dir, and an acceptor built on it
/// with deferred polling: nothing reads the files until the test says so.
struct Deferred {
    ca: Ca,
    first: Leaf,
    dir: tempfile::TempDir,
    tls: ReloadingAcceptor,
}

impl Deferred {
    fn new(ca_name: &str) -> Self {
        let ca = Ca::new(ca_name);
        let first = ca.leaf("first");
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = first.write(dir.path());
        let tls = ReloadingAcceptor::builder()
            .identity(&cert, &key)
            .poll_interval(INTERVAL)
            .defer_polling(true)
            .build()
            .unwrap();
        Self {
            ca,
            first,
            dir,
            tls,
        }
    }
}

#[tokio::test]
async fn deferred_polling_serves_what_it_loaded_and_follows_the_files_once_started() {
    let Deferred {
        ca,
        first,
        dir,
        tls,
    } = Deferred::new("fork test CA");
    // Attached before polling starts, as a forking parent does.
    let mut ctx = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
    tls.attach(&mut ctx).unwrap();
    let server = support::serve_context(ctx.build().into_context()).await;
    let client = support::client(&ca.pem());
    let serial = || async {
        exchange(&client, server.addr, None)
            .await
            .expect("handshake must succeed")
            .serial
    };
    assert_eq!(serial().await, first.serial);

    // Nothing reads the files: a rotation is not seen, however many intervals
    // go by, and the status records no poll.
    let second = ca.leaf("second");
    second.write(dir.path());
    let start = Instant::now();
    while start.elapsed() < INTERVAL * 10 {
        assert_eq!(serial().await, first.serial, "reloaded without a poller");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(tls.status().last_poll.is_none(), "{:?}", tls.status());

    tls.start_polling().unwrap();
    // A second start in the same process changes nothing.
    tls.start_polling().unwrap();
    eventually("the rotated certificate to be served", || async {
        (serial().await == second.serial).then_some(())
    })
    .await;
    let status = tls.status();
    assert!(status.last_poll.is_some(), "{status:?}");
    assert_eq!(status.reloads, 1, "{status:?}");
}

/// `poll` from the application's own event loop: with deferred polling and no
/// poller thread, each call is one tick on the calling thread, and a
/// rotation is served after the call that sees it, never before.
#[tokio::test]
async fn poll_from_the_applications_loop_is_one_tick_on_its_thread() {
    let Deferred {
        ca,
        first,
        dir,
        tls,
    } = Deferred::new("event loop CA");
    tls.poll().unwrap();
    assert!(tls.status().last_poll.is_some(), "a tick marks the poll");
    let second = ca.leaf("second");
    second.write(dir.path());
    let start = Instant::now();
    while start.elapsed() < INTERVAL * 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cert_serial = |tls: &ReloadingAcceptor| tls.status().certificate.unwrap().serial;
    assert_eq!(cert_serial(&tls), first.serial, "reloaded without a tick");
    tls.poll().unwrap();
    assert_eq!(cert_serial(&tls), second.serial, "the tick reloads");
    assert_eq!(tls.status().reloads, 1);
}
