use std::fs;

use openssl::ssl::SslVersion;
use openssl_reload::{Passphrase, Reload, ReloadingAcceptor};

use crate::fixture::{
    encrypted_acceptor, fips_ca, fips_leaf, require_fips, write_leaf, Client, EncryptedKey,
    Serving, PASS,
};
use crate::support::{eventually, serve, write_atomic, INTERVAL};

/// The TLS 1.3 cipher suites the FIPS provider can carry (AES-GCM, AES-CCM); no
/// ChaCha20-Poly1305.
const FIPS_TLS13_SUITES: &[&str] = &[
    "TLS_AES_256_GCM_SHA384",
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_128_CCM_SHA256",
    "TLS_AES_128_CCM_8_SHA256",
];

#[tokio::test]
async fn handshakes_use_fips_cipher_suites() {
    require_fips!("handshakes_use_fips_cipher_suites");
    let dir = tempfile::tempdir().unwrap();
    let ca = fips_ca();
    let leaf = fips_leaf(&ca);
    let (cert, key) = write_leaf(dir.path(), &leaf, true);
    let server = serve(encrypted_acceptor(&cert, &key)).await;

    let tls13 = Client::with(&ca, |b| b.set_min_proto_version(Some(SslVersion::TLS1_3)))
        .unwrap()
        .handshake(&server)
        .await
        .unwrap();
    assert_eq!(tls13.version, "TLSv1.3");
    assert_eq!(tls13.serial, leaf.serial);
    assert!(
        FIPS_TLS13_SUITES.contains(&tls13.cipher),
        "TLS 1.3 negotiated {}, not a FIPS suite",
        tls13.cipher
    );

    // Both AES-GCM suites, one at a time.
    for suite in ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"] {
        let seen = Client::with(&ca, |b| {
            b.set_min_proto_version(Some(SslVersion::TLS1_3))?;
            b.set_ciphersuites(suite)
        })
        .unwrap()
        .handshake(&server)
        .await
        .unwrap();
        assert_eq!(seen.cipher, suite);
    }

    // TLS 1.2: ECDHE with ECDSA and AES-GCM (the server offers ChaCha20 too, in
    // Mozilla's intermediate list, but the fips provider has none).
    let tls12 = Client::with(&ca, |b| b.set_max_proto_version(Some(SslVersion::TLS1_2)))
        .unwrap()
        .handshake(&server)
        .await
        .unwrap();
    assert_eq!(tls12.version, "TLSv1.2");
    assert!(
        tls12.cipher.starts_with("ECDHE-ECDSA-AES") && tls12.cipher.contains("GCM"),
        "TLS 1.2 negotiated {}, not ECDHE-ECDSA with AES-GCM",
        tls12.cipher
    );
}

/// A client that offers only non-FIPS cipher suites cannot connect: the TLS
/// layer's algorithms come from the fips provider too.
#[tokio::test]
async fn non_fips_cipher_suites_are_refused() {
    require_fips!("non_fips_cipher_suites_are_refused");
    let dir = tempfile::tempdir().unwrap();
    let ca = fips_ca();
    let leaf = fips_leaf(&ca);
    let (cert, key) = write_leaf(dir.path(), &leaf, false);
    let tls = ReloadingAcceptor::builder()
        .identity(&cert, &key)
        .poll_interval(INTERVAL)
        .build()
        .unwrap();
    let server = serve(tls).await;

    // TLS 1.3 with ChaCha20-Poly1305 only: OpenSSL accepts the name but has no
    // cipher to back it, so the handshake fails.
    let chacha = Client::with(&ca, |b| {
        b.set_min_proto_version(Some(SslVersion::TLS1_3))?;
        b.set_ciphersuites("TLS_CHACHA20_POLY1305_SHA256")
    });
    if let Ok(client) = chacha {
        let result = client.handshake(&server).await;
        assert!(result.is_err(), "TLS 1.3 ChaCha20 handshake: {result:?}");
    }
    // TLS 1.2: a cipher list of ChaCha20 alone matches nothing at all.
    let chacha12 = Client::with(&ca, |b| {
        b.set_max_proto_version(Some(SslVersion::TLS1_2))?;
        b.set_cipher_list("ECDHE-ECDSA-CHACHA20-POLY1305")
    });
    match chacha12 {
        Err(error) => assert!(
            error.to_string().contains("no cipher match"),
            "unexpected error: {error}"
        ),
        Ok(client) => {
            let result = client.handshake(&server).await;
            assert!(result.is_err(), "TLS 1.2 ChaCha20 handshake: {result:?}");
        }
    }
    // The same server still serves a FIPS client.
    Client::new(&ca).handshake(&server).await.unwrap();
}

#[tokio::test]
async fn reload_under_fips() {
    require_fips!("reload_under_fips");
    let dir = tempfile::tempdir().unwrap();
    let Serving {
        cert,
        key,
        ca,
        first: _,
        tls,
        server,
        client,
    } = Serving::start(dir.path()).await;
    assert_eq!(tls.status().generation, 1);

    // Rotate: the key first, then the certificate, each atomically. The poller may
    // see the new key with the old certificate in between; that mismatch keeps the
    // first certificate in service until the pair is complete.
    let second = fips_leaf(&ca);
    write_atomic(&key, &second.key_pem_pkcs8_aes256());
    write_atomic(&cert, &second.cert_pem());
    let seen = eventually("the poller to serve the rotated certificate", || async {
        let seen = client.handshake(&server).await.unwrap();
        (seen.serial == second.serial).then_some(seen)
    })
    .await;
    assert!(FIPS_TLS13_SUITES.contains(&seen.cipher), "{}", seen.cipher);
    let status = tls.status();
    assert!(status.generation >= 2, "{status:?}");
    assert_eq!(
        status.certificate.as_ref().map(|c| c.serial.as_str()),
        Some(second.serial.as_str())
    );

    // And an explicit reload (SIGHUP's path) under FIPS.
    let third = fips_leaf(&ca);
    let (cert3, key3) = (dir.path().join("cert3.pem"), dir.path().join("key3.pem"));
    fs::write(&cert3, third.cert_pem()).unwrap();
    fs::write(&key3, third.key_pem_pkcs8_aes256()).unwrap();
    let tls3 = ReloadingAcceptor::builder()
        .identity(&cert3, &key3)
        .passphrase(Passphrase::from_bytes(PASS))
        .poll_interval(std::time::Duration::from_secs(3600))
        .build()
        .unwrap();
    let fourth = fips_leaf(&ca);
    write_atomic(&key3, &fourth.key_pem_pkcs8_aes256());
    write_atomic(&cert3, &fourth.cert_pem());
    assert!(matches!(tls3.reload_now().unwrap(), Reload::Published(2)));
    let server3 = serve(tls3).await;
    assert_eq!(
        client.handshake(&server3).await.unwrap().serial,
        fourth.serial
    );
}
