//! A pre-forking C server (`tests/c/forking.c`) with its key in a SoftHSM2
//! token: the parent opens the key to check the configuration and forks; each
//! child opens it again (a PKCS#11 session is not shared across `fork`)
//! before it serves, and follows a certificate rotated around the key.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use super::{Fixture, Site};
use crate::capi::connect;
use crate::capi::program::CProgram;
use crate::harness::eventually;

#[test]
#[ignore = "needs a SoftHSM2 token and the C programs: run by ci/hardware-keys.sh"]
fn forked_children_open_the_token_key_again_and_serve() {
    let hsm = Fixture::load("env");
    let site = Site::new(hsm.var("HSM_PIN"));
    let key = hsm.public_key("HSM_EC_CERT");
    let first = site.certify(&key, 10_001);
    let (cert, pin) = (
        site.cert.display().to_string(),
        site.pin.display().to_string(),
    );
    let args = [
        "--children",
        "2",
        "--poll-ms",
        "20",
        "--pin-file",
        &pin,
        &cert,
        hsm.var("HSM_EC_URI"),
    ];
    let mut server = CProgram::native("forking", &args);
    let line = server.wait_line("the listening line", |l| l.starts_with("listening "));
    let addr = SocketAddr::from(([127, 0, 0, 1], line["listening ".len()..].parse().unwrap()));
    let children: BTreeSet<String> = (0..2)
        .map(|_| {
            let line = server.wait_line("a polling child", |l| l.starts_with("polling pid="));
            line["polling pid=".len()..].trim().to_owned()
        })
        .collect();

    // Every child serves, with the key it opened itself; then a rotation.
    every_child_serves(addr, &site, &children, &first);
    let next = site.certify(&key, 10_002);
    every_child_serves(addr, &site, &children, &next);
    // Generation 2 is the child's own opening of the key (start_polling's
    // first tick), so the rotation is generation 3 in every child; with a
    // key file it would be 2.
    // (The children print in any order: counted, not waited for in turn.)
    for pid in &children {
        let wanted = format!("change pid={pid} generation=3 ");
        eventually("the rotation as generation 3 in each child", || {
            (server.count(|l| l.starts_with(&wanted)) == 1).then_some(())
        });
    }
    server.send("quit");
    for pid in &children {
        let wanted = format!("exited {pid} ");
        let line = server.wait_line("a child's exit", |l| l.starts_with(&wanted));
        assert_eq!(line, format!("exited {pid} 0"));
    }
    server.finish();
}

/// Connects until every one of `children` has answered with `serial`.
fn every_child_serves(addr: SocketAddr, site: &Site, children: &BTreeSet<String>, serial: &str) {
    let mut answered = BTreeSet::new();
    eventually("every child serving the certificate", || {
        let seen = connect(addr, &site.ca_pem, &[]);
        if seen.served && seen.serial.as_deref() == Some(serial) {
            let hello = seen.text.lines().find(|l| l.starts_with("hello "))?;
            answered.insert(hello.rsplit("pid=").next()?.to_owned());
        }
        (answered == *children).then_some(())
    });
}
