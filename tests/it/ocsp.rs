//! OCSP staples made with `openssl ocsp -index ... -respout`, found beside the
//! certificate or given, checked before they are stapled, and sent to clients
//! that ask (`status_request`) over real handshakes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use openssl::ssl::{SslConnector, StatusType};
use openssl_reload::{Error, OcspInfo, OcspProblem, ReloadingAcceptor};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use crate::support::{
    self, eventually, write_atomic, write_in_place, Ca, CliCa, Leaf, LeafSpec, INTERVAL,
};

/// A CA run by the `openssl` command, a leaf whose file holds the chain (the
/// issuer is needed to check a staple), and the files in a temp dir.
struct Files {
    dir: TempDir,
    ca: CliCa,
    cert: PathBuf,
    key: PathBuf,
}

impl Files {
    fn new() -> Self {
        let dir = TempDir::new().unwrap();
        let ca = CliCa::new(Ca::new("ocsp test CA"));
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        Self { dir, ca, cert, key }
    }

    fn leaf(&self, spec: LeafSpec) -> Leaf {
        self.ca.ca.leaf_with(spec)
    }

    /// Writes `leaf` (then its issuer) and its key over the files.
    fn install(&self, leaf: &Leaf) {
        write_atomic(&self.key, &leaf.key_pem());
        write_atomic(&self.cert, &leaf.pem_with_issuer(&self.ca.ca));
    }

    /// `<cert>.ocsp`, where the acceptor looks for a staple.
    fn beside(&self) -> PathBuf {
        self.dir.path().join("cert.pem.ocsp")
    }

    /// A leaf installed with a good staple beside it, and an acceptor serving
    /// it: where most tests start.
    async fn serving_stapled(&self) -> (Leaf, Vec<u8>, ReloadingAcceptor, support::tls::Server) {
        let leaf = self.leaf(LeafSpec::new("localhost"));
        self.install(&leaf);
        let staple = self.ca.ocsp(&leaf.cert, None, false, &[]);
        write_atomic(&self.beside(), &staple);
        let tls = self.acceptor().unwrap();
        let server = support::serve(tls.clone()).await;
        (leaf, staple, tls, server)
    }

    fn acceptor(&self) -> Result<ReloadingAcceptor, Error> {
        ReloadingAcceptor::builder()
            .identity(&self.cert, &self.key)
            .poll_interval(INTERVAL)
            .build()
    }
}

/// A client that asks for a staple; what it got and the server's serial.
async fn staple_seen(addr: SocketAddr, ca: &Ca) -> (String, Option<Vec<u8>>) {
    let connector: SslConnector = support::client(&ca.pem());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut ssl = connector
        .configure()
        .unwrap()
        .into_ssl("localhost")
        .unwrap();
    ssl.set_status_type(StatusType::OCSP).unwrap();
    let mut stream = SslStream::new(ssl, tcp).unwrap();
    Pin::new(&mut stream).connect().await.unwrap();
    let ssl = stream.ssl();
    (
        support::serial_hex(&ssl.peer_certificate().unwrap()),
        ssl.ocsp_status().map(<[u8]>::to_vec),
    )
}

/// The default site's staple, as the status shows it.
fn ocsp_info(tls: &ReloadingAcceptor) -> Option<OcspInfo> {
    tls.status().certificate.and_then(|c| c.ocsp)
}

async fn wait_staple(addr: SocketAddr, ca: &Ca, what: &str, want: Option<&[u8]>) -> String {
    eventually(what, || async {
        let (serial, staple) = staple_seen(addr, ca).await;
        (staple.as_deref() == want).then_some(serial)
    })
    .await
}

#[tokio::test]
async fn a_staple_beside_the_certificate_is_sent_and_follows_its_rotation() {
    let f = Files::new();
    let (leaf, first, tls, server) = f.serving_stapled().await;

    let (serial, staple) = staple_seen(server.addr, &f.ca.ca).await;
    assert_eq!(serial, leaf.serial);
    assert_eq!(
        staple.as_deref(),
        Some(&first[..]),
        "the staple in the file"
    );
    let info = ocsp_info(&tls).unwrap();
    assert!(info.stapled && info.error.is_none(), "{info:?}");
    assert_eq!(info.status.as_deref(), Some("good"));
    assert!(info.next_update_unix > info.this_update_unix);

    // A new response (a new thisUpdate and nonce), rewritten in place.
    let second = f.ca.ocsp(&leaf.cert, None, false, &["-ndays", "2"]);
    assert_ne!(first, second);
    write_in_place(&f.beside(), &second);
    wait_staple(server.addr, &f.ca.ca, "the rotated staple", Some(&second)).await;
}

