//! Mutual TLS both ways: reloaded CA bundles on the server, and the reloading
//! connector on the client, through certificate and CA rotations.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openssl_reload::{ClientAuth, Error, ReloadingAcceptor, ReloadingConnector};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::support::{self, eventually, exchange, write_atomic, Ca, Leaf, LeafSpec, INTERVAL};

/// One line over a connection from `connector` to `addr`; returns the reply.
async fn talk(
    connector: &ReloadingConnector,
    domain: &str,
    addr: SocketAddr,
) -> Result<String, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(domain, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tls.write_all(b"hello\n").await.map_err(|e| e.to_string())?;
    let mut buf = [0; 512];
    let n = tls.read(&mut buf).await.map_err(|e| e.to_string())?;
    if n == 0 {
        // TLS 1.3 reports a refused client certificate only after the handshake.
        return Err("closed by the server".to_owned());
    }
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn bundle(cas: &[&Ca]) -> Vec<u8> {
    cas.iter().flat_map(|ca| ca.pem()).collect()
}

/// A node: a server requiring client certificates and a client presenting one,
/// both trusting `ca.pem` in the node's directory.
struct Node {
    dir: TempDir,
    server: ReloadingAcceptor,
    client: ReloadingConnector,
    addr: SocketAddr,
    _serving: support::Server,
}

impl Node {
    async fn new(ca: &Ca, name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let node = Self::paths(dir.path());
        Self::issue(&node, ca, name);
        write_atomic(&node.ca, &ca.pem());
        let server = ReloadingAcceptor::builder()
            .identity(&node.server_cert, &node.server_key)
            .ca(&node.ca)
            .client_auth(ClientAuth::Required)
            .poll_interval(INTERVAL)
            .build()
            .unwrap();
        let client = ReloadingConnector::builder()
            .identity(&node.client_cert, &node.client_key)
            .ca(&node.ca)
            .poll_interval(INTERVAL)
            .build()
            .unwrap();
        let serving = support::serve(server.clone()).await;
        Self {
            addr: serving.addr,
            dir,
            server,
            client,
            _serving: serving,
        }
    }

    fn paths(dir: &Path) -> NodePaths {
        NodePaths {
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
            ca: dir.join("ca.pem"),
        }
    }

    fn files(&self) -> NodePaths {
        Self::paths(self.dir.path())
    }

    /// Writes a fresh server and client certificate from `ca`.
    fn issue(paths: &NodePaths, ca: &Ca, name: &str) -> (Leaf, Leaf) {
        let server = ca.leaf(&format!("{name} server"));
        let client = ca.leaf(&format!("{name} client"));
        replace_pair(&paths.server_key, &paths.server_cert, &server);
        replace_pair(&paths.client_key, &paths.client_cert, &client);
        (server, client)
    }
}

struct NodePaths {
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    ca: PathBuf,
}

/// Waits until `serial` is in service on `server` or `client` status.
async fn in_service(what: &str, serial: impl Fn() -> Option<String>, want: &str) {
    eventually(what, || async {
        (serial().as_deref() == Some(want)).then_some(())
    })
    .await;
}

/// Both directions between two nodes talking all the time; any failure is counted.
struct Traffic {
    stop: Arc<AtomicBool>,
    exchanges: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Traffic {
    fn start(a: &Node, b: &Node) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let exchanges = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::<String>::new()));
        let (stop2, exchanges2, failures2) = (stop.clone(), exchanges.clone(), failures.clone());
        let (a_client, b_client, a_addr, b_addr) =
            (a.client.clone(), b.client.clone(), a.addr, b.addr);
        let task = tokio::spawn(async move {
            while !stop2.load(Ordering::SeqCst) {
                for (from, to, label) in [(&a_client, b_addr, "a->b"), (&b_client, a_addr, "b->a")]
                {
                    match talk(from, "localhost", to).await {
                        Ok(_) => exchanges2.fetch_add(1, Ordering::SeqCst),
                        Err(e) => {
                            failures2.lock().unwrap().push(format!("{label}: {e}"));
                            0
                        }
                    };
                }
            }
        });
        Self {
            stop,
            exchanges,
            failures,
            task,
        }
    }

    /// Waits for `n` more successful exchanges.
    async fn progress(&self, n: u64) {
        let target = self.exchanges.load(Ordering::SeqCst) + n;
        eventually("traffic to keep flowing", || async {
            (self.exchanges.load(Ordering::SeqCst) >= target).then_some(())
        })
        .await;
    }

    /// Stops the traffic; returns how many exchanges succeeded and the failures.
    async fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        let failures = self.failures.lock().unwrap().clone();
        (self.exchanges.load(Ordering::SeqCst), failures)
    }
}

