//! CRLs made with `openssl ca -revoke` and `-gencrl`, reloaded on the server (client
//! certificates) and on the connector (server certificates), over real handshakes.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openssl::ssl::{SslAcceptor, SslConnector, SslMethod, SslSession, SslVerifyMode, SslVersion};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;
use openssl_reload::{
    ClientAuth, CrlCheck, Error, Reload, ReloadingAcceptor, ReloadingConnector, StaleCrl,
};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use crate::support::{
    self, eventually, openssl_time_ago, write_atomic, Ca, CliCa, Leaf, Seen, INTERVAL,
};

/// Only `reload_now` publishes.
const NO_POLLING: Duration = Duration::from_secs(3600);

/// A client presenting `identity` and trusting `ca`, TLS 1.3.
fn client(identity: &Leaf, ca: &Ca) -> SslConnector {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(ca.cert.clone()).unwrap();
    b.set_cert_store(store.build());
    b.set_certificate(&identity.cert).unwrap();
    b.set_private_key(&identity.key).unwrap();
    b.set_min_proto_version(Some(SslVersion::TLS1_3)).unwrap();
    b.build()
}

/// Connects, offering `session`, and exchanges one line. A refused client
/// certificate shows in TLS 1.3 only after the handshake, as a closed stream.
async fn talk(
    connector: &SslConnector,
    addr: SocketAddr,
    session: Option<&SslSession>,
) -> Result<Seen, String> {
    let seen = support::exchange(connector, addr, session.map(|s| &**s)).await?;
    if seen.reply.is_empty() {
        return Err("closed by the server".to_owned());
    }
    Ok(seen)
}

/// A server requiring client certificates of `ca.pem`, checked against `crl.pem`.
struct Setup {
    dir: TempDir,
    ca: CliCa,
    alice: Leaf,
    bob: Leaf,
}

impl Setup {
    fn new(name: &str) -> Self {
        let ca = CliCa::new(Ca::new(name));
        let (alice, bob) = (ca.ca.leaf("alice"), ca.ca.leaf("bob"));
        let dir = tempfile::tempdir().unwrap();
        let server = ca.ca.leaf("localhost");
        server.write(dir.path());
        write_atomic(&dir.path().join("ca.pem"), &ca.ca.pem());
        write_atomic(&dir.path().join("crl.pem"), &ca.crl(&[]));
        Self {
            dir,
            ca,
            alice,
            bob,
        }
    }