#[tokio::test]
async fn bad_staples_are_not_sent_and_the_certificate_stays() {
    let f = Files::new();
    let (leaf, good, tls, server) = f.serving_stapled().await;
    wait_staple(server.addr, &f.ca.ca, "the good staple", Some(&good)).await;

    let other = f.leaf(LeafSpec::new("localhost"));
    let impostor = Ca::new("not the issuer");
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a staple for another certificate",
            f.ca.ocsp(&other.cert, None, false, &[]),
            "not a response for the certificate in service",
        ),
        (
            "a staple signed by another key",
            f.ca.ocsp(&leaf.cert, Some(&impostor), false, &[]),
            "signature does not verify",
        ),
        (
            "a revoked status",
            f.ca.ocsp(&leaf.cert, None, true, &[]),
            "status is revoked",
        ),
        (
            "garbage",
            b"not an OCSP response".to_vec(),
            "not a DER OCSP response",
        ),
        ("an empty file", Vec::new(), "empty"),
    ];
    if let Some(expired) = f.ca.ocsp_expired(&leaf.cert) {
        cases.push(("an expired staple", expired, "nextUpdate"));
    }
    for (what, bytes, reason) in cases {
        write_atomic(&f.beside(), &good);
        wait_staple(server.addr, &f.ca.ca, "the good staple again", Some(&good)).await;
        write_atomic(&f.beside(), &bytes);
        let serial = wait_staple(server.addr, &f.ca.ca, what, None).await;
        assert_eq!(
            serial, leaf.serial,
            "{what}: the certificate stays in service"
        );
        let info = eventually(what, || async { ocsp_info(&tls).filter(|i| !i.stapled) }).await;
        let error = info.error.unwrap_or_default();
        assert!(error.contains(reason), "{what}: {error}");
    }
}

#[tokio::test]
async fn a_staple_without_next_update_is_sent_only_while_its_this_update_is_recent() {
    let f = Files::new();
    let leaf = f.leaf(LeafSpec::new("localhost"));
    f.install(&leaf);
    let fresh = f.ca.ocsp_without_next_update(&leaf.cert, 0).unwrap();
    write_atomic(&f.beside(), &fresh);
    let tls = f.acceptor().unwrap();
    let server = support::serve(tls.clone()).await;
    wait_staple(server.addr, &f.ca.ca, "the fresh staple", Some(&fresh)).await;
    let info = ocsp_info(&tls).unwrap();
    assert!(info.next_update.is_none(), "{info:?}");
    assert!(info.stapled && info.in_service(), "{info:?}");

    // Six days old: still within the bound.
    let Some(recent) = f.ca.ocsp_without_next_update(&leaf.cert, 6) else {
        return;
    };
    write_atomic(&f.beside(), &recent);
    wait_staple(server.addr, &f.ca.ca, "the 6-day-old staple", Some(&recent)).await;

    // Eight days old, with no nextUpdate to end it: not stapled, and reported.
    let old = f.ca.ocsp_without_next_update(&leaf.cert, 8).unwrap();
    write_atomic(&f.beside(), &old);
    let serial = wait_staple(server.addr, &f.ca.ca, "no staple", None).await;
    assert_eq!(serial, leaf.serial, "the certificate stays in service");
    let info = eventually("the old staple reported", || async {
        ocsp_info(&tls).filter(|i| !i.stapled)
    })
    .await;
    assert!(!info.in_service(), "{info:?}");
    let error = info.error.unwrap_or_default();
    assert!(
        error.contains("no nextUpdate") && error.contains("7 days"),
        "{error}"
    );
}

#[tokio::test]
async fn a_rotated_certificate_drops_the_old_staple() {
    let f = Files::new();
    let (_, staple, _tls, server) = f.serving_stapled().await;
    wait_staple(server.addr, &f.ca.ca, "the staple", Some(&staple)).await;

    let next = f.leaf(LeafSpec::new("localhost"));
    f.install(&next);
    let serial = eventually("the new certificate", || async {
        let (serial, staple) = staple_seen(server.addr, &f.ca.ca).await;
        (serial == next.serial).then_some(staple)
    })
    .await;
    assert_eq!(
        serial, None,
        "the old certificate's staple was sent for the new one"
    );

    // Its own staple follows.
    let own = f.ca.ocsp(&next.cert, None, false, &[]);
    write_atomic(&f.beside(), &own);
    wait_staple(
        server.addr,
        &f.ca.ca,
        "the new certificate's staple",
        Some(&own),
    )
    .await;
}

