//! Many sites behind one acceptor, chosen by SNI: exact and wildcard names, the
//! default site and strict SNI, RSA and ECDSA for one name, site directories that
//! gain, lose, rotate and break sites, sessions bound to their site, a thousand
//! sites, and `check_sites`.
//!
//! Clients verify the chain but not the host name: selection is judged by the
//! serial the server presented.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openssl::ssl::{SslConnector, SslConnectorBuilder, SslMethod, SslVersion};
use openssl::x509::store::X509StoreBuilder;
use openssl_reload::{
    ClientAuth, ReloadFailure, ReloadingAcceptor, ReloadingAcceptorBuilder, SiteStatus,
};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use crate::support::{
    eventually, exchange_sni, serial_hex, serve, write_atomic, Alg, Ca, K8sVolume, Leaf, LeafSpec,
    Seen, Server, DEADLINE,
};

/// The sites' poll interval.
const POLL: Duration = Duration::from_millis(10);

/// How soon a site added to a directory must be served: the poll interval with a
/// margin for a loaded machine.
const ADD_MARGIN: Duration = Duration::from_secs(3);

/// The selection fixture: `alpha` is first by name, so the default.
const NAMED: &[(&str, &[&str])] = &[
    ("alpha", &["alpha.example.test"]),
    ("exact", &["exact.example.com"]),
    ("wild", &["*.example.com"]),
];

/// Sites `a` (for `a.example.test` and `alias.example.test`) and `b`.
const TWO_SITES: &[(&str, &[&str])] = &[
    ("a", &["a.example.test", "alias.example.test"]),
    ("b", &["b.example.test"]),
];

const FIVE_SITES: &[(&str, &[&str])] = &[
    ("s1", &["s1.example.test"]),
    ("s2", &["s2.example.test"]),
    ("s3", &["s3.example.test"]),
    ("s4", &["s4.example.test"]),
    ("s5", &["s5.example.test"]),
];

fn leaf(ca: &Ca, names: &[&str], alg: Alg) -> Leaf {
    ca.leaf_with(LeafSpec::new(names[0]).dns(names).alg(alg))
}

/// Writes site `name` into `dir` as `NAME.key` then `NAME.crt`, each renamed
/// over; returns the certificate's path.
fn write_site(dir: &Path, name: &str, leaf: &Leaf) -> PathBuf {
    write_atomic(&dir.join(format!("{name}.key")), &leaf.key_pem());
    let cert = dir.join(format!("{name}.crt"));
    write_atomic(&cert, &leaf.cert_pem());
    cert
}

fn remove_site(dir: &Path, name: &str) {
    for ext in ["crt", "key"] {
        fs::remove_file(dir.join(format!("{name}.{ext}"))).unwrap();
    }
}

/// Writes `n` sites `site{i}` for `site{i}.example.test` into `dir` (plain
/// writes: nothing watches it yet) and returns their serials.
fn mint_sites(ca: &Ca, dir: &Path, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let l = leaf(ca, &[&format!("site{i}.example.test")], Alg::P256);
            fs::write(dir.join(format!("site{i}.crt")), l.cert_pem()).unwrap();
            fs::write(dir.join(format!("site{i}.key")), l.key_pem()).unwrap();
            l.serial
        })
        .collect()
}

/// A client trusting `ca` that does not check host names, configured further by `more`.
fn connector(ca: &Ca, more: impl FnOnce(&mut SslConnectorBuilder)) -> SslConnector {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(ca.cert.clone()).unwrap();
    b.set_cert_store(store.build());
    more(&mut b);
    b.build()
}

fn pin_version(b: &mut SslConnectorBuilder, version: SslVersion) {
    b.set_min_proto_version(Some(version)).unwrap();
    b.set_max_proto_version(Some(version)).unwrap();
}

/// The serial served for `sni`; the handshake must succeed.
async fn serial_for(client: &SslConnector, addr: SocketAddr, sni: Option<&str>) -> String {
    exchange_sni(client, addr, sni, None)
        .await
        .unwrap_or_else(|e| panic!("SNI {sni:?}: {e}"))
        .serial
}

