//! Unit tests of the engine: calls `poll` by hand, no poller thread.

use super::*;
use crate::material::{IdentityFiles, Material};
use openssl::asn1::Asn1Time;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::{X509Name, X509};
use std::path::Path;

/// A self-signed P-256 certificate and its PKCS#8 key, as PEM.
fn pair(cn: &str) -> (Vec<u8>, Vec<u8>) {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509Name::builder().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    (
        b.build().to_pem().unwrap(),
        key.private_key_to_pem_pkcs8().unwrap(),
    )
}

/// An engine over `cert` and `key` whose build does nothing; the poller thread
/// is not started: `poll` is called by hand.
fn engine_over(cert: &Path, key: &Path) -> Engine<()> {
    let files = WatchedFiles {
        identity: Some(IdentityFiles::Pair {
            cert: cert.to_owned(),
            key: key.to_owned(),
        }),
        ..WatchedFiles::default()
    };
    let setup = Setup {
        role: "test",
        files,
        checks: Checks::default(),
        poll_interval: Duration::from_secs(3600),
        allow_missing: false,
        announce: true,
    };
    Engine::start(setup, Nothing).unwrap()
}

/// A build that makes nothing of the material.
struct Nothing;

impl Build<()> for Nothing {
    fn build(&self, _: Material) -> Result<(), Error> {
        Ok(())
    }
}

/// A mismatch right after a change waits one tick; one that stays is a failure.
#[test]
fn mismatch_after_a_change_gets_one_tick() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (c1, k1) = pair("one");
    std::fs::write(&cert, &c1).unwrap();
    std::fs::write(&key, &k1).unwrap();
    let engine = engine_over(&cert, &key);

    let (c2, k2) = pair("two");
    std::fs::write(&cert, &c2).unwrap();
    // Not yet a failure: the caller (the site set, which reports a failed
    // poll) must see the deferral as no news.
    assert!(
        matches!(engine.poll(), Polled::Checked),
        "a deferred mismatch is reported as a failed poll"
    );
    assert_eq!(engine.status().failures, 0, "the key gets a tick");
    std::fs::write(&key, &k2).unwrap();
    engine.poll();
    let status = engine.status();
    assert_eq!((status.failures, status.generation), (0, 2), "{status:?}");

    let (c3, _) = pair("three");
    std::fs::write(&cert, &c3).unwrap();
    engine.poll();
    assert_eq!(engine.status().failures, 0);
    engine.poll(); // no change, but the retry is due: now it counts
    let status = engine.status();
    assert_eq!((status.failures, status.generation), (1, 2), "{status:?}");
    assert!(matches!(
        engine.reload_now(),
        Err(Error::KeyMismatch { .. })
    ));
}

/// A file that changes while it is read is not published; the next tick
/// reads it again and publishes what the writer finished.
#[test]
fn a_file_changed_during_the_read_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (c1, k1) = pair("one");
    std::fs::write(&cert, &c1).unwrap();
    std::fs::write(&key, &k1).unwrap();
    let mut engine = engine_over(&cert, &key);
    // The writer appends to the file (as it would the intermediates) right
    // after the first read of it.
    let appended = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (hook_cert, hook_appended) = (cert.clone(), Arc::clone(&appended));
    engine.after_read = Some(Box::new(move || {
        if !hook_appended.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&hook_cert)
                .unwrap();
            std::io::Write::write_all(&mut f, b"\n").unwrap();
        }
    }));
    let (c2, k2) = pair("two");
    std::fs::write(&key, &k2).unwrap();
    std::fs::write(&cert, &c2).unwrap();
    engine.poll();
    let status = engine.status();
    assert!(
        appended.load(std::sync::atomic::Ordering::SeqCst),
        "the hook ran"
    );
    assert_eq!(
        (status.generation, status.failures),
        (1, 0),
        "torn read published: {status:?}"
    );
    engine.poll();
    let status = engine.status();
    assert_eq!(
        (status.generation, status.failures),
        (2, 0),
        "not read again: {status:?}"
    );
    assert!(
        status.last_poll.is_none(),
        "a poll alone does not mark the tick"
    );
    engine.mark_polled();
    assert!(engine.status().last_poll.is_some());
}
