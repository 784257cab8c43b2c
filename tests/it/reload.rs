//! Rotation by every kind of writer, keep-last-good, status, resumption, ALPN and
//! the policy, over real TLS on loopback.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use openssl::ssl::{
    AlpnError, SslConnector, SslContextBuilder, SslMethod, SslVerifyMode, SslVersion,
};
use openssl_reload::{Reload, ReloadingAcceptor, ReloadingAcceptorBuilder};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{self, eventually, exchange, Ca, Leaf, INTERVAL};

struct Fixture {
    ca: Ca,
    dir: TempDir,
    cert: PathBuf,
    key: PathBuf,
    tls: ReloadingAcceptor,
    server: support::Server,
    client: SslConnector,
}

impl Fixture {
    async fn new(
        first: &Leaf,
        configure: impl FnOnce(ReloadingAcceptorBuilder) -> ReloadingAcceptorBuilder,
        ca: Ca,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = first.write(dir.path());
        let tls = configure(
            ReloadingAcceptor::builder()
                .identity(&cert, &key)
                .poll_interval(INTERVAL),
        )
        .build()
        .unwrap();
        let server = support::serve(tls.clone()).await;
        let client = support::client(&ca.pem());
        Self {
            ca,
            dir,
            cert,
            key,
            tls,
            server,
            client,
        }
    }

    async fn plain() -> (Self, Leaf) {
        let ca = Ca::new("reload test CA");
        let first = ca.leaf("first");
        (Self::new(&first, |b| b, ca).await, first)
    }

    async fn serial(&self) -> String {
        exchange(&self.client, self.server.addr, None)
            .await
            .expect("handshake must succeed")
            .serial
    }

    /// Waits until new handshakes see `serial`, asserting every handshake meanwhile
    /// succeeds and shows either `old` or `serial`.
    async fn served(&self, old: &str, serial: &str) {
        eventually(&format!("serial {serial} to be served"), || async {
            let seen = self.serial().await;
            assert!(
                seen == old || seen == serial,
                "served unknown serial {seen}"
            );
            (seen == serial).then_some(())
        })
        .await;
    }

    /// Asserts the old certificate stays in service and the error names `path`.
    async fn keeps_serving(&self, old: &str, path: &Path, failures_before: u64) {
        let status = eventually("the failure to be recorded", || async {
            let s = self.tls.status();
            (s.failures > failures_before).then_some(s)
        })
        .await;
        let error = status.last_error.expect("last_error is set");
        assert_eq!(
            error.path.as_deref(),
            Some(path),
            "error: {}",
            error.message
        );
        assert!(
            error.message.contains(&*path.to_string_lossy()),
            "message names the file: {}",
            error.message
        );
        assert_eq!(self.serial().await, old, "old certificate still served");
    }
}

#[tokio::test]
async fn atomic_rename_is_served() {
    let (f, first) = Fixture::plain().await;
    assert_eq!(f.serial().await, first.serial);
    let second = f.ca.leaf("second");
    second.write(f.dir.path());
    f.served(&first.serial, &second.serial).await;
    // Handshakes see a publish a moment before the status does.
    let status = eventually("the status to show generation 2", || async {
        let s = f.tls.status();
        (s.generation == 2).then_some(s)
    })
    .await;
    assert_eq!(status.reloads, 1);
    assert_eq!(status.certificate.unwrap().serial, second.serial);
}

#[tokio::test]
async fn in_place_rewrite_is_served() {
    let (f, first) = Fixture::plain().await;
    let second = f.ca.leaf("second");
    // Key first, then certificate: the poller may see the key alone, which does not
    // match, and must keep serving the first pair until the certificate follows.
    support::write_in_place(&f.key, &second.key_pem());
    support::write_in_place(&f.cert, &second.cert_pem());
    f.served(&first.serial, &second.serial).await;
}

#[tokio::test]
async fn kubernetes_data_symlink_swap_is_served() {
    let ca = Ca::new("k8s CA");
    let first = ca.leaf("first");
    let dir = tempfile::tempdir().unwrap();
    let mut volume = support::K8sVolume::new(
        dir.path(),
        &[
            ("tls.crt", &first.cert_pem()),
            ("tls.key", &first.key_pem()),
        ],
    );
    let tls = ReloadingAcceptor::builder()
        .identity(volume.path("tls.crt"), volume.path("tls.key"))
        .poll_interval(INTERVAL)
        .build()
        .unwrap();
    let server = support::serve(tls.clone()).await;
    let client = support::client(&ca.pem());
    assert_eq!(
        exchange(&client, server.addr, None).await.unwrap().serial,
        first.serial
    );

    let second = ca.leaf("second");
    volume.update(&[
        ("tls.crt", &second.cert_pem()),
        ("tls.key", &second.key_pem()),
    ]);
    eventually("the swapped secret to be served", || async {
        let seen = exchange(&client, server.addr, None).await.unwrap().serial;
        (seen == second.serial).then_some(())
    })
    .await;
}