/// Whether the server answered (a TLS 1.3 client certificate refusal arrives
/// after the client's handshake completed: an error or EOF on the first read).
fn served(result: &Result<Seen, String>) -> bool {
    matches!(result, Ok(seen) if !seen.reply.is_empty())
}

fn site(tls: &ReloadingAcceptor, name: &str) -> SiteStatus {
    let sites = tls.sites();
    let found = sites.iter().find(|s| s.name == name).cloned();
    found.unwrap_or_else(|| panic!("no site {name} in {sites:#?}"))
}

/// Asserts that `error` is about `path` and says so.
fn names_file(error: &ReloadFailure, path: &Path) {
    assert_eq!(error.path.as_deref(), Some(path), "{}", error.message);
    assert!(
        error.message.contains(&*path.to_string_lossy()),
        "the message names the file: {}",
        error.message
    );
}

/// Waits until the poller finished `n` more ticks: it has seen what was done before.
async fn ticks(tls: &ReloadingAcceptor, n: usize) {
    for _ in 0..n {
        let before = tls.status().last_poll;
        eventually("a poller tick", || async {
            (tls.status().last_poll != before).then_some(())
        })
        .await;
    }
}

/// A site directory, the CA of its leaves, an acceptor serving it and a client.
struct Fixture {
    ca: Ca,
    dir: TempDir,
    tls: ReloadingAcceptor,
    server: Server,
    client: SslConnector,
    /// The leaves written at start, in the order given.
    leaves: Vec<Leaf>,
}

impl Fixture {
    /// Writes `sites` (name, DNS names; ECDSA) into a new directory and serves it.
    async fn new(
        sites: &[(&str, &[&str])],
        configure: impl FnOnce(ReloadingAcceptorBuilder) -> ReloadingAcceptorBuilder,
    ) -> Self {
        let ca = Ca::new("sites CA");
        let dir = tempfile::tempdir().unwrap();
        let leaves = sites
            .iter()
            .map(|(name, dns)| {
                let l = leaf(&ca, dns, Alg::P256);
                write_site(dir.path(), name, &l);
                l
            })
            .collect();
        Self::start(ca, dir, leaves, configure).await
    }