    /// Alice's and Bob's clients, TLS 1.3.
    fn clients(&self) -> (SslConnector, SslConnector) {
        (
            client(&self.alice, &self.ca.ca),
            client(&self.bob, &self.ca.ca),
        )
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn acceptor(&self, interval: Duration) -> openssl_reload::ReloadingAcceptorBuilder {
        ReloadingAcceptor::builder()
            .identity(self.path("cert.pem"), self.path("key.pem"))
            .ca(self.path("ca.pem"))
            .crl(self.path("crl.pem"))
            .client_auth(ClientAuth::Required)
            .poll_interval(interval)
    }
}

#[tokio::test]
async fn a_revoked_client_is_refused_within_the_interval_and_its_session_does_not_resume() {
    let setup = Setup::new("Clients CA");
    let tls = setup.acceptor(INTERVAL).build().unwrap();
    let server = support::serve(tls.clone()).await;
    let (alice, bob) = setup.clients();
    assert_eq!(tls.status().crls.len(), 1);
    assert_eq!(tls.status().crls[0].revoked, 0);

    // Before the revocation Alice's session resumes, so "does not resume" below
    // is about the CRL.
    let first = talk(&alice, server.addr, None).await.unwrap();
    let session = first.session.unwrap();
    let again = talk(&alice, server.addr, Some(&session)).await.unwrap();
    assert!(
        again.resumed,
        "a session resumes while the CRL is unchanged"
    );
    let session = again.session.unwrap();
    talk(&bob, server.addr, None).await.unwrap();

    setup.ca.revoke(&setup.alice.cert);
    let crl = setup.ca.crl(&[]);
    let written = Instant::now();
    write_atomic(&setup.path("crl.pem"), &crl);
    eventually("Alice's full handshake to be refused", || async {
        talk(&alice, server.addr, None).await.is_err().then_some(())
    })
    .await;
    let took = written.elapsed();
    assert!(
        took < INTERVAL + Duration::from_secs(2),
        "refused only after {took:?}"
    );
    let status = tls.status();
    assert_eq!(status.crls[0].revoked, 1);
    assert_eq!(status.crls[0].number.as_deref(), Some("2"));

    // The session from before the CRL update is not resumed: a full handshake
    // that the CRL refuses.
    assert!(talk(&alice, server.addr, Some(&session)).await.is_err());
    // Bob, of the same CA, is still served.
    let bob_again = talk(&bob, server.addr, None).await.unwrap();
    assert!(!bob_again.resumed);
}

#[tokio::test]
async fn a_bad_crl_file_keeps_the_crls_in_service() {
    let setup = Setup::new("Clients CA");
    setup.ca.revoke(&setup.alice.cert);
    write_atomic(&setup.path("crl.pem"), &setup.ca.crl(&[]));
    let tls = setup.acceptor(NO_POLLING).build().unwrap();
    let server = support::serve(tls.clone()).await;
    let (alice, bob) = setup.clients();
    assert!(talk(&alice, server.addr, None).await.is_err());
    talk(&bob, server.addr, None).await.unwrap();

    // Same name, another key: the signature does not verify.
    let impostor = CliCa::new(Ca::new("Clients CA"));
    let stranger = CliCa::new(Ca::new("Another CA"));
    let past = setup.ca.crl(&[
        "-crl_lastupdate",
        "20200101000000Z",
        "-crl_nextupdate",
        "20200201000000Z",
    ]);
    let mut der = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut der, b"\x30\x82\x01\x00garbage").unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("another CA's key", impostor.crl(&[]), "signed by no CA"),
        (
            "a CA not in the bundle",
            stranger.crl(&[]),
            "signed by no CA",
        ),
        ("past its nextUpdate", past, "past its nextUpdate"),
        ("garbage", b"not a CRL at all".to_vec(), "cannot parse CRL"),
        (
            "a PEM file without a CRL",
            setup.ca.ca.pem(),
            "holds no PEM block",
        ),
        ("an empty file", Vec::new(), "holds no CRL"),
    ];
    for (what, bytes, expected) in cases {
        write_atomic(&setup.path("crl.pem"), &bytes);
        let error = tls.reload_now().expect_err(what);
        let message = error.report().to_string();
        assert!(
            message.contains(expected) && message.contains("crl.pem"),
            "{what}: {message}"
        );
        assert!(
            matches!(error, Error::Crl { .. } | Error::Parse { .. }),
            "{what}: {error:?}"
        );
        assert!(
            talk(&alice, server.addr, None).await.is_err(),
            "{what}: Alice got in"
        );
        talk(&bob, server.addr, None)
            .await
            .unwrap_or_else(|e| panic!("{what}: Bob refused: {e}"));
        assert_eq!(tls.status().crls[0].revoked, 1, "{what}");
    }
    assert_eq!(tls.status().failures, 6);

    // A fresh CRL of the right CA (DER this time) is published again.
    setup.ca.revoke(&setup.bob.cert);
    let pem = setup.ca.crl(&[]);
    let der = openssl::x509::X509Crl::from_pem(&pem)
        .unwrap()
        .to_der()
        .unwrap();
    write_atomic(&setup.path("crl.pem"), &der);
    assert!(matches!(tls.reload_now(), Ok(Reload::Published(_))));
    assert!(talk(&bob, server.addr, None).await.is_err());
}

#[tokio::test]
async fn a_crl_signed_by_another_ca_is_refused_at_start_up() {
    let setup = Setup::new("Clients CA");
    let stranger = CliCa::new(Ca::new("Another CA"));
    write_atomic(&setup.path("crl.pem"), &stranger.crl(&[]));
    let error = setup.acceptor(NO_POLLING).build().unwrap_err();
    assert!(matches!(error, Error::Crl { .. }), "{error:?}");
    assert!(error.to_string().contains("crl.pem"), "{error}");
    // And a CRL without a bundle to check it against.
    let error = ReloadingConnector::builder()
        .crl(setup.path("crl.pem"))
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("needs a CA bundle"), "{error}");
}