fn set_mtime(path: &Path, time: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

#[tokio::test]
async fn replacement_with_older_mtime_is_served() {
    let (f, first) = Fixture::plain().await;
    let second = f.ca.leaf("second");
    // As `cp -p`, `tar x` or `rsync -t` install a file: older than the current one.
    let old = SystemTime::now() - Duration::from_secs(30 * 86_400);
    for (path, bytes) in [(&f.cert, second.cert_pem()), (&f.key, second.key_pem())] {
        let tmp = path.with_extension("restore");
        fs::write(&tmp, bytes).unwrap();
        set_mtime(&tmp, old);
        fs::rename(&tmp, path).unwrap();
    }
    f.served(&first.serial, &second.serial).await;
}

#[tokio::test]
async fn same_size_rewrite_with_mtime_restored_is_served() {
    let (f, first) = Fixture::plain().await;
    let (cert_len, key_len) = (first.cert_pem().len(), first.key_pem().len());
    let second = (0..200)
        .map(|_| f.ca.leaf("first"))
        .find(|l| l.cert_pem().len() == cert_len && l.key_pem().len() == key_len)
        .expect("a same-size certificate within 200 tries");
    let before: Vec<_> = [&f.cert, &f.key]
        .iter()
        .map(|p| fs::metadata(p).unwrap().modified().unwrap())
        .collect();
    support::write_in_place(&f.key, &second.key_pem());
    support::write_in_place(&f.cert, &second.cert_pem());
    set_mtime(&f.key, before[1]);
    set_mtime(&f.cert, before[0]);
    assert_eq!(fs::metadata(&f.cert).unwrap().len() as usize, cert_len);
    f.served(&first.serial, &second.serial).await;
}

#[tokio::test]
async fn open_connection_survives_reload() {
    let (f, first) = Fixture::plain().await;
    let tcp = TcpStream::connect(f.server.addr).await.unwrap();
    let ssl = f.client.configure().unwrap().into_ssl("localhost").unwrap();
    let mut stream = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
    std::pin::Pin::new(&mut stream).connect().await.unwrap();

    let second = f.ca.leaf("second");
    second.write(f.dir.path());
    f.served(&first.serial, &second.serial).await;

    // The connection opened before the reload still talks, with the old certificate.
    stream.write_all(b"still there\n").await.unwrap();
    let mut buf = [0; 256];
    let n = stream.read(&mut buf).await.unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(
        reply.starts_with(&format!("serial={}", first.serial)),
        "{reply}"
    );
    assert!(reply.ends_with("still there\n"), "{reply}");
}

#[tokio::test]
async fn bad_replacements_keep_the_old_certificate_and_recover() {
    let (f, first) = Fixture::plain().await;
    let other = f.ca.leaf("other");
    let good_pem = first.cert_pem();
    let truncated = good_pem[..good_pem.len() / 2].to_vec();
    let cases: Vec<(&str, &Path, Option<Vec<u8>>)> = vec![
        ("mismatched key", &f.key, Some(other.key_pem())),
        (
            "garbage certificate",
            &f.cert,
            Some(b"\x00\x01garbage\xff".repeat(50)),
        ),
        ("truncated PEM", &f.cert, Some(truncated)),
        ("empty certificate", &f.cert, Some(Vec::new())),
        ("missing key", &f.key, None),
    ];
    let mut generation = f.tls.status().generation;
    for (name, path, bytes) in cases {
        let failures = f.tls.status().failures;
        match &bytes {
            Some(bytes) => support::write_atomic(path, bytes),
            None => fs::remove_file(path).unwrap(),
        }
        f.keeps_serving(&first.serial, path, failures).await;
        assert_eq!(
            f.tls.status().generation,
            generation,
            "{name}: nothing published"
        );
        assert!(f.tls.status().consecutive_failures > 0, "{name}");

        // Fix it with a new pair: service follows again.
        let next = f.ca.leaf(name);
        next.write(f.dir.path());
        f.served(&first.serial, &next.serial).await;
        // The status follows the publish a moment later.
        let status = eventually("the status to show the recovery", || async {
            let s = f.tls.status();
            (s.consecutive_failures == 0).then_some(s)
        })
        .await;
        assert!(status.generation > generation, "{name}");
        generation = status.generation;
        // Back to the first pair for the next case.
        first.write(f.dir.path());
        f.served(&next.serial, &first.serial).await;
        generation = f.tls.status().generation.max(generation);
    }
}

#[tokio::test]
async fn certificate_first_key_later_fails_no_handshake() {
    let (f, first) = Fixture::plain().await;
    let second = f.ca.leaf("second");
    support::write_atomic(&f.cert, &second.cert_pem());
    // Keep handshaking while only the certificate is new: every one must succeed
    // with the first pair, and the half-written pair must be refused.
    let failures = f.tls.status().failures;
    eventually("the half pair to be refused", || async {
        assert_eq!(f.serial().await, first.serial);
        (f.tls.status().failures > failures).then_some(())
    })
    .await;
    let error = f.tls.status().last_error.unwrap();
    assert!(
        error.message.contains("does not match"),
        "{}",
        error.message
    );
    support::write_atomic(&f.key, &second.key_pem());
    f.served(&first.serial, &second.serial).await;
}

#[tokio::test]
async fn touch_with_same_content_does_not_republish() {
    let (f, first) = Fixture::plain().await;
    let mut events = f.tls.subscribe();
    events.mark_unchanged();
    // Rewrite with the same bytes (new inode and times), then touch the key.
    support::write_atomic(&f.cert, &first.cert_pem());
    set_mtime(&f.key, SystemTime::now());
    assert_eq!(f.tls.reload_now().unwrap(), Reload::Unchanged);
    // Let the poller see the change too.
    tokio::time::sleep(INTERVAL * 5).await;
    let status = f.tls.status();
    assert_eq!(status.generation, 1, "no republish");
    assert_eq!(status.reloads, 0);
    assert_eq!(status.failures, 0);
    assert!(
        !events.has_changed().unwrap(),
        "no status change for identical bytes"
    );
}

#[tokio::test]
async fn reload_now_publishes_at_once() {
    let ca = Ca::new("reload_now CA");
    let first = ca.leaf("first");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = first.write(dir.path());
    // A poll interval so long that only reload_now can be what reloads.
    let tls = ReloadingAcceptor::builder()
        .identity(&cert, &key)
        .poll_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let second = ca.leaf("second");
    second.write(dir.path());
    assert_eq!(tls.reload_now().unwrap(), Reload::Published(2));
    let server = support::serve(tls.clone()).await;
    let client = support::client(&ca.pem());
    assert_eq!(
        exchange(&client, server.addr, None).await.unwrap().serial,
        second.serial
    );
}

fn alpn_policy(ctx: &mut SslContextBuilder) -> Result<(), openssl::error::ErrorStack> {
    ctx.set_alpn_select_callback(|_, client| {
        openssl::ssl::select_next_proto(b"\x02h2\x08http/1.1", client).ok_or(AlpnError::NOACK)
    });
    Ok(())
}

#[tokio::test]
async fn session_ticket_resumes_and_alpn_holds_across_reload() {
    let ca = Ca::new("resume CA");
    let first = ca.leaf("first");
    let f = Fixture::new(&first, |b| b.policy(alpn_policy), ca).await;
    let mut client = SslConnector::builder(SslMethod::tls_client()).unwrap();
    client.set_cert_store(openssl_reload_store(&f.ca));
    client.set_alpn_protos(b"\x02h2\x08http/1.1").unwrap();
    client
        .set_min_proto_version(Some(SslVersion::TLS1_3))
        .unwrap();
    let client = client.build();

    let before = exchange(&client, f.server.addr, None).await.unwrap();
    assert_eq!(before.alpn.as_deref(), Some(&b"h2"[..]));
    assert!(!before.resumed);
    let session = before.session.expect("a TLS 1.3 ticket");
    let again = exchange(&client, f.server.addr, Some(&session))
        .await
        .unwrap();
    assert!(again.resumed, "the ticket resumes before any reload");

    let second = f.ca.leaf("second");
    second.write(f.dir.path());
    eventually("the new certificate", || async {
        let seen = exchange(&client, f.server.addr, None).await.unwrap();
        (seen.serial == second.serial).then_some(())
    })
    .await;

    let after = exchange(&client, f.server.addr, Some(&session))
        .await
        .unwrap();
    assert!(
        after.resumed,
        "a ticket issued before the reload resumes after it"
    );
    assert_eq!(after.alpn.as_deref(), Some(&b"h2"[..]), "ALPN after reload");
    let fresh = exchange(&client, f.server.addr, None).await.unwrap();
    assert_eq!(fresh.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(fresh.serial, second.serial);
}

fn openssl_reload_store(ca: &Ca) -> openssl::x509::store::X509Store {
    let mut s = openssl::x509::store::X509StoreBuilder::new().unwrap();
    s.add_cert(ca.cert.clone()).unwrap();
    s.build()
}

/// A client that trusts `ca` and presents `leaf`, up to protocol version `max`.
fn client_presenting(ca: &Ca, leaf: &Leaf, max: Option<SslVersion>) -> SslConnector {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_cert_store(openssl_reload_store(ca));
    b.set_certificate(&leaf.cert).unwrap();
    b.set_private_key(&leaf.key).unwrap();
    b.set_max_proto_version(max).unwrap();
    b.build()
}

#[tokio::test]
async fn policy_verify_mode_and_protocol_floor_hold_after_reload() {
    let ca = Ca::new("policy CA");
    let first = ca.leaf("first");
    let client_leaf = ca.leaf("client");
    let ca_cert = ca.cert.clone();
    let f = Fixture::new(
        &first,
        move |b| {
            b.policy(move |ctx| {
                ctx.set_min_proto_version(Some(SslVersion::TLS1_3))?;
                let mut store = openssl::x509::store::X509StoreBuilder::new()?;
                store.add_cert(ca_cert.clone())?;
                ctx.set_cert_store(store.build());
                ctx.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
                Ok(())
            })
        },
        ca,
    )
    .await;
    let with_cert = client_presenting(&f.ca, &client_leaf, None);
    let tls12_only = client_presenting(&f.ca, &client_leaf, Some(SslVersion::TLS1_2));
    let client_serial = client_leaf.serial.clone();
    let check = |serial: String| {
        let (with_cert, tls12_only, f) = (&with_cert, &tls12_only, &f);
        let client_serial = client_serial.clone();
        async move {
            let seen = exchange(with_cert, f.server.addr, None).await.unwrap();
            assert_eq!(client_leaf_serial(&seen), client_serial, "client verified");
            assert!(
                exchange(&f.client, f.server.addr, None).await.is_err(),
                "a client without a certificate is refused"
            );
            assert!(
                exchange(tls12_only, f.server.addr, None).await.is_err(),
                "TLS 1.2 is below the floor"
            );
            seen.serial == serial
        }
    };
    assert!(check(first.serial.clone()).await);
    let second = f.ca.leaf("second");
    second.write(f.dir.path());
    eventually("the new certificate under the policy", || async {
        check(second.serial.clone()).await.then_some(())
    })
    .await;
}

fn client_leaf_serial(seen: &support::Seen) -> String {
    // The server echoes the serial of the client certificate it verified.
    seen.reply
        .split_whitespace()
        .find_map(|w| w.strip_prefix("peer="))
        .unwrap_or("-")
        .to_owned()
}

#[tokio::test]
async fn bad_initial_material_fails_start_up_with_the_path() {
    let ca = Ca::new("start CA");
    let dir = tempfile::tempdir().unwrap();
    let leaf = ca.leaf("leaf");
    let (cert, key) = leaf.write(dir.path());
    let missing = dir.path().join("missing.pem");
    let err = ReloadingAcceptor::builder()
        .identity(&missing, &key)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("missing.pem"), "{err}");
    assert_eq!(err.path(), Some(missing.as_path()));
    fs::write(&key, ca.leaf("other").key_pem()).unwrap();
    let err = ReloadingAcceptor::builder()
        .identity(&cert, &key)
        .build()
        .unwrap_err();
    assert!(
        matches!(err, openssl_reload::Error::KeyMismatch { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn missing_at_start_is_adopted_when_allowed() {
    let ca = Ca::new("late CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    assert!(
        ReloadingAcceptor::builder()
            .identity(&cert, &key)
            .build()
            .is_err(),
        "refused by default"
    );
    let tls = ReloadingAcceptor::builder()
        .identity(&cert, &key)
        .poll_interval(INTERVAL)
        .allow_missing_at_start(true)
        .build()
        .unwrap();
    let status = tls.status();
    assert_eq!(status.generation, 0);
    assert!(status.certificate.is_none());
    assert!(status.last_error.unwrap().message.contains("cert.pem"));
    let server = support::serve(tls.clone()).await;
    let client = support::client(&ca.pem());
    assert!(
        exchange(&client, server.addr, None).await.is_err(),
        "no certificate yet"
    );
    let leaf = ca.leaf("late");
    leaf.write(dir.path());
    eventually("the late certificate", || async {
        exchange(&client, server.addr, None)
            .await
            .ok()
            .filter(|s| s.serial == leaf.serial)
    })
    .await;
    eventually("generation 1", || async {
        (tls.status().generation == 1).then_some(())
    })
    .await;
}