impl Node {
    /// Writes the bundle {old, new} as the node's CA file and waits until the
    /// server trusts both.
    async fn trust_overlap(&self, old: &Ca, new: &Ca) {
        write_atomic(&self.files().ca, &bundle(&[old, new]));
        eventually("the overlap bundle", || async {
            (self.server.status().ca_certificates == 2).then_some(())
        })
        .await;
    }

    fn server_serial(&self) -> Option<String> {
        self.server.status().certificate.map(|c| c.serial)
    }

    fn client_serial(&self) -> Option<String> {
        self.client.status().certificate.map(|c| c.serial)
    }
}

/// Writes `ca_pem` as every node's CA bundle and waits until the servers and the
/// clients all hold `count` CA certificates.
async fn trust_everywhere(nodes: [&Node; 2], ca_pem: &[u8], count: usize, what: &str) {
    for node in nodes {
        write_atomic(&node.files().ca, ca_pem);
    }
    for node in nodes {
        eventually(what, || async {
            (node.server.status().ca_certificates == count
                && node.client.status().ca_certificates == count)
                .then_some(())
        })
        .await;
    }
}

/// Renames a new key, then its certificate, into place (a key/certificate
/// mismatch in between is what the one-tick grace is for).
fn replace_pair(key: &Path, cert: &Path, leaf: &Leaf) {
    write_atomic(key, &leaf.key_pem());
    write_atomic(cert, &leaf.cert_pem());
}

#[tokio::test]
async fn two_nodes_rotate_everything_without_a_failed_exchange() {
    let old_ca = Ca::new("cluster CA 1");
    let a = Node::new(&old_ca, "a").await;
    let b = Node::new(&old_ca, "b").await;
    let traffic = Traffic::start(&a, &b);
    traffic.progress(10).await;

    // 1. Node A's server certificate rotates.
    let new_a_server = old_ca.leaf("a server 2");
    replace_pair(&a.files().server_key, &a.files().server_cert, &new_a_server);
    let a_server = || a.server_serial();
    in_service("A's new server cert", a_server, &new_a_server.serial).await;
    traffic.progress(10).await;

    // 2. Node B's client certificate rotates.
    let new_b_client = old_ca.leaf("b client 2");
    replace_pair(&b.files().client_key, &b.files().client_cert, &new_b_client);
    let b_client = || b.client_serial();
    in_service("B's new client cert", b_client, &new_b_client.serial).await;
    traffic.progress(10).await;

    // 3. CA rotation: the overlap bundle everywhere, then new leaves, then the new CA alone.
    rotate_ca(&a, &b, &old_ca, &traffic).await;

    let (exchanges, failures) = traffic.stop().await;
    eprintln!(
        "two nodes: {exchanges} exchanges, {} failures",
        failures.len()
    );
    // Reload failures may be counted: the poller can catch a key written before its
    // certificate and refuse the half pair. What must never happen is a failed exchange.
    assert!(failures.is_empty(), "failed exchanges: {failures:?}");
}