#[tokio::test]
async fn a_crl_file_holding_a_delta_crl_is_refused_at_start_up() {
    let setup = Setup::new("Clients CA");
    setup.ca.revoke(&setup.alice.cert);
    let base = setup.ca.crl(&["-crl_lastupdate", &openssl_time_ago(3600)]);
    // A newer delta over that CRL that revokes nobody: scored like a complete
    // CRL (OpenSSL without X509_V_FLAG_USE_DELTAS), it replaces the base.
    let delta = setup.ca.delta_crl();
    write_atomic(&setup.path("crl.pem"), &[base, delta].concat());
    let error = setup.acceptor(NO_POLLING).build().unwrap_err();
    assert!(matches!(error, Error::Crl { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("crl.pem"), "{message}");
    assert!(message.contains("CRL 2"), "{message}");
    assert!(message.contains("is a delta CRL"), "{message}");
    assert!(message.contains("only complete CRLs"), "{message}");
}

#[tokio::test]
async fn a_delta_crl_appended_in_service_is_refused_and_the_client_stays_revoked() {
    let setup = Setup::new("Clients CA");
    setup.ca.revoke(&setup.alice.cert);
    let base = setup.ca.crl(&["-crl_lastupdate", &openssl_time_ago(3600)]);
    write_atomic(&setup.path("crl.pem"), &base);
    let tls = setup.acceptor(NO_POLLING).build().unwrap();
    let server = support::serve(tls.clone()).await;
    let (alice, bob) = setup.clients();
    assert!(talk(&alice, server.addr, None).await.is_err());

    let delta = setup.ca.delta_crl();
    write_atomic(&setup.path("crl.pem"), &[base, delta].concat());
    let reloaded = tls.reload_now();
    assert!(
        talk(&alice, server.addr, None).await.is_err(),
        "the delta CRL let Alice in"
    );
    let error = reloaded.unwrap_err();
    assert!(error.to_string().contains("is a delta CRL"), "{error}");
    talk(&bob, server.addr, None).await.unwrap();
    let status = tls.status();
    assert_eq!(status.crls.len(), 1);
    assert_eq!(status.crls[0].revoked, 1);
    let failure = status.last_error.expect("the refused file is reported");
    assert!(
        failure.message.contains("is a delta CRL"),
        "{}",
        failure.message
    );
    assert_eq!(failure.path.as_deref(), Some(&*setup.path("crl.pem")));
}

#[tokio::test]
async fn the_connector_refuses_a_server_whose_certificate_was_revoked() {
    let setup = Setup::new("Cluster CA");
    // The server needs no client certificate here.
    let tls = ReloadingAcceptor::builder()
        .identity(setup.path("cert.pem"), setup.path("key.pem"))
        .build()
        .unwrap();
    let server = support::serve(tls).await;
    let connector = ReloadingConnector::builder()
        .ca(setup.path("ca.pem"))
        .crl(setup.path("crl.pem"))
        .poll_interval(INTERVAL)
        .build()
        .unwrap();
    let connect = || async {
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        connector.connect("localhost", tcp).await.map(drop)
    };
    connect().await.unwrap();
    let served = X509::from_pem(&fs::read(setup.path("cert.pem")).unwrap()).unwrap();
    setup.ca.revoke(&served);
    write_atomic(&setup.path("crl.pem"), &setup.ca.crl(&[]));
    eventually("the revoked server to be refused", || async {
        connect().await.err()
    })
    .await;
    // Refused for the revocation, as the verification result says.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let ssl = connector
        .configure()
        .unwrap()
        .into_ssl("localhost")
        .unwrap();
    let mut stream = SslStream::new(ssl, tcp).unwrap();
    assert!(Pin::new(&mut stream).connect().await.is_err());
    // X509_V_ERR_CERT_REVOKED
    assert_eq!(
        stream.ssl().verify_result().as_raw(),
        23,
        "{}",
        stream.ssl().verify_result()
    );
}

#[tokio::test]
async fn chain_checking_needs_and_uses_the_intermediates_crl() {
    let root = CliCa::new(Ca::new("Root CA"));
    let issuing = root.ca.intermediate("Issuing CA");
    let alice = {
        let mut leaf = issuing.leaf("alice");
        leaf.chain = vec![issuing.cert.clone()];
        leaf
    };
    let issuing = CliCa::new(issuing);
    let dir = tempfile::tempdir().unwrap();
    root.ca.leaf("localhost").write(dir.path());
    let bundle: Vec<u8> = [root.ca.pem(), issuing.ca.pem()].concat();
    write_atomic(&dir.path().join("ca.pem"), &bundle);
    // The root revokes the issuing CA; the issuing CA revokes nobody.
    root.revoke(&issuing.ca.cert);
    let crls = [root.crl(&[]), issuing.crl(&[])].concat();
    write_atomic(&dir.path().join("crl.pem"), &crls);
    let acceptor = |check| {
        ReloadingAcceptor::builder()
            .identity(dir.path().join("cert.pem"), dir.path().join("key.pem"))
            .ca(dir.path().join("ca.pem"))
            .crl(dir.path().join("crl.pem"))
            .crl_check(check)
            .poll_interval(NO_POLLING)
            .build()
            .unwrap()
    };
    let leaf_only = support::serve(acceptor(CrlCheck::Leaf)).await;
    let chain = support::serve(acceptor(CrlCheck::Chain)).await;
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(root.ca.cert.clone()).unwrap();
    b.set_cert_store(store.build());
    b.set_certificate(&alice.cert).unwrap();
    b.add_extra_chain_cert(alice.chain[0].clone()).unwrap();
    b.set_private_key(&alice.key).unwrap();
    b.set_min_proto_version(Some(SslVersion::TLS1_3)).unwrap();
    let alice = b.build();
    talk(&alice, leaf_only.addr, None).await.unwrap();
    assert!(talk(&alice, chain.addr, None).await.is_err());
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_crl_that_goes_stale_in_service_is_enforced_or_refuses_all_as_configured() {
    let setup = Setup::new("Clients CA");
    setup.ca.revoke(&setup.alice.cert);
    write_atomic(&setup.path("crl.pem"), &setup.ca.crl(&["-crlsec", "2"]));
    let enforcing = setup.acceptor(INTERVAL).build().unwrap();
    let refusing = setup
        .acceptor(INTERVAL)
        .stale_crl(StaleCrl::RefuseAll)
        .build()
        .unwrap();
    let next_update = enforcing.status().crls[0].next_update_unix.unwrap();
    let (enforcing, refusing) = (
        support::serve(enforcing).await,
        support::serve(refusing).await,
    );
    let (alice, bob) = setup.clients();
    talk(&bob, refusing.addr, None).await.unwrap();
    eventually("the CRL's nextUpdate to pass", || async {
        (unix_now() > next_update).then_some(())
    })
    .await;
    // Revocation is still checked: Alice is refused by both.
    assert!(talk(&alice, enforcing.addr, None).await.is_err());
    assert!(talk(&alice, refusing.addr, None).await.is_err());
    talk(&bob, enforcing.addr, None).await.unwrap();
    assert!(talk(&bob, refusing.addr, None).await.is_err());
}

/// OpenSSL runs a connection's own verify callback instead of its store's, so
/// the stale-CRL rule, which is the store's, must chain to one the policy sets
/// (and on an attached context, the application's) rather than vanish.
#[tokio::test]
async fn a_stale_crl_is_enforced_under_a_policy_or_application_verify_callback() {
    let setup = Setup::new("Clients CA");
    setup.ca.revoke(&setup.alice.cert);
    write_atomic(&setup.path("crl.pem"), &setup.ca.crl(&["-crlsec", "2"]));
    let mode = SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT;
    let policy = setup
        .acceptor(INTERVAL)
        .policy(move |b| {
            b.set_verify_callback(mode, |ok, _| ok);
            Ok(())
        })
        .build()
        .unwrap();
    let next_update = policy.status().crls[0].next_update_unix.unwrap();
    let policy = support::serve(policy).await;
    let attached = setup.acceptor(INTERVAL).build().unwrap();
    let mut app = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
    app.set_verify_callback(mode, |ok, _| ok);
    attached.attach(&mut app).unwrap();
    let app = support::serve_context(app.build().into_context()).await;
    let (alice, bob) = setup.clients();
    for addr in [policy.addr, app.addr] {
        talk(&bob, addr, None).await.unwrap();
    }
    eventually("the CRL's nextUpdate to pass", || async {
        (unix_now() > next_update).then_some(())
    })
    .await;
    for (what, addr) in [("policy", policy.addr), ("attached", app.addr)] {
        assert!(
            talk(&alice, addr, None).await.is_err(),
            "{what}: a revoked client"
        );
        talk(&bob, addr, None).await.unwrap_or_else(|e| {
            panic!("{what}: the stale CRL is still enforced, Bob is not revoked: {e}")
        });
    }
}

#[test]
fn crl_paths_are_watched_like_the_bundle() {
    // A file that is not there at start-up is an error naming it.
    let setup = Setup::new("Clients CA");
    fs::remove_file(setup.path("crl.pem")).unwrap();
    let error = setup.acceptor(NO_POLLING).build().unwrap_err();
    assert_eq!(error.path(), Some(Path::new(&setup.path("crl.pem"))));
}
