//! A context the application owns: `ReloadingAcceptor::attach` (the C
//! interface's default mode) and `install` from the application's own
//! servername callback, over real sockets with the application's own ALPN
//! callback, verify settings and accept loop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;

use openssl::ssl::{
    AlpnError, Ssl, SslAcceptor, SslConnector, SslContext, SslMethod, SslVerifyMode, StatusType,
};
use openssl_reload::{ClientAuth, ReloadingAcceptor};
use tempfile::TempDir;

use crate::support::{self, write_atomic, Ca, LeafSpec, DEADLINE, INTERVAL};

/// The application's context: Mozilla's profile, its own ALPN callback
/// preferring `h2`, no certificate of its own.
fn app_context() -> openssl::ssl::SslAcceptorBuilder {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
    b.set_alpn_select_callback(|_, client| {
        openssl::ssl::select_next_proto(b"\x02h2\x08http/1.1", client).ok_or(AlpnError::NOACK)
    });
    b
}

/// A blocking accept loop, the application's: each connection gets "ok\n".
fn serve(ctx: SslContext) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let ctx = ctx.clone();
            thread::spawn(move || {
                let ssl = Ssl::new(&ctx).unwrap();
                if let Ok(mut tls) = ssl.accept(tcp) {
                    let _ = tls.write_all(b"ok\n");
                    let _ = tls.shutdown();
                }
            });
        }
    });
    addr
}

struct Seen {
    serial: String,
    alpn: Option<String>,
}

/// One connection with SNI `localhost` and ALPN `h2, http/1.1`; `Err` when the
/// handshake or the first read fails (TLS 1.3 refuses a client after it).
fn connect(connector: &SslConnector, addr: SocketAddr) -> Result<Seen, String> {
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let mut config = connector.configure().unwrap();
    config.set_alpn_protos(b"\x02h2\x08http/1.1").unwrap();
    let mut tls = config
        .connect("localhost", tcp)
        .map_err(|e| format!("handshake: {e}"))?;
    let mut buf = [0; 16];
    let n = tls.read(&mut buf).map_err(|e| format!("read: {e}"))?;
    if n == 0 {
        return Err("closed by the server".into());
    }
    let ssl = tls.ssl();
    Ok(Seen {
        serial: support::serial_hex(ssl.peer_certificate().unwrap().as_ref()),
        alpn: ssl
            .selected_alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
    })
}

fn client(ca: &Ca, identity: Option<&support::Leaf>) -> SslConnector {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.cert_store_mut().add_cert(ca.cert.clone()).unwrap();
    if let Some(leaf) = identity {
        b.set_certificate(&leaf.cert).unwrap();
        b.set_private_key(&leaf.key).unwrap();
    }
    b.set_verify(SslVerifyMode::PEER);
    b.build()
}

fn leaf(ca: &Ca) -> support::Leaf {
    ca.leaf_with(LeafSpec::new("localhost").dns(&["localhost"]))
}

/// Retries `check` until it returns `Some`, or panics after the deadline.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {DEADLINE:?}"
        );
        thread::sleep(INTERVAL / 4);
    }
}

/// A server certificate from `server_ca` and a client CA bundle holding
/// `clients` in `dir`, and an application context with reloading attached,
/// served: the acceptor, the bundle's path and the address.
fn attached_with_bundle(
    dir: &Path,
    server_ca: &Ca,
    clients: &Ca,
) -> (ReloadingAcceptor, PathBuf, SocketAddr) {
    leaf(server_ca).write(dir);
    let bundle = dir.join("clients.pem");
    write_atomic(&bundle, &clients.pem());
    let tls = acceptor(dir, Some(&bundle));
    let mut app = app_context();
    tls.attach(&mut app).unwrap();
    let addr = serve(app.build().into_context());
    (tls, bundle, addr)
}

fn acceptor(dir: &Path, ca: Option<&Path>) -> ReloadingAcceptor {
    let mut b = ReloadingAcceptor::builder()
        .identity(dir.join("cert.pem"), dir.join("key.pem"))
        .poll_interval(INTERVAL);
    if let Some(ca) = ca {
        b = b.ca(ca).client_auth(ClientAuth::Required);
    }
    b.build().unwrap()
}

