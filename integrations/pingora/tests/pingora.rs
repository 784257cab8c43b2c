//! Pingora for real: its HTTP server on 127.0.0.1 with TLS settings built on
//! the certificate callback adapter, two SNI sites and client certificates
//! required, files renamed into place while requests run.

#[path = "../../../tests/support/mod.rs"]
mod support;

mod common;

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};

use common::{client, get, key_pair, site_leaf, Mode, Sites, ALPHA, BETA};
use support::file_fingerprint;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_each_sites_certificate() {
    let sites = Sites::start(Mode::Attached).await;
    let leaf = sites.ca.leaf("good client");
    let good = client(Some(&leaf), &sites.ca);
    for (name, volume) in [(ALPHA, &sites.alpha), (BETA, &sites.beta)] {
        let reply = get(&good, sites.addr, name, None).await.unwrap();
        assert_eq!(reply.fingerprint, file_fingerprint(&volume.path("tls.crt")));
        // The app sees the client certificate the connection verified.
        let seen = reply.body.trim().rsplit(' ').next().unwrap().to_owned();
        assert!(seen.eq_ignore_ascii_case(&leaf.serial), "{}", reply.body);
    }
    // Without a client certificate: refused.
    let anonymous = client(None, &sites.ca);
    assert!(get(&anonymous, sites.addr, ALPHA, None).await.is_err());
}

/// `install` refusing a name (strict SNI) cannot fail Pingora's callback; the
/// handshake fails all the same: with the adapter alone a `handshake_failure`
/// (no certificate, and the adapter's refusing verify callback), attached an
/// `unrecognized_name` from the client hello callback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_name_refused_under_strict_sni() {
    for mode in [Mode::CallbackOnly, Mode::Attached] {
        let sites = Sites::start_with(mode, true).await;
        let good = client(Some(&sites.ca.leaf("good client")), &sites.ca);
        get(&good, sites.addr, BETA, None).await.unwrap();
        // Host name not checked: the server must refuse, whatever it would present.
        let mut lax = SslConnector::builder(SslMethod::tls()).unwrap();
        lax.set_verify(SslVerifyMode::NONE);
        let leaf = sites.ca.leaf("good client");
        lax.set_certificate(&leaf.cert).unwrap();
        lax.set_private_key(&leaf.key).unwrap();
        let refused = get(&lax.build(), sites.addr, "gamma.test", None).await;
        assert!(refused.is_err(), "{mode:?}: an unknown name was served");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_of_one_site_under_requests_to_both() {
    let mut sites = Sites::start(Mode::Attached).await;
    let addr = sites.addr;
    let good = client(Some(&sites.ca.leaf("good client")), &sites.ca);
    // Each request on a new connection; host names verified, so each name
    // must get its own site's certificate. Beta's must not change at all.
    let (load_client, beta_serial) = (good.clone(), sites.beta_serial.clone());
    let load = support::load(2, move |i| {
        let (connector, beta_serial) = (load_client.clone(), beta_serial.clone());
        async move {
            let reply = get(&connector, addr, ALPHA, None).await?;
            drop(reply);
            let reply = get(&connector, addr, BETA, None).await?;
            if reply.serial != beta_serial {
                return Err(format!("client {i}: beta served {}", reply.serial));
            }
            Ok(())
        }
    });
    let (volume, ca) = (&mut sites.alpha, &sites.ca);
    let rotated = support::rotate(
        200,
        |_| {
            let leaf = site_leaf(ca, ALPHA);
            volume.update(&key_pair(&leaf));
            leaf.serial
        },
        || {
            let good = &good;
            async move { get(good, addr, ALPHA, None).await.ok().map(|r| r.serial) }
        },
    )
    .await;
    let counts = load.stop().await;
    support::assert_clean("pingora", &counts, &rotated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_ca_refused_attached() {
    dropped_ca_refused(Mode::Attached).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_ca_refused_callback_only() {
    dropped_ca_refused(Mode::CallbackOnly).await;
}

/// A client of the dropped CA is refused from the next connection on, with or
/// without a session made before; good clients never are. Sessions resume
/// only with the reloader attached (its client hello callback binds them
/// before OpenSSL's lookup); with the callback alone every handshake is full.
async fn dropped_ca_refused(mode: Mode) {
    let mut sites = Sites::start(mode).await;
    let addr = sites.addr;
    let resumes = matches!(mode, Mode::Attached);
    let good = client(Some(&sites.ca.leaf("good client")), &sites.ca);
    let dropped = client(Some(&sites.other.leaf("dropped client")), &sites.ca);
    let first = get(&dropped, addr, ALPHA, None).await.unwrap();
    let old = get(&dropped, addr, ALPHA, Some(&first.session))
        .await
        .unwrap();
    assert_eq!(
        old.resumed, resumes,
        "{mode:?}: the dropped CA's client before the drop"
    );
    let good_first = get(&good, addr, BETA, None).await.unwrap();
    let good_old = get(&good, addr, BETA, Some(&good_first.session))
        .await
        .unwrap();
    assert_eq!(
        good_old.resumed, resumes,
        "{mode:?}: a good client before the drop"
    );

    // Good clients request without pause, both names, through the drop.
    let load_client = good.clone();
    let load = support::load(2, move |i| {
        let connector = load_client.clone();
        let name = [ALPHA, BETA][i % 2];
        async move { get(&connector, addr, name, None).await.map(drop) }
    });
    let only_ca = sites.ca.pem();
    sites.bundle.update(&[("ca.crt", only_ca)]);
    support::eventually("the dropped CA's client refused", || async {
        get(&dropped, addr, ALPHA, None).await.err()
    })
    .await;
    let offered = get(&dropped, addr, ALPHA, Some(&old.session)).await;
    assert!(
        offered.is_err(),
        "{mode:?}: its old session must not let it in"
    );

    // The good client's old session: a full handshake, not a refusal; its
    // new session resumes where sessions resume at all.
    let after = get(&good, addr, BETA, Some(&good_old.session))
        .await
        .unwrap();
    assert!(
        !after.resumed,
        "{mode:?}: a session of the old bundle resumed"
    );
    let again = get(&good, addr, BETA, Some(&after.session)).await.unwrap();
    assert_eq!(
        again.resumed, resumes,
        "{mode:?}: a good client after the drop"
    );
    let counts = load.stop().await;
    println!(
        "pingora ({mode:?}, CA dropped): {} good requests, {} failures",
        counts.requests, counts.failures
    );
    assert_eq!(
        counts.failures, 0,
        "first failure: {:?}",
        counts.first_failure
    );
}