#[tokio::test]
async fn a_given_staple_file_and_must_staple() {
    let f = Files::new();
    let leaf = f.leaf(LeafSpec::new("localhost").must_staple());
    f.install(&leaf);

    // Must-staple without a staple: refused at start-up, naming the staple file.
    let err = f.acceptor().unwrap_err();
    assert!(matches!(err, Error::Ocsp { .. }), "{err}");
    assert!(err.to_string().contains("must-staple"), "{err}");
    // The reason is a case to match on, not text.
    assert!(
        matches!(
            err,
            Error::Ocsp {
                reason: OcspProblem::NoFile,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.path(), Some(f.beside().as_path()));

    // With an expired one (or garbage, without faketime): refused too.
    let given = f.dir.path().join("staple.der");
    let bad =
        f.ca.ocsp_expired(&leaf.cert)
            .unwrap_or_else(|| b"not a response".to_vec());
    write_atomic(&given, &bad);
    let build = |path: &Path| {
        ReloadingAcceptor::builder()
            .identity(&f.cert, &f.key)
            .ocsp_staple(path)
            .poll_interval(INTERVAL)
            .build()
    };
    let err = build(&given).unwrap_err();
    assert!(err.to_string().contains("the staple is not valid"), "{err}");
    match &err {
        // Garbage: OpenSSL's parse error is the source, not flattened into the text.
        Error::Ocsp {
            reason: OcspProblem::NotDer(_),
            ..
        } => assert!(std::error::Error::source(&err).is_some(), "{err:?}"),
        Error::Ocsp {
            reason: OcspProblem::Expired { .. },
            ..
        } => {}
        other => panic!("an expired or unparsable staple, not {other:?}"),
    }

    // With a good one, given explicitly: served and stapled.
    let good = f.ca.ocsp(&leaf.cert, None, false, &[]);
    write_atomic(&given, &good);
    let tls = build(&given).unwrap();
    let server = support::serve(tls.clone()).await;
    wait_staple(server.addr, &f.ca.ca, "the given staple", Some(&good)).await;

    // A bad replacement of a must-staple certificate's staple: the last good
    // certificate and staple stay in service.
    write_atomic(&given, b"garbage");
    eventually("the failure", || async {
        (tls.status().consecutive_failures > 0).then_some(())
    })
    .await;
    let (serial, staple) = staple_seen(server.addr, &f.ca.ca).await;
    assert_eq!(serial, leaf.serial);
    assert_eq!(staple.as_deref(), Some(&good[..]));
}

/// A responder certificate of the CA, with `id-kp-OCSPSigning` when `delegated`.
fn responder(ca: &Ca, delegated: bool) -> Ca {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::x509::extension::ExtendedKeyUsage;
    use openssl::x509::{X509Name, X509};

    let key = support::key(support::Alg::P256);
    let mut name = X509Name::builder().unwrap();
    name.append_entry_by_text("CN", "ocsp responder").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(ca.cert.subject_name()).unwrap();
    b.set_pubkey(&key).unwrap();
    let serial = BigNum::from_u32(4242).unwrap().to_asn1_integer().unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    let eku = if delegated {
        ExtendedKeyUsage::new()
            .other("OCSPSigning")
            .build()
            .unwrap()
    } else {
        ExtendedKeyUsage::new().server_auth().build().unwrap()
    };
    b.append_extension(eku).unwrap();
    b.sign(&ca.key, MessageDigest::sha256()).unwrap();
    Ca {
        cert: b.build(),
        key,
    }
}

#[tokio::test]
async fn a_delegated_responder_is_accepted_and_an_undelegated_one_is_not() {
    let f = Files::new();
    let leaf = f.leaf(LeafSpec::new("localhost"));
    f.install(&leaf);
    let delegated =
        f.ca.ocsp(&leaf.cert, Some(&responder(&f.ca.ca, true)), false, &[]);
    write_atomic(&f.beside(), &delegated);
    let tls = f.acceptor().unwrap();
    let server = support::serve(tls.clone()).await;
    wait_staple(
        server.addr,
        &f.ca.ca,
        "the delegated responder's staple",
        Some(&delegated),
    )
    .await;

    // Signed by a certificate of the same CA that is not an OCSP responder.
    let undelegated =
        f.ca.ocsp(&leaf.cert, Some(&responder(&f.ca.ca, false)), false, &[]);
    write_atomic(&f.beside(), &undelegated);
    wait_staple(server.addr, &f.ca.ca, "no staple", None).await;
    let info = eventually("the refusal", || async {
        ocsp_info(&tls).filter(|i| !i.stapled)
    })
    .await;
    assert!(
        info.error
            .as_deref()
            .unwrap_or_default()
            .contains("signature does not verify"),
        "{info:?}"
    );
}
