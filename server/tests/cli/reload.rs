//! Reloading: rotated files within the poll interval, SIGHUP at once, and a bad
//! replacement that keeps the old certificate.

use std::time::{Duration, Instant};

use crate::clients::s_client;
use crate::fixture::Files;
use crate::harness::{clients_available, eventually};
use crate::support::write_atomic;

#[test]
fn rotated_files_are_served_within_the_poll_interval() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let server = f.start(&["--poll-interval", "20ms"]);
    assert_eq!(server.served_serial(&f.ca_pem), f.leaf.serial);

    let next = f.ca.leaf("localhost");
    next.write(f.dir.path());
    let started = Instant::now();
    eventually("the new serial over curl", || {
        (server.served_serial(&f.ca_pem) == next.serial).then_some(())
    });
    eprintln!("new certificate served after {:?}", started.elapsed());
    let (serial, _) = s_client(server.addr, &f.ca_pem, &[]);
    assert_eq!(serial, next.serial);
    let status = server.status(&f.ca_pem);
    assert_eq!(status["certificate"]["serial"], next.serial.as_str());
    assert_eq!(status["generation"], 2);
    assert_eq!(status["reloads"], 1);
}

#[test]
fn sighup_reloads_at_once_with_a_long_poll_interval() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let server = f.start(&["--poll-interval", "1m"]);
    let (serial, _) = s_client(server.addr, &f.ca_pem, &[]);
    assert_eq!(serial, f.leaf.serial);

    let next = f.ca.leaf("localhost");
    next.write(f.dir.path());
    // Nothing but the signal can reload within the next minute.
    assert_eq!(server.served_serial(&f.ca_pem), f.leaf.serial);
    let signalled = Instant::now();
    server.signal("HUP");
    eventually("the new serial after SIGHUP", || {
        (s_client(server.addr, &f.ca_pem, &[]).0 == next.serial).then_some(())
    });
    assert!(
        signalled.elapsed() < Duration::from_secs(30),
        "too slow for SIGHUP"
    );
    server.wait_log("SIGHUP: new certificate in service");

    // A second SIGHUP with nothing new says so.
    server.signal("HUP");
    server.wait_log("nothing to do");

    // A bad file and SIGHUP: logged, old certificate kept.
    write_atomic(&f.cert, b"not a certificate");
    server.signal("HUP");
    server.wait_log("SIGHUP: reload failed; keeping previous certificate");
    assert_eq!(server.served_serial(&f.ca_pem), next.serial);
}

#[test]
fn bad_replacement_keeps_the_old_certificate_and_status_shows_the_error() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let server = f.start(&["--poll-interval", "20ms"]);
    assert_eq!(server.served_serial(&f.ca_pem), f.leaf.serial);

    write_atomic(&f.cert, b"-----BEGIN CERTIFICATE-----\ngarbage\n");
    let status = eventually("/status to show the error", || {
        let status = server.status(&f.ca_pem);
        (!status["last_error"].is_null()).then_some(status)
    });
    let message = status["last_error"]["message"].as_str().unwrap();
    assert!(message.contains("cert.pem"), "{message}");
    assert_eq!(status["last_error"]["path"], f.cert.display().to_string());
    assert!(status["last_error"]["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(status["certificate"]["serial"], f.leaf.serial.as_str());
    assert_eq!(status["generation"], 1);
    assert!(status["failures"].as_u64().unwrap() >= 1);
    assert_eq!(server.served_serial(&f.ca_pem), f.leaf.serial);
    assert_eq!(s_client(server.addr, &f.ca_pem, &[]).0, f.leaf.serial);

    // A certificate with someone else's key: refused too, and said why.
    let next = f.ca.leaf("localhost");
    write_atomic(&f.cert, &next.cert_pem());
    eventually("/status to show the mismatch", || {
        let status = server.status(&f.ca_pem);
        let message = status["last_error"]["message"].as_str()?.to_owned();
        message.contains("does not match").then_some(())
    });
    assert_eq!(server.served_serial(&f.ca_pem), f.leaf.serial);

    // Its key arrives: served, and the failure streak ends.
    write_atomic(&f.key, &next.key_pem());
    eventually("the repaired pair to be served", || {
        (server.served_serial(&f.ca_pem) == next.serial).then_some(())
    });
    let status = server.status(&f.ca_pem);
    assert_eq!(status["consecutive_failures"], 0);
    assert_eq!(status["generation"], 2);
}