#[test]
fn attached_context_keeps_its_alpn_and_follows_rotations() {
    let dir = TempDir::new().unwrap();
    let ca = Ca::new("attach CA");
    let first = leaf(&ca);
    first.write(dir.path());
    let tls = acceptor(dir.path(), None);
    let mut app = app_context();
    tls.attach(&mut app).unwrap();
    // The application may drop its handle: the context keeps the reloader.
    drop(tls);
    let ctx = app.build().into_context();
    let addr = serve(ctx);
    let connector = client(&ca, None);

    let seen = connect(&connector, addr).unwrap();
    assert_eq!(seen.serial, first.serial);
    assert_eq!(
        seen.alpn.as_deref(),
        Some("h2"),
        "the application's ALPN callback"
    );

    let second = leaf(&ca);
    second.write(dir.path());
    let seen = eventually("the rotated certificate", || {
        connect(&connector, addr)
            .ok()
            .filter(|s| s.serial == second.serial)
    });
    assert_eq!(seen.alpn.as_deref(), Some("h2"));

    // Garbage keeps the certificate in service.
    write_atomic(&dir.path().join("cert.pem"), b"not a certificate");
    for _ in 0..5 {
        assert_eq!(connect(&connector, addr).unwrap().serial, second.serial);
        thread::sleep(INTERVAL);
    }
}

#[test]
fn attached_context_verifies_clients_against_the_reloaded_bundle() {
    let dir = TempDir::new().unwrap();
    let (old_ca, new_ca) = (Ca::new("clients old"), Ca::new("clients new"));
    let server_ca = Ca::new("attach server CA");
    let (tls, bundle, addr) = attached_with_bundle(dir.path(), &server_ca, &old_ca);

    let old_client = client(&server_ca, Some(&old_ca.leaf("old client")));
    let new_client = client(&server_ca, Some(&new_ca.leaf("new client")));
    let anonymous = client(&server_ca, None);
    connect(&old_client, addr).unwrap();
    assert!(
        connect(&anonymous, addr).is_err(),
        "a client without a certificate"
    );
    assert!(
        connect(&new_client, addr).is_err(),
        "a client of a CA not yet trusted"
    );

    write_atomic(&bundle, &new_ca.pem());
    eventually("the new bundle", || connect(&new_client, addr).ok());
    assert!(
        connect(&old_client, addr).is_err(),
        "a client of the dropped CA"
    );
    assert!(tls.status().generation >= 2);
}

#[test]
fn install_from_the_applications_servername_callback() {
    let dir = TempDir::new().unwrap();
    let ca = Ca::new("install CA");
    let first = leaf(&ca);
    first.write(dir.path());
    let tls = acceptor(dir.path(), None);
    // The application switches every handshake to a context of its own, then
    // asks the reloader for the certificate.
    let other = app_context().build().into_context();
    let mut front = app_context();
    let reloader = tls;
    front.set_servername_callback(move |ssl, _| {
        ssl.set_ssl_context(&other).unwrap();
        reloader
            .install(ssl)
            .map_err(|_| openssl::ssl::SniError::ALERT_FATAL)
    });
    let addr = serve(front.build().into_context());
    let connector = client(&ca, None);
    let seen = connect(&connector, addr).unwrap();
    assert_eq!(seen.serial, first.serial);
    assert_eq!(seen.alpn.as_deref(), Some("h2"));
    let second = leaf(&ca);
    second.write(dir.path());
    eventually("the rotated certificate", || {
        connect(&connector, addr)
            .ok()
            .filter(|s| s.serial == second.serial)
    });
}

/// The application's own client connection and context, given the
/// connector's identity: a leaf-only client certificate (no chain at all) and
/// the CA that verifies the server.
#[test]
fn connector_configures_the_applications_own_connection_and_context() {
    let dir = TempDir::new().unwrap();
    let (server_ca, client_ca) = (Ca::new("attach server CA"), Ca::new("attach client CA"));
    let (_tls, _bundle, addr) = attached_with_bundle(dir.path(), &server_ca, &client_ca);

    let client_dir = TempDir::new().unwrap();
    let (cert, key) = client_ca.leaf("app client").write(client_dir.path());
    let server_ca_pem = client_dir.path().join("server-ca.pem");
    write_atomic(&server_ca_pem, &server_ca.pem());
    let client = openssl_reload::ReloadingConnector::builder()
        .identity(cert, key)
        .ca(&server_ca_pem)
        .poll_interval(INTERVAL)
        .build()
        .unwrap();

    let exchange = |ctx: &SslContext, configure_ssl: bool| -> Result<(), String> {
        let mut ssl = Ssl::new(ctx).unwrap();
        if configure_ssl {
            client.configure_ssl(&mut ssl).map_err(|e| e.to_string())?;
        }
        ssl.set_hostname("localhost").unwrap();
        ssl.param_mut().set_host("localhost").unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        let mut tls = ssl.connect(tcp).map_err(|e| format!("handshake: {e}"))?;
        let mut buf = [0; 3];
        tls.read_exact(&mut buf).map_err(|e| format!("read: {e}"))?;
        Ok(())
    };
    let plain = SslContext::builder(SslMethod::tls_client())
        .unwrap()
        .build();
    exchange(&plain, true).unwrap();
    assert!(
        exchange(&plain, false).is_err(),
        "served a client without a certificate"
    );

    let mut own = SslContext::builder(SslMethod::tls_client()).unwrap();
    client.configure_context(&mut own).unwrap();
    exchange(&own.build(), false).unwrap();
}