/// Moves both nodes from `old_ca` to a new CA through an overlap bundle, with
/// traffic flowing after every step.
async fn rotate_ca(a: &Node, b: &Node, old_ca: &Ca, traffic: &Traffic) {
    let new_ca = Ca::new("cluster CA 2");
    let overlap = bundle(&[old_ca, &new_ca]);
    trust_everywhere([a, b], &overlap, 2, "the overlap bundle everywhere").await;
    traffic.progress(10).await;
    let (a_srv, a_cli) = Node::issue(&a.files(), &new_ca, "a");
    let (b_srv, b_cli) = Node::issue(&b.files(), &new_ca, "b");
    for (node, srv, cli) in [(a, &a_srv, &a_cli), (b, &b_srv, &b_cli)] {
        in_service("new-CA server cert", || node.server_serial(), &srv.serial).await;
        in_service("new-CA client cert", || node.client_serial(), &cli.serial).await;
    }
    traffic.progress(10).await;
    trust_everywhere([a, b], &new_ca.pem(), 1, "the new CA alone everywhere").await;
    traffic.progress(10).await;
}

/// A connector outside any node: presents `leaf` and trusts `ca`.
fn outsider(dir: &Path, leaf: Option<&Leaf>, ca: &Ca) -> ReloadingConnector {
    let ca_path = dir.join("outsider-ca.pem");
    fs::write(&ca_path, ca.pem()).unwrap();
    let mut b = ReloadingConnector::builder()
        .ca(&ca_path)
        .poll_interval(INTERVAL);
    if let Some(leaf) = leaf {
        let (cert, key) = (dir.join("outsider.crt"), dir.join("outsider.key"));
        fs::write(&cert, leaf.cert_pem()).unwrap();
        fs::write(&key, leaf.key_pem()).unwrap();
        b = b.identity(cert, key).check_chain_against_ca(false);
    }
    b.build().unwrap()
}