    /// Serves `dir`, whose sites `ca` signed.
    async fn start(
        ca: Ca,
        dir: TempDir,
        leaves: Vec<Leaf>,
        configure: impl FnOnce(ReloadingAcceptorBuilder) -> ReloadingAcceptorBuilder,
    ) -> Self {
        let builder = ReloadingAcceptor::builder()
            .site_dir(dir.path())
            .poll_interval(POLL);
        let tls = configure(builder).build().unwrap();
        let server = serve(tls.clone()).await;
        let client = connector(&ca, |_| {});
        Self {
            ca,
            dir,
            tls,
            server,
            client,
            leaves,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    async fn serial(&self, sni: Option<&str>) -> String {
        serial_for(&self.client, self.server.addr, sni).await
    }

    /// Waits until `sni` gets `want`, asserting every handshake meanwhile succeeds
    /// and gets `want` or one of `also`.
    async fn until_served(&self, sni: &str, want: &str, also: &[&str]) {
        eventually(&format!("{sni} to get serial {want}"), || async {
            let seen = self.serial(Some(sni)).await;
            assert!(
                seen == want || also.contains(&seen.as_str()),
                "{sni} got serial {seen}, expected {want} or one of {also:?}"
            );
            (seen == want).then_some(())
        })
        .await;
    }
}

/// Exact names first, then `*.example.com` for exactly one more label; SNI in
/// any case and with a trailing dot; everything else gets the default.
#[tokio::test]
async fn wildcard_covers_one_label_only() {
    let f = Fixture::new(NAMED, |b| b).await;
    let [alpha, exact, wild] = [0, 1, 2].map(|i| f.leaves[i].serial.clone());
    for (sni, want) in [
        ("alpha.example.test", &alpha),
        // An exact name wins over the wildcard that also covers it.
        ("exact.example.com", &exact),
        ("a.example.com", &wild),
        ("www.example.com", &wild),
        // Two labels, or none, are not the wildcard's: the default answers.
        ("a.b.example.com", &alpha),
        ("example.com", &alpha),
        ("x.alpha.example.test", &alpha),
        ("EXACT.Example.COM", &exact),
        ("exact.example.com.", &exact),
        ("Exact.Example.Com.", &exact),
        ("A.EXAMPLE.COM", &wild),
        ("a.example.com.", &wild),
        ("ALPHA.example.test.", &alpha),
    ] {
        assert_eq!(&f.serial(Some(sni)).await, want, "SNI {sni}");
    }
    let wild_site = site(&f.tls, "wild");
    assert_eq!(wild_site.names, ["*.example.com"]);
    assert_eq!(wild_site.key_type.as_deref(), Some("ECDSA prime256v1"));
    assert!(wild_site.serving && !wild_site.default);
}

/// The first site answers no SNI and unknown names unless `default_site` names
/// another, by its site name or one of its DNS names (in any case).
#[tokio::test]
async fn no_or_unknown_sni_gets_the_default_site() {
    let f = Fixture::new(NAMED, |b| b).await;
    for (wanted, default) in [(None, 0), (Some("wild"), 2), (Some("EXACT.example.com"), 1)] {
        let builder = ReloadingAcceptor::builder().site_dir(f.path());
        let builder = match wanted {
            Some(name) => builder.default_site(name),
            None => builder,
        };
        let tls = builder.poll_interval(POLL).build().unwrap();
        let server = serve(tls.clone()).await;
        for sni in [None, Some("unknown.example.org"), Some("a.b.example.com")] {
            let seen = serial_for(&f.client, server.addr, sni).await;
            assert_eq!(
                seen, f.leaves[default].serial,
                "default {wanted:?}, SNI {sni:?}"
            );
        }
        let sites = tls.sites();
        let defaults: Vec<&str> = sites
            .iter()
            .filter(|s| s.default)
            .map(|s| &*s.name)
            .collect();
        assert_eq!(defaults, [NAMED[default].0], "default {wanted:?}");
        let status = tls.status().certificate.map(|c| c.serial);
        assert_eq!(
            status,
            Some(f.leaves[default].serial.clone()),
            "the aggregate status"
        );
        // Named sites are still theirs.
        let seen = serial_for(&f.client, server.addr, Some("alpha.example.test")).await;
        assert_eq!(seen, f.leaves[0].serial, "default {wanted:?}");
    }
    let unknown = ReloadingAcceptor::builder()
        .site_dir(f.path())
        .default_site("nobody");
    assert!(
        unknown.build().is_err(),
        "an unknown default site is refused"
    );
}

#[tokio::test]
async fn strict_sni_refuses_unknown_names_with_unrecognized_name() {
    let f = Fixture::new(NAMED, |b| b.strict_sni(true)).await;
    for sni in [None, Some("unknown.example.org"), Some("a.b.example.com")] {
        match exchange_sni(&f.client, f.server.addr, sni, None).await {
            Ok(seen) => panic!("SNI {sni:?} was served serial {}", seen.serial),
            Err(e) => assert!(
                e.contains("unrecognized name"),
                "SNI {sni:?}: the refusal is not an unrecognized_name alert: {e}"
            ),
        }
    }
    let known = ["alpha.example.test", "exact.example.com", "b.example.com"];
    for (sni, leaf) in known.into_iter().zip(&f.leaves) {
        assert_eq!(f.serial(Some(sni)).await, leaf.serial, "SNI {sni}");
    }
}

#[tokio::test]
async fn rsa_and_ecdsa_for_one_name_follow_the_client_signature_algorithms() {
    let ca = Ca::new("dual CA");
    let dir = tempfile::tempdir().unwrap();
    let names = ["dual.example.test"];
    // [RSA, ECDSA], as the sites sort: "dual-ecdsa" < "dual-rsa".
    let mut leaves = [
        leaf(&ca, &names, Alg::Rsa2048),
        leaf(&ca, &names, Alg::P256),
    ];
    let sites = ["dual-rsa", "dual-ecdsa"];
    for (name, l) in sites.iter().zip(&leaves) {
        write_site(dir.path(), name, l);
    }
    let f = Fixture::start(ca, dir, vec![], |b| b).await;
    // (client, which of `leaves` it must get)
    let mut clients = Vec::new();
    for (version, rsa) in [
        (SslVersion::TLS1_3, "rsa_pss_rsae_sha256"),
        (SslVersion::TLS1_2, "RSA+SHA256:rsa_pss_rsae_sha256"),
    ] {
        for (which, sigalgs) in [(0, rsa), (1, "ECDSA+SHA256")] {
            let client = connector(&f.ca, |b| {
                pin_version(b, version);
                b.set_sigalgs_list(sigalgs).unwrap();
            });
            clients.push((format!("{version:?} {sigalgs}"), client, which));
        }
    }
    let key_types: Vec<_> = f.tls.sites().into_iter().map(|s| s.key_type).collect();
    assert_eq!(
        key_types,
        [Some("ECDSA prime256v1".into()), Some("RSA 2048".into())]
    );
    for round in 0..3 {
        for (what, client, which) in &clients {
            let seen = serial_for(client, f.server.addr, Some(names[0])).await;
            let want = &leaves[*which].serial;
            assert_eq!(&seen, want, "round {round}: the {what} client");
        }
        // Rotate the RSA site, then the ECDSA one.
        let Some(which) = [0, 1].get(round).copied() else {
            break;
        };
        let new = leaf(&f.ca, &names, [Alg::Rsa2048, Alg::P256][which]);
        write_site(f.path(), sites[which], &new);
        eventually(
            &format!("{} rotated to {}", sites[which], new.serial),
            || async {
                let s = site(&f.tls, sites[which]);
                (s.certificate().map(|c| &c.serial) == Some(&new.serial)).then_some(())
            },
        )
        .await;
        leaves[which] = new;
    }
}

#[tokio::test]
async fn rotating_one_site_leaves_the_others_alone() {
    let f = Fixture::new(FIVE_SITES, |b| b).await;
    for s in f.tls.sites() {
        assert_eq!((s.status.generation, s.serving), (1, true), "{s:#?}");
    }
    let new = leaf(&f.ca, &["s3.example.test"], Alg::P256);
    write_site(f.path(), "s3", &new);
    f.until_served("s3.example.test", &new.serial, &[&f.leaves[2].serial])
        .await;
    let rotated = eventually("site s3 at generation 2", || async {
        let s = site(&f.tls, "s3");
        (s.status.generation == 2).then_some(s)
    })
    .await;
    assert_eq!(rotated.status.reloads, 1);
    assert_eq!(rotated.certificate().unwrap().serial, new.serial);
    for i in [1, 2, 4, 5] {
        let s = site(&f.tls, &format!("s{i}"));
        let old = &f.leaves[i - 1].serial;
        let moved = (s.status.generation, s.status.reloads);
        assert_eq!(moved, (1, 0), "s{i} moved: {s:#?}");
        assert_eq!(&s.certificate().unwrap().serial, old);
        assert_eq!(&f.serial(Some(&format!("s{i}.example.test"))).await, old);
    }
    assert!(f.tls.status().generation >= 2, "the aggregate moved on");
}

#[tokio::test]
async fn garbage_for_one_site_keeps_every_site_serving() {
    let f = Fixture::new(FIVE_SITES, |b| b).await;
    let broken = f.path().join("s2.crt");
    write_atomic(&broken, &b"\x00\x01 not a certificate \xff".repeat(40));
    let s2 = eventually("the failure of s2 to be recorded", || async {
        let s = site(&f.tls, "s2");
        (s.status.failures > 0).then_some(s)
    })
    .await;
    names_file(s2.status.last_error.as_ref().expect("last_error"), &broken);
    assert!(s2.serving, "s2 keeps its last good certificate: {s2:#?}");
    assert_eq!(s2.certificate().unwrap().serial, f.leaves[1].serial);
    let sites = f.tls.sites();
    assert_eq!(sites.len(), 5);
    for (i, s) in sites.iter().enumerate() {
        assert!(s.serving, "{s:#?}");
        if s.name != "s2" {
            assert_eq!(s.status.failures, 0, "{s:#?}");
        }
        let sni = format!("s{}.example.test", i + 1);
        assert_eq!(f.serial(Some(&sni)).await, f.leaves[i].serial, "{sni}");
    }
}

#[tokio::test]
async fn site_added_to_the_directory_is_served() {
    let f = Fixture::new(&NAMED[..1], |b| b).await;
    let alpha = f.leaves[0].serial.clone();
    assert_eq!(f.serial(Some("beta.example.test")).await, alpha);
    let beta = leaf(&f.ca, &["beta.example.test"], Alg::P256);
    let start = Instant::now();
    write_site(f.path(), "beta", &beta);
    f.until_served("beta.example.test", &beta.serial, &[&alpha])
        .await;
    let took = start.elapsed();
    assert!(
        took < ADD_MARGIN,
        "a new site took {took:?} (poll interval {POLL:?})"
    );
    let s = site(&f.tls, "beta");
    assert!(s.serving && !s.default, "{s:#?}");
    assert_eq!(s.names, ["beta.example.test"]);
    assert_eq!(f.serial(None).await, alpha, "the default stays");
}

/// Sites added one by one to a directory whose listing takes the poller a few
/// milliseconds, by a writer that takes a moment between a site's key and its
/// certificate (a script running two commands), are each noticed and served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_added_one_by_one_to_a_large_directory_are_each_served() {
    const ADDED: u64 = 20;
    let ca = Ca::new("growing CA");
    let dir = tempfile::tempdir().unwrap();
    mint_sites(&ca, dir.path(), 1000);
    let f = Fixture::start(ca, dir, vec![], |b| b).await;
    for i in 0..ADDED {
        let (name, sni) = (format!("new{i}"), format!("new{i}.example.test"));
        let new = leaf(&f.ca, &[&sni], Alg::P256);
        write_atomic(&f.path().join(format!("{name}.key")), &new.key_pem());
        // The writer's own pace between its two files (0 to 12 ms), not a wait.
        tokio::time::sleep(Duration::from_millis(i * 7 % 13)).await;
        write_atomic(&f.path().join(format!("{name}.crt")), &new.cert_pem());
        let start = Instant::now();
        while f.serial(Some(&sni)).await != new.serial {
            let listed = f.tls.sites().iter().any(|s| s.name == name);
            assert!(
                start.elapsed() < ADD_MARGIN,
                "site {name} (added {} of {ADDED}) not served {ADD_MARGIN:?} after its \
                 certificate was written; listed in sites(): {listed}",
                i + 1
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[tokio::test]
async fn removed_site_is_served_until_the_grace_ends() {
    let grace = Duration::from_millis(400);
    let f = Fixture::new(TWO_SITES, |b| b.site_removal_grace(grace)).await;
    let (a, b) = (&f.leaves[0].serial, &f.leaves[1].serial);
    let removed = Instant::now();
    remove_site(f.path(), "b");
    f.until_served("b.example.test", a, &[b]).await;
    let after = removed.elapsed();
    assert!(
        after >= grace,
        "b stopped being served after {after:?}, within its grace"
    );
    eventually("b to leave sites()", || async {
        f.tls.sites().iter().all(|s| s.name != "b").then_some(())
    })
    .await;
    assert_eq!(&f.serial(Some("a.example.test")).await, a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_then_recreate_within_the_grace_never_drops_the_name() {
    let f = Fixture::new(TWO_SITES, |b| b.site_removal_grace(Duration::from_secs(5))).await;
    let old = f.leaves[1].serial.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let (client, addr, done) = (f.client.clone(), f.server.addr, stop.clone());
    let looping = tokio::spawn(async move {
        let mut seen = Vec::new();
        while !done.load(Ordering::SeqCst) {
            let result = exchange_sni(&client, addr, Some("b.example.test"), None).await;
            seen.push(result.map(|s| s.serial));
        }
        seen
    });
    ticks(&f.tls, 1).await;
    remove_site(f.path(), "b");
    // Past the tick under way, two whole ticks: the poller has listed the
    // directory without b.
    ticks(&f.tls, 3).await;
    let new = leaf(&f.ca, &["b.example.test"], Alg::P256);
    write_site(f.path(), "b", &new);
    f.until_served("b.example.test", &new.serial, &[&old]).await;
    stop.store(true, Ordering::SeqCst);
    let seen = looping.await.unwrap();
    let total = seen.len();
    for (i, result) in seen.iter().enumerate() {
        match result {
            Ok(serial) if *serial == old || *serial == new.serial => {}
            Ok(serial) => panic!(
                "handshake {i} of {total} got {serial}, not b's {old} or {}: b was dropped",
                new.serial
            ),
            Err(e) => panic!("handshake {i} of {total} failed: {e}"),
        }
    }
    assert!(total > 3, "only {total} handshakes");
    assert_eq!(site(&f.tls, "b").certificate().unwrap().serial, new.serial);
}

#[tokio::test]
async fn new_bad_pair_is_listed_but_not_served() {
    let f = Fixture::new(&NAMED[..1], |b| b).await;
    let good = leaf(&f.ca, &["bad.example.test"], Alg::P256);
    write_atomic(&f.path().join("bad.key"), &good.key_pem());
    let cert = f.path().join("bad.crt");
    let garbage = b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
    write_atomic(&cert, garbage);
    let bad = eventually("the bad pair to be listed with its error", || async {
        let sites = f.tls.sites();
        sites
            .into_iter()
            .find(|s| s.name == "bad" && s.status.last_error.is_some())
    })
    .await;
    assert!(!bad.serving && !bad.default, "{bad:#?}");
    assert!(bad.names.is_empty() && bad.key_type.is_none(), "{bad:#?}");
    assert_eq!(bad.path, cert);
    names_file(bad.status.last_error.as_ref().unwrap(), &cert);
    assert!(f.tls.status().failures > 0, "the aggregate counts it");
    assert_eq!(f.tls.sites().len(), 2);
    assert_eq!(f.serial(Some("bad.example.test")).await, f.leaves[0].serial);
    assert_eq!(f.serial(None).await, f.leaves[0].serial);
}

#[tokio::test]
async fn kubernetes_secret_subdirectories_load_and_rotate() {
    let ca = Ca::new("k8s sites CA");
    let dir = tempfile::tempdir().unwrap();
    let mut leaves = vec![leaf(&ca, &["alpha.example.test"], Alg::P256)];
    write_site(dir.path(), "alpha", &leaves[0]);
    let mut volumes = Vec::new();
    for name in ["api", "www"] {
        let sub = dir.path().join(name);
        fs::create_dir(&sub).unwrap();
        let l = leaf(&ca, &[&format!("{name}.example.test")], Alg::P256);
        let files: &[(&str, &[u8])] = &[("tls.crt", &l.cert_pem()), ("tls.key", &l.key_pem())];
        volumes.push(K8sVolume::new(&sub, files));
        leaves.push(l);
    }
    let f = Fixture::start(ca, dir, leaves, |b| b).await;
    let names: Vec<String> = f.tls.sites().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["alpha", "api", "www"]);
    assert_eq!(site(&f.tls, "api").path, f.path().join("api/tls.crt"));
    for (sni, l) in ["api.example.test", "www.example.test"]
        .iter()
        .zip(&f.leaves[1..])
    {
        assert_eq!(f.serial(Some(sni)).await, l.serial, "{sni}");
    }

    let new = leaf(&f.ca, &["api.example.test"], Alg::P256);
    volumes[0].update(&[("tls.crt", &new.cert_pem()), ("tls.key", &new.key_pem())]);
    f.until_served("api.example.test", &new.serial, &[&f.leaves[1].serial])
        .await;
    let www = site(&f.tls, "www");
    assert_eq!(www.status.generation, 1, "www reloaded: {www:#?}");
    assert_eq!(f.serial(Some("www.example.test")).await, f.leaves[2].serial);
    assert_eq!(f.serial(None).await, f.leaves[0].serial);
}

/// A TLS 1.3 session of site `a` offered with SNI `b` does not resume, and site
/// `b` verifies the client in full; with either name of site `a` it resumes.
#[tokio::test]
async fn session_resumes_only_on_its_own_site() {
    let ca = Ca::new("sites mTLS CA");
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    write_atomic(ca_file.path(), &ca.pem());
    let ca_path = ca_file.path().to_owned();
    let f = Fixture::new(TWO_SITES, |b| {
        b.ca(ca_path).client_auth(ClientAuth::Required)
    })
    .await;
    // The sites' leaves are from the fixture's CA: clients trust both.
    let identity = ca.leaf("sites client");
    let trusting = |b: &mut SslConnectorBuilder| {
        pin_version(b, SslVersion::TLS1_3);
        b.cert_store_mut().add_cert(f.ca.cert.clone()).unwrap();
    };
    let with_cert = connector(&ca, |b| {
        trusting(b);
        b.set_certificate(&identity.cert).unwrap();
        b.set_private_key(&identity.key).unwrap();
    });
    let anonymous = connector(&ca, trusting);
    let (addr, peer) = (f.server.addr, format!("peer={}", identity.serial));
    let show =
        |r: &Result<Seen, String>| format!("{:?}", r.as_ref().map(|s| (s.resumed, &s.reply)));
    let first = exchange_sni(&with_cert, addr, Some("a.example.test"), None).await;
    assert!(
        served(&first),
        "the client with a certificate: {}",
        show(&first)
    );
    let session = first.unwrap().session.expect("a session ticket");

    let on_b = exchange_sni(&with_cert, addr, Some("b.example.test"), Some(&session))
        .await
        .unwrap();
    assert!(
        !on_b.resumed,
        "a session of site a resumed with SNI b.example.test"
    );
    assert!(
        on_b.reply.contains(&peer),
        "site b verified the client: {}",
        on_b.reply
    );
    assert_eq!(on_b.serial, f.leaves[1].serial);
    let cross = exchange_sni(&anonymous, addr, Some("b.example.test"), Some(&session)).await;
    assert!(
        !served(&cross),
        "a client without a certificate was served site b on site a's session: {}",
        show(&cross)
    );
    // Its own site resumes it under either name (so the client did offer it),
    // with the client it verified.
    for (client, sni) in [
        (&with_cert, "a.example.test"),
        (&anonymous, "alias.example.test"),
    ] {
        let own = exchange_sni(client, addr, Some(sni), Some(&session)).await;
        assert!(
            served(&own)
                && own
                    .as_ref()
                    .is_ok_and(|s| s.resumed && s.reply.contains(&peer)),
            "site a's session with SNI {sni}: {}",
            show(&own)
        );
        assert_eq!(own.unwrap().serial, f.leaves[0].serial);
    }
}

#[tokio::test]
async fn thousand_site_directory_loads_and_serves() {
    const SITES: usize = 1000;
    let ca = Ca::new("thousand CA");
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let serials = mint_sites(&ca, dir.path(), SITES);
    let minted = started.elapsed();
    let f = Fixture::start(ca, dir, vec![], |b| {
        b.poll_interval(Duration::from_millis(200))
    })
    .await;
    let loaded = started.elapsed() - minted;
    eprintln!("{SITES} sites: minted in {minted:?}, loaded in {loaded:?}");
    let sites = f.tls.sites();
    assert_eq!(sites.len(), SITES);
    for s in &sites {
        assert!(s.serving, "{s:#?}");
        let i: usize = s.name.strip_prefix("site").unwrap().parse().unwrap();
        assert_eq!(s.names, [format!("site{i}.example.test")]);
        assert_eq!(s.certificate().unwrap().serial, serials[i], "{}", s.name);
    }
    assert_eq!(sites.iter().filter(|s| s.default).count(), 1);

    let mut random = [0u8; 16];
    openssl::rand::rand_bytes(&mut random).unwrap();
    let picks = random
        .chunks(2)
        .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])) % SITES);
    for i in picks.chain([0, SITES - 1]) {
        let sni = format!("site{i}.example.test");
        assert_eq!(f.serial(Some(&sni)).await, serials[i], "{sni}");
    }
    assert!(started.elapsed() < DEADLINE, "took {:?}", started.elapsed());
}

#[test]
fn check_sites_lists_every_site_with_the_bad_one_failing() {
    let ca = Ca::new("check CA");
    let dir = tempfile::tempdir().unwrap();
    let mut serials = Vec::new();
    for name in ["a", "b", "c"] {
        let l = leaf(&ca, &[&format!("{name}.example.test")], Alg::P256);
        write_site(dir.path(), name, &l);
        serials.push(l.serial);
    }
    let bad = dir.path().join("b.key");
    write_atomic(
        &bad,
        b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n",
    );
    let sites = ReloadingAcceptor::builder()
        .site_dir(dir.path())
        .check_sites()
        .expect("one bad site does not stop a start");
    assert_eq!(sites.len(), 3, "{sites:#?}");
    let by_name = |name: &str| sites.iter().find(|s| s.name == name).unwrap();
    for (name, serial) in [("a", &serials[0]), ("c", &serials[2])] {
        let s = by_name(name);
        assert!(s.serving && s.status.last_error.is_none(), "{s:#?}");
        assert_eq!(&s.certificate().unwrap().serial, serial);
        assert_eq!(s.names, [format!("{name}.example.test")]);
    }
    assert!(by_name("a").default);
    let b = by_name("b");
    assert!(
        !b.serving && !b.default && b.certificate().is_none(),
        "{b:#?}"
    );
    names_file(b.status.last_error.as_ref().expect("b's error"), &bad);
}

#[tokio::test]
async fn a_hello_retry_installs_the_chain_once() {
    let root = Ca::new("retry root");
    let intermediate = root.intermediate("retry intermediate");
    let mut l =
        intermediate.leaf_with(LeafSpec::new("retry.example.test").dns(&["retry.example.test"]));
    l.chain = vec![intermediate.cert.clone()];
    let dir = tempfile::tempdir().unwrap();
    write_site(dir.path(), "retry", &l);
    // The server takes P-256 only and the client leads with an X25519 key share:
    // a HelloRetryRequest, so the client hello callback runs twice.
    let f = Fixture::start(root, dir, vec![], |b| {
        b.policy(|ctx| ctx.set_groups_list("P-256"))
    })
    .await;
    let client = connector(&f.ca, |b| {
        pin_version(b, SslVersion::TLS1_3);
        b.set_groups_list("X25519:P-256").unwrap();
    });
    let tcp = TcpStream::connect(f.server.addr).await.unwrap();
    let ssl = client
        .configure()
        .unwrap()
        .verify_hostname(false)
        .into_ssl("retry.example.test")
        .unwrap();
    let mut stream = SslStream::new(ssl, tcp).unwrap();
    Pin::new(&mut stream).connect().await.unwrap();
    let chain: Vec<String> = stream
        .ssl()
        .peer_cert_chain()
        .unwrap()
        .iter()
        .map(serial_hex)
        .collect();
    assert_eq!(
        chain,
        [l.serial.clone(), serial_hex(&intermediate.cert)],
        "the leaf and its intermediate, once each"
    );
}

/// Two sites with one name and one key type: the newer notBefore answers, both
/// orders of the files alike, and the other site's own names still work.
#[tokio::test]
async fn the_newer_of_two_overlapping_sites_answers() {
    let ca = Ca::new("overlap CA");
    let dir = tempfile::tempdir().unwrap();
    let older = ca.leaf_with(
        LeafSpec::new("shared.example.test")
            .dns(&["shared.example.test", "old.example.test"])
            .validity(-7200, 86_400),
    );
    let newer = ca.leaf_with(
        LeafSpec::new("shared.example.test")
            .dns(&["shared.example.test"])
            .validity(-60, 86_400),
    );
    // "a-newer" sorts first, "b-older" second: order does not decide.
    write_site(dir.path(), "b-older", &older);
    write_site(dir.path(), "a-newer", &newer);
    let f = Fixture::start(ca, dir, vec![], |b| b).await;
    assert_eq!(f.serial(Some("shared.example.test")).await, newer.serial);
    assert_eq!(f.serial(Some("old.example.test")).await, older.serial);
    // A newer certificate for the older site takes the name over.
    let newest = f.ca.leaf_with(
        LeafSpec::new("shared.example.test")
            .dns(&["shared.example.test", "old.example.test"])
            .validity(-1, 86_400),
    );
    write_site(f.path(), "b-older", &newest);
    f.until_served("shared.example.test", &newest.serial, &[&newer.serial])
        .await;
}