/// The attached context staples the certificate's `<cert>.ocsp` for clients
/// that ask, through the status callback attach installs.
#[test]
fn attached_context_staples_the_certificates_staple() {
    let dir = TempDir::new().unwrap();
    let ca = support::CliCa::new(Ca::new("attach OCSP CA"));
    let first = leaf(&ca.ca);
    write_atomic(&dir.path().join("cert.pem"), &first.pem_with_issuer(&ca.ca));
    write_atomic(&dir.path().join("key.pem"), &first.key_pem());
    let staple = ca.ocsp(&first.cert, None, false, &[]);
    write_atomic(&dir.path().join("cert.pem.ocsp"), &staple);
    let tls = acceptor(dir.path(), None);
    let mut app = app_context();
    tls.attach(&mut app).unwrap();
    let addr = serve(app.build().into_context());

    let connector = client(&ca.ca, None);
    let mut config = connector.configure().unwrap();
    config.set_status_type(StatusType::OCSP).unwrap();
    let stream = config
        .connect("localhost", TcpStream::connect(addr).unwrap())
        .unwrap();
    assert_eq!(stream.ssl().ocsp_status(), Some(&staple[..]));
}

/// For a certificate the reloader has no staple for, the status callback attach
/// installs calls the one the application had set, which staples its own.
#[test]
fn attached_context_keeps_the_applications_status_callback_without_a_staple() {
    let dir = TempDir::new().unwrap();
    let ca = Ca::new("attach app-staple CA");
    leaf(&ca).write(dir.path());
    let tls = acceptor(dir.path(), None);
    let mut app = app_context();
    app.set_status_callback(|ssl| {
        ssl.set_ocsp_status(b"the application's own staple")?;
        Ok(true)
    })
    .unwrap();
    tls.attach(&mut app).unwrap();
    let addr = serve(app.build().into_context());

    let connector = client(&ca, None);
    let mut config = connector.configure().unwrap();
    config.set_status_type(StatusType::OCSP).unwrap();
    let stream = config
        .connect("localhost", TcpStream::connect(addr).unwrap())
        .unwrap();
    assert_eq!(
        stream.ssl().ocsp_status(),
        Some(&b"the application's own staple"[..])
    );
}

/// Attaching twice is refused and leaves the first attachment serving.
#[test]
fn a_second_attach_is_refused() {
    let dir = TempDir::new().unwrap();
    let ca = Ca::new("attach twice CA");
    let first = leaf(&ca);
    first.write(dir.path());
    let tls = acceptor(dir.path(), None);
    let mut app = app_context();
    tls.attach(&mut app).unwrap();
    let other_dir = TempDir::new().unwrap();
    leaf(&ca).write(other_dir.path());
    let other = acceptor(other_dir.path(), None);
    let error = other.attach(&mut app).unwrap_err();
    assert!(
        matches!(error, openssl_reload::Error::AlreadyAttached),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "a reloader is attached to this context already"
    );
    let addr = serve(app.build().into_context());
    assert_eq!(
        connect(&client(&ca, None), addr).unwrap().serial,
        first.serial
    );
}