#[tokio::test]
async fn dropping_the_old_ca_refuses_its_clients() {
    let old_ca = Ca::new("old CA");
    let new_ca = Ca::new("new CA");
    let node = Node::new(&new_ca, "n").await;
    let files = node.files();
    node.trust_overlap(&old_ca, &new_ca).await;

    let dir = tempfile::tempdir().unwrap();
    let old_client = outsider(dir.path(), Some(&old_ca.leaf("old client")), &new_ca);
    talk(&old_client, "localhost", node.addr)
        .await
        .expect("trusted during the overlap");

    write_atomic(&files.ca, &new_ca.pem());
    // The refusal must come within the poll interval plus scheduling margin.
    eventually("the old CA's client to be refused", || async {
        talk(&old_client, "localhost", node.addr)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    // And stays refused, while the node's own client still gets in.
    for _ in 0..5 {
        assert!(talk(&old_client, "localhost", node.addr).await.is_err());
    }
    talk(&node.client, "localhost", node.addr).await.unwrap();
}

#[tokio::test]
async fn client_without_certificate_required_vs_optional() {
    let ca = Ca::new("auth CA");
    let dir = tempfile::tempdir().unwrap();
    let server_leaf = ca.leaf("server");
    let (cert, key) = server_leaf.write(dir.path());
    let ca_path = dir.path().join("ca.pem");
    fs::write(&ca_path, ca.pem()).unwrap();
    let anonymous = outsider(dir.path(), None, &ca);
    let with_cert = outsider(dir.path(), Some(&ca.leaf("client")), &ca);
    for (auth, anonymous_ok) in [(ClientAuth::Required, false), (ClientAuth::Optional, true)] {
        let tls = ReloadingAcceptor::builder()
            .identity(&cert, &key)
            .ca(&ca_path)
            .client_auth(auth)
            .poll_interval(INTERVAL)
            .build()
            .unwrap();
        let server = support::serve(tls).await;
        let result = talk(&anonymous, "localhost", server.addr).await;
        assert_eq!(result.is_ok(), anonymous_ok, "{auth:?}: {result:?}");
        if let Ok(reply) = result {
            assert!(reply.contains("peer=-"), "{reply}");
        }
        let reply = talk(&with_cert, "localhost", server.addr).await.unwrap();
        assert!(
            !reply.contains("peer=-"),
            "{auth:?}: the certificate was seen: {reply}"
        );
    }
}

#[tokio::test]
async fn connector_verifies_hostname_and_ip() {
    let ca = Ca::new("name CA");
    let dir = tempfile::tempdir().unwrap();
    let wrong = ca.leaf_with(LeafSpec::new("elsewhere").dns(&["elsewhere.example"]));
    let (cert, key) = wrong.write(dir.path());
    let server = support::serve(
        ReloadingAcceptor::builder()
            .identity(&cert, &key)
            .build()
            .unwrap(),
    )
    .await;
    let client = outsider(dir.path(), None, &ca);
    let err = talk(&client, "localhost", server.addr).await.unwrap_err();
    assert!(err.contains("handshake"), "{err}");
    talk(&client, "elsewhere.example", server.addr)
        .await
        .expect("the right name");

    // The default leaf names 127.0.0.1 as an IP SAN.
    let right = ca.leaf("ip");
    right.write(dir.path());
    let server = support::serve(
        ReloadingAcceptor::builder()
            .identity(&cert, &key)
            .build()
            .unwrap(),
    )
    .await;
    talk(&client, "127.0.0.1", server.addr)
        .await
        .expect("IP SAN verifies");
    assert!(
        talk(&client, "127.0.0.2", server.addr).await.is_err(),
        "another IP does not"
    );
}

#[tokio::test]
async fn bad_ca_files_keep_the_previous_trust() {
    let ca = Ca::new("trust CA");
    let node = Node::new(&ca, "t").await;
    let files = node.files();
    for (name, bytes) in [
        (
            "garbage",
            Some(b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".to_vec()),
        ),
        ("empty", Some(Vec::new())),
        ("no certificate", Some(ca.leaf("x").key_pem())),
        ("missing", None),
    ] {
        let (server_failures, client_failures) =
            (node.server.status().failures, node.client.status().failures);
        match bytes {
            Some(bytes) => write_atomic(&files.ca, &bytes),
            None => fs::remove_file(&files.ca).unwrap(),
        }
        eventually(
            &format!("{name} CA to be refused by both sides"),
            || async {
                (node.server.status().failures > server_failures
                    && node.client.status().failures > client_failures)
                    .then_some(())
            },
        )
        .await;
        let error = node.server.status().last_error.unwrap();
        assert_eq!(
            error.path.as_deref(),
            Some(files.ca.as_path()),
            "{name}: {}",
            error.message
        );
        // Mutual TLS still works on the trust in service.
        talk(&node.client, "localhost", node.addr)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        write_atomic(&files.ca, &ca.pem());
        eventually("recovery", || async {
            (node.server.status().consecutive_failures == 0
                && node.client.status().consecutive_failures == 0)
                .then_some(())
        })
        .await;
    }
}

#[test]
fn leaf_not_chaining_to_the_bundle_is_refused() {
    let ca = Ca::new("bundle CA");
    let stranger = Ca::new("stranger CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = stranger.leaf("stray").write(dir.path());
    let ca_path = dir.path().join("ca.pem");
    fs::write(&ca_path, ca.pem()).unwrap();
    // Opted in, for a cluster where one CA signs every node.
    let err = ReloadingAcceptor::builder()
        .identity(&cert, &key)
        .ca(&ca_path)
        .client_auth(ClientAuth::Required)
        .check_chain_against_ca(true)
        .check()
        .unwrap_err();
    assert!(matches!(err, Error::Untrusted { .. }), "{err}");
    // OpenSSL's verdict, as its code: X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY.
    assert!(
        matches!(&err, Error::Untrusted { reason, .. } if reason.as_raw() == 20),
        "{err:?}"
    );
    assert!(err.to_string().contains("ca.pem"), "{err}");
    // The default: the bundle verifies clients, the server's certificate may
    // come from anywhere (a public server certificate, a private client CA).
    ReloadingAcceptor::builder()
        .identity(&cert, &key)
        .ca(&ca_path)
        .client_auth(ClientAuth::Required)
        .check()
        .unwrap();
    let err = ReloadingConnector::builder()
        .identity(&cert, &key)
        .ca(&ca_path)
        .check_chain_against_ca(true)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Untrusted { .. }), "{err}");
    ReloadingConnector::builder()
        .identity(&cert, &key)
        .ca(&ca_path)
        .build()
        .expect("the connector's own certificate need not chain to the servers' CA");
}

#[tokio::test]
async fn connector_follows_a_rotated_server_ca() {
    // A plain (non-mTLS) client whose trust bundle rotates.
    let old_ca = Ca::new("srv old");
    let new_ca = Ca::new("srv new");
    let dir = tempfile::tempdir().unwrap();
    let old_leaf = old_ca.leaf("srv");
    let (cert, key) = old_leaf.write(dir.path());
    let tls = ReloadingAcceptor::builder()
        .identity(&cert, &key)
        .poll_interval(INTERVAL)
        .build()
        .unwrap();
    let server = support::serve(tls.clone()).await;
    let client = outsider(dir.path(), None, &old_ca);
    talk(&client, "localhost", server.addr).await.unwrap();
    // The server moves to the new CA; a client that only trusts the old one fails,
    // and follows once its bundle is rotated.
    let new_leaf = new_ca.leaf("srv");
    new_leaf.write(dir.path());
    eventually("server on the new CA", || async {
        (tls.status().certificate.unwrap().serial == new_leaf.serial).then_some(())
    })
    .await;
    assert!(exchange(&support::client(&old_ca.pem()), server.addr, None)
        .await
        .is_err());
    write_atomic(&dir.path().join("outsider-ca.pem"), &new_ca.pem());
    eventually("the connector to trust the new CA", || async {
        talk(&client, "localhost", server.addr).await.ok()
    })
    .await;
}

/// A client presenting `leaf` and trusting `ca`, on TLS 1.3, for session tests.
fn session_client(leaf: &Leaf, ca: &Ca) -> openssl::ssl::SslConnector {
    use openssl::ssl::{SslConnector, SslMethod, SslVersion};
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    let mut store = openssl::x509::store::X509StoreBuilder::new().unwrap();
    store.add_cert(ca.cert.clone()).unwrap();
    b.set_cert_store(store.build());
    b.set_certificate(&leaf.cert).unwrap();
    b.set_private_key(&leaf.key).unwrap();
    b.set_min_proto_version(Some(SslVersion::TLS1_3)).unwrap();
    b.build()
}

#[tokio::test]
async fn resumed_sessions_are_checked_against_the_reloaded_bundle() {
    // OpenSSL skips client verification when it resumes a session; a ticket from
    // before the old CA was dropped must not keep that CA's clients in.
    let old_ca = Ca::new("resume old CA");
    let new_ca = Ca::new("resume new CA");
    let node = Node::new(&new_ca, "r").await;
    let files = node.files();
    node.trust_overlap(&old_ca, &new_ca).await;

    let old_client = session_client(&old_ca.leaf("old client"), &new_ca);
    let new_client = session_client(&new_ca.leaf("new client"), &new_ca);
    let mut sessions = Vec::new();
    for client in [&old_client, &new_client] {
        let first = exchange(client, node.addr, None).await.unwrap();
        let session = first.session.expect("a TLS 1.3 ticket");
        let again = exchange(client, node.addr, Some(&session)).await.unwrap();
        assert!(again.resumed, "resumption works during the overlap");
        sessions.push(again.session.unwrap_or(session));
    }

    write_atomic(&files.ca, &new_ca.pem());
    eventually("the new CA alone", || async {
        (node.server.status().ca_certificates == 1).then_some(())
    })
    .await;
    let refused = exchange(&old_client, node.addr, Some(&sessions[0])).await;
    assert!(
        refused.is_err(),
        "the old CA's client resumed after its CA was dropped"
    );
    assert!(
        exchange(&old_client, node.addr, None).await.is_err(),
        "and a full handshake is refused too"
    );
    // The remaining CA's client was verified by the overlap bundle, which is no
    // longer in service: it is not refused, it does a full handshake against
    // the new bundle, and its new session resumes.
    let kept = exchange(&new_client, node.addr, Some(&sessions[1]))
        .await
        .expect("a client of the remaining CA keeps getting in");
    assert!(
        !kept.resumed,
        "a session of the overlap bundle resumed under another bundle"
    );
    let session = kept.session.expect("a new ticket");
    let again = exchange(&new_client, node.addr, Some(&session))
        .await
        .unwrap();
    assert!(
        again.resumed,
        "the session verified by the new bundle resumes"
    );
}