/// A session OpenSSL resumed on an attached front context, for a name the
/// application now switches to another context that calls `install`: it is
/// too late for a full handshake, so `install` refuses the resumed session
/// (`Error::ResumedElsewhere`), and a fresh handshake gets the other
/// reloader's certificate.
#[test]
fn install_refuses_a_session_resumed_under_another_binding() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let (front_dir, other_dir) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let ca = Ca::new("install refusal CA");
    leaf(&ca).write(front_dir.path());
    let other_leaf = leaf(&ca);
    other_leaf.write(other_dir.path());
    let (front_tls, other_tls) = (
        acceptor(front_dir.path(), None),
        acceptor(other_dir.path(), None),
    );
    let switched = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicBool::new(false));
    let other_ctx = app_context().build().into_context();
    let mut front = app_context();
    front_tls.attach(&mut front).unwrap();
    let (flag, seen) = (Arc::clone(&switched), Arc::clone(&refused));
    front.set_servername_callback(move |ssl, _| {
        if !flag.load(Ordering::SeqCst) {
            return Ok(());
        }
        ssl.set_ssl_context(&other_ctx).unwrap();
        other_tls.install(ssl).map_err(|e| {
            if matches!(e, openssl_reload::Error::ResumedElsewhere { .. }) {
                seen.store(true, Ordering::SeqCst);
            }
            openssl::ssl::SniError::ALERT_FATAL
        })
    });
    let addr = serve(front.build().into_context());

    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.cert_store_mut().add_cert(ca.cert).unwrap();
    b.set_max_proto_version(Some(openssl::ssl::SslVersion::TLS1_3))
        .unwrap();
    let connector = b.build();
    let talk = |session: Option<&openssl::ssl::SslSessionRef>| {
        let mut ssl = connector
            .configure()
            .unwrap()
            .into_ssl("localhost")
            .unwrap();
        if let Some(session) = session {
            // SAFETY: the session comes from a connection of this connector.
            #[allow(unsafe_code)]
            unsafe {
                ssl.set_session(session).unwrap();
            }
        }
        let mut tls = ssl.connect(TcpStream::connect(addr).unwrap()).ok()?;
        let mut buf = [0; 3];
        tls.read_exact(&mut buf).ok()?;
        // A clean close keeps the session resumable.
        let _ = tls.shutdown();
        let ssl = tls.ssl();
        let serial = support::serial_hex(ssl.peer_certificate().unwrap().as_ref());
        Some((
            ssl.session_reused(),
            serial,
            ssl.session().unwrap().to_owned(),
        ))
    };
    let (_, _, session) = talk(None).expect("a full handshake on the front context");
    let (resumed, _, session) = talk(Some(&session)).expect("resumed on the front context");
    assert!(
        resumed,
        "the control: the session resumes where it was made"
    );

    switched.store(true, Ordering::SeqCst);
    assert!(
        talk(Some(&session)).is_none(),
        "a session made on the front context was served after the switch"
    );
    assert!(
        refused.load(Ordering::SeqCst),
        "install refused it as resumed elsewhere"
    );
    let (resumed, serial, _) = talk(None).expect("a fresh handshake");
    assert!(!resumed);
    assert_eq!(serial, other_leaf.serial);
}

/// `update_attached_contexts`: the context's own certificate is the one in
/// service, from `attach` on and again after a rotation (put there by the
/// first handshake that sees it); connections are served the same either way.
#[test]
fn an_updated_context_carries_the_certificate_in_service() {
    let dir = TempDir::new().unwrap();
    let ca = Ca::new("attach update CA");
    let first = leaf(&ca);
    first.write(dir.path());
    let own = |ctx: &SslContext| ctx.certificate().map(support::serial_hex);
    for update in [true, false] {
        first.write(dir.path());
        let tls = ReloadingAcceptor::builder()
            .identity(dir.path().join("cert.pem"), dir.path().join("key.pem"))
            .poll_interval(INTERVAL)
            .update_attached_contexts(update)
            .build()
            .unwrap();
        let mut app = app_context();
        tls.attach(&mut app).unwrap();
        let ctx = app.build().into_context();
        assert_eq!(
            own(&ctx),
            update.then(|| first.serial.clone()),
            "after attach"
        );
        let addr = serve(ctx.clone());
        let connector = client(&ca, None);
        assert_eq!(connect(&connector, addr).unwrap().serial, first.serial);

        let second = leaf(&ca);
        second.write(dir.path());
        eventually("the rotated certificate", || {
            connect(&connector, addr)
                .ok()
                .filter(|s| s.serial == second.serial)
        });
        assert_eq!(
            own(&ctx),
            update.then(|| second.serial.clone()),
            "after a rotation"
        );
        for _ in 0..3 {
            assert_eq!(connect(&connector, addr).unwrap().serial, second.serial);
        }
    }
}
