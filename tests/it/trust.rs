//! Which CA bundle a resumed session was verified against, and what a rotation of
//! the server certificate alone, or of the client CA bundle alone, may change.
//!
//! A resumed session skips client certificate verification, so it may be resumed
//! only while the CA bundle that verified it is in service; otherwise the server
//! declines it and the client does a full handshake. A rotation of the server
//! certificate leaves the bundle as it was and must not cost any client its
//! session, let alone its connection.

use std::collections::VecDeque;
use std::ffi::{c_int, c_void};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openssl::ssl::{
    ErrorCode, Ssl, SslConnector, SslMethod, SslOptions, SslSession, SslSessionRef, SslStream,
    SslVerifyMode, SslVersion,
};
use openssl::x509::store::X509StoreBuilder;
use openssl_reload::{ClientAuth, Reload, ReloadingAcceptor};

use crate::support::{
    self, eventually, exchange, serve, wait_status, write_atomic, Ca, Leaf, Seen, DEADLINE,
    INTERVAL,
};

/// A poll interval that keeps the poller out of the way: `reload_now` is the only
/// thing that publishes, so it is certain to be the call that returns `Published`.
const NO_POLLING: Duration = Duration::from_secs(3600);

/// One direction of an in-memory connection.
type Buffer = Arc<Mutex<VecDeque<u8>>>;

/// One end of an in-memory duplex pipe: reads what the other end wrote, and
/// reports `WouldBlock` when there is nothing, so that each `connect`/`accept`
/// call runs the handshake as far as the bytes already sent allow.
struct Pipe {
    incoming: Buffer,
    outgoing: Buffer,
}

fn pipe() -> (Pipe, Pipe) {
    let (a, b) = (Buffer::default(), Buffer::default());
    (
        Pipe {
            incoming: a.clone(),
            outgoing: b.clone(),
        },
        Pipe {
            incoming: b,
            outgoing: a,
        },
    )
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut incoming = self.incoming.lock().unwrap();
        if incoming.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(incoming.len());
        for (slot, byte) in buf.iter_mut().zip(incoming.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outgoing.lock().unwrap().extend(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One handshake step: `true` when the handshake is complete on this side,
/// `false` when it waits for the peer's next flight.
fn step(what: &str, result: Result<(), openssl::ssl::Error>) -> bool {
    match result {
        Ok(()) => true,
        Err(e) if e.code() == ErrorCode::WANT_READ => false,
        Err(e) => panic!("{what}: {e}"),
    }
}

extern "C" {
    fn SSL_SESSION_has_ticket(session: *const c_void) -> c_int;
}

/// Whether the client's session holds a ticket (TLS 1.3, or TLS 1.2 with tickets).
fn has_ticket(session: &SslSessionRef) -> bool {
    // SAFETY: a foreign-types reference is the C pointer itself (`as_ptr` is a cast
    // of `&self`), so this is the `SSL_SESSION *` the reference stands for, alive for
    // the borrow; SSL_SESSION_has_ticket (OpenSSL 1.1.1+) only reads it.
    #[allow(unsafe_code)]
    unsafe {
        SSL_SESSION_has_ticket(std::ptr::from_ref(session).cast()) == 1
    }
}

/// A client presenting `identity` (and its chain) and trusting `trust`, pinned
/// to `version`.
fn connector(
    identity: &Leaf,
    trust: &Ca,
    version: SslVersion,
    options: SslOptions,
) -> SslConnector {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(trust.cert.clone()).unwrap();
    b.set_cert_store(store.build());
    b.set_certificate(&identity.cert).unwrap();
    for cert in &identity.chain {
        b.add_extra_chain_cert(cert.clone()).unwrap();
    }
    b.set_private_key(&identity.key).unwrap();
    b.set_min_proto_version(Some(version)).unwrap();
    b.set_max_proto_version(Some(version)).unwrap();
    b.set_options(options);
    b.build()
}

fn tls13_client(identity: &Leaf, trust: &Ca) -> SslConnector {
    connector(identity, trust, SslVersion::TLS1_3, SslOptions::empty())
}

/// Whether the server answered: a TLS 1.3 server refuses a client certificate
/// after the client's side of the handshake completed, so a refusal shows up as
/// an error or as a connection closed without a reply.
fn served(result: &Result<Seen, String>) -> bool {
    matches!(result, Ok(seen) if !seen.reply.is_empty())
}

fn outcome(result: &Result<Seen, String>) -> String {
    match result {
        Ok(seen) if seen.reply.is_empty() => {
            format!("closed without a reply (resumed: {})", seen.resumed)
        }
        Ok(seen) => format!(
            "served (resumed: {}): {:?}",
            seen.resumed,
            seen.reply.trim()
        ),
        Err(e) => format!("failed: {e}"),
    }
}

/// The wall clock in whole seconds, as the crate dates a published context.
fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The clock OpenSSL dates sessions and tickets with: `time(2)`, which on Linux
/// reads the coarse real-time clock and may still show the previous second for a
/// tick after [`unix_secs`] moved on.
fn openssl_secs() -> u64 {
    // SAFETY: time(2) with a null pointer only returns the time.
    #[allow(unsafe_code)]
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    u64::try_from(now).unwrap()
}

/// Waits until both the wall clock and OpenSSL's clock are past second `second`.
async fn past_second(second: u64) {
    eventually(
        &format!("the wall clock and time(2) to pass second {second}"),
        || async { (unix_secs().min(openssl_secs()) > second).then_some(()) },
    )
    .await;
}

fn bundle(cas: &[&Ca]) -> Vec<u8> {
    cas.iter().flat_map(|ca| ca.pem()).collect()
}

/// A server certificate and key and a client CA bundle in a temporary directory.
struct Files {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl Files {
    fn new(server: &Leaf, cas: &[&Ca]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = server.write(dir.path());
        let ca = dir.path().join("client-ca.pem");
        write_atomic(&ca, &bundle(cas));
        Self {
            _dir: dir,
            cert,
            key,
            ca,
        }
    }

    fn dir(&self) -> &Path {
        self.cert.parent().unwrap()
    }
}

/// Rotates the server certificate and key (nothing else) to `leaf` and waits
/// until it is in service.
async fn rotate_server(tls: &ReloadingAcceptor, files: &Files, leaf: &Leaf) {
    leaf.write(files.dir());
    // The poller may have published it already; either way it is in service after.
    tls.reload_now()
        .unwrap_or_else(|e| panic!("the new server certificate is refused: {e}"));
    wait_status(tls, "the new server certificate in service", |s| {
        s.certificate.as_ref().map(|c| c.serial.as_str()) == Some(leaf.serial.as_str())
    })
    .await;
}

/// A full handshake whose ClientHello is answered while the bundle {old, new} is
/// in service and whose client Certificate arrives after a reload to {new}: the
/// old CA's client is verified against the bundle installed at the ClientHello,
/// and its session must not outlive that bundle.
async fn straddling_handshake_never_resumes(case: &str, version: SslVersion, options: SslOptions) {
    let old = Ca::new(&format!("{case} old CA"));
    let new = Ca::new(&format!("{case} new CA"));
    let files = Files::new(&new.leaf("straddle server"), &[&old, &new]);
    let tls = ReloadingAcceptor::builder()
        .identity(&files.cert, &files.key)
        .ca(&files.ca)
        .client_auth(ClientAuth::Required)
        .poll_interval(NO_POLLING)
        .build()
        .unwrap();
    let old_leaf = old.leaf("old client");
    let client = connector(&old_leaf, &new, version, options);

    let (client_io, server_io) = pipe();
    let mut c = SslStream::new(
        client.configure().unwrap().into_ssl("localhost").unwrap(),
        client_io,
    )
    .unwrap();
    let mut s = SslStream::new(Ssl::new(tls.acceptor().context()).unwrap(), server_io).unwrap();
    assert!(!step("client: ClientHello", c.connect()));
    // The servername callback runs here and installs the {old, new} context.
    assert!(!step("server: ServerHello .. Finished", s.accept()));

    drop_old_ca(case, &tls, &files, &new).await;
    finish_handshake(case, &mut c, &mut s);
    assert_eq!(
        s.ssl().peer_certificate().map(|p| support::serial_hex(&p)),
        Some(old_leaf.serial.clone()),
        "{case}: the straddling handshake verified the old CA's client"
    );
    let session = straddling_session(case, &mut c, &mut s, version, options);
    drop((c, s));

    let server = serve(tls.clone()).await;
    let result = exchange(&client, server.addr, Some(&session)).await;
    eprintln!(
        "{case}: the straddling session offered: {}",
        outcome(&result)
    );
    assert!(
        !matches!(&result, Ok(seen) if seen.resumed),
        "{case}: a session verified against the bundle {{old, new}} resumed after the old CA \
         was dropped: {}",
        outcome(&result)
    );
    assert!(
        !served(&result),
        "{case}: the old CA's client was served after its CA was dropped: {}",
        outcome(&result)
    );
}

/// Reloads the client CA bundle to `new` alone, in the middle of a handshake,
/// and waits for a later second than the reload's.
async fn drop_old_ca(case: &str, tls: &ReloadingAcceptor, files: &Files, new: &Ca) {
    write_atomic(&files.ca, &new.pem());
    let reload = tls.reload_now();
    assert!(
        matches!(reload, Ok(Reload::Published(_))),
        "{case}: reload to the new CA alone: {reload:?}"
    );
    assert_eq!(tls.status().ca_certificates, 1);
    // A ticket dated in a later second than the reload: the server dates a TLS 1.3
    // ticket with the time(2) at which it sends it, after the client's Finished.
    // (A TLS 1.2 session keeps the date of its ClientHello, before the reload.)
    past_second(unix_secs()).await;
}

/// Runs the rest of the handshake on both in-memory ends.
fn finish_handshake(case: &str, c: &mut SslStream<Pipe>, s: &mut SslStream<Pipe>) {
    let client_done = step("client: Certificate .. Finished", c.connect());
    assert!(
        step("server: verifies the client and finishes", s.accept()),
        "{case}: the server's handshake did not complete"
    );
    if !client_done {
        assert!(
            step("client: server's Finished", c.connect()),
            "{case}: the client's handshake did not complete"
        );
    }
}

/// The client's session of the completed handshake (with a ticket unless
/// `options` say `NO_TICKET`), both ends closed cleanly.
fn straddling_session(
    case: &str,
    c: &mut SslStream<Pipe>,
    s: &mut SslStream<Pipe>,
    version: SslVersion,
    options: SslOptions,
) -> SslSession {
    // TLS 1.3 tickets come after the handshake: application data behind them
    // makes the client read them.
    s.ssl_write(b"x").unwrap();
    let mut byte = [0; 1];
    assert_eq!(
        c.ssl_read(&mut byte).unwrap(),
        1,
        "{case}: application data"
    );
    let session = c.ssl().session().expect("a session").to_owned();
    let ticket = !options.contains(SslOptions::NO_TICKET);
    assert_eq!(
        has_ticket(&session),
        ticket,
        "{case}: the client's session {} a ticket",
        if ticket { "lacks" } else { "unexpectedly has" }
    );
    assert!(!session.id().is_empty(), "{case}: a session id");
    assert_eq!(session.protocol_version(), version, "{case}");
    // A clean close keeps both sides' session resumable.
    let _ = c.shutdown();
    let _ = s.shutdown();
    session
}

/// A TLS 1.3 handshake that straddles the reload dropping the client's CA gives
/// the client a ticket dated after the reload; resuming it must not get the client
/// in (today the re-check skips sessions newer than the context in service).
#[tokio::test]
async fn straddling_handshake_tls13_never_resumes() {
    straddling_handshake_never_resumes("TLS 1.3", SslVersion::TLS1_3, SslOptions::empty()).await;
}

/// The same with TLS 1.2 and a session ticket. A TLS 1.2 session keeps the date
/// of its ClientHello, before the reload, so today's re-check catches it; this
/// guards the fix.
#[tokio::test]
async fn straddling_handshake_tls12_ticket_never_resumes() {
    straddling_handshake_never_resumes("TLS 1.2 ticket", SslVersion::TLS1_2, SslOptions::empty())
        .await;
}

/// The same with TLS 1.2 and the server's session-ID cache (the client asks for
/// no ticket). Like the ticket case, today's re-check catches it; a guard.
#[tokio::test]
async fn straddling_handshake_tls12_session_id_never_resumes() {
    straddling_handshake_never_resumes(
        "TLS 1.2 session id",
        SslVersion::TLS1_2,
        SslOptions::NO_TICKET,
    )
    .await;
}

/// A server requiring client certificates from the bundle in `files`, polling
/// every [`INTERVAL`]; its own certificate is not checked against that bundle.
fn mtls_server(files: &Files) -> ReloadingAcceptor {
    ReloadingAcceptor::builder()
        .identity(&files.cert, &files.key)
        .ca(&files.ca)
        .client_auth(ClientAuth::Required)
        .check_chain_against_ca(false)
        .poll_interval(INTERVAL)
        .build()
        .unwrap()
}

/// Gets a session for `client`, rotates the server certificate alone, and offers
/// the session: the client must be served, resumed or after a full handshake.
async fn survives_server_rotation(
    what: &str,
    tls: ReloadingAcceptor,
    files: &Files,
    server_ca: &Ca,
    client: &SslConnector,
) {
    let server = serve(tls.clone()).await;
    let first = exchange(client, server.addr, None).await;
    assert!(
        served(&first),
        "{what}: first handshake: {}",
        outcome(&first)
    );
    let session = first.unwrap().session.expect("a TLS 1.3 ticket");
    rotate_server(&tls, files, &server_ca.leaf("rotated server")).await;
    let again = exchange(client, server.addr, Some(&session)).await;
    assert!(
        served(&again),
        "{what}: refused after a rotation of the server certificate alone: {}",
        outcome(&again)
    );
}

/// A client whose leaf comes from an intermediate of the bundle's root (it sends
/// leaf and intermediate) keeps its connection when only the server certificate
/// rotates. Today the re-check of its resumed session has no chain to build from
/// (a ticket carries the leaf only) and the server sends certificate_unknown.
#[tokio::test]
async fn intermediate_issued_client_resumes_after_server_rotation() {
    let root = Ca::new("root CA");
    let intermediate = root.intermediate("client intermediate CA");
    let files = Files::new(&root.leaf("server"), &[&root]);
    let tls = mtls_server(&files);
    let mut leaf = intermediate.leaf("intermediate client");
    leaf.chain = vec![intermediate.cert.clone()];
    let client = tls13_client(&leaf, &root);
    survives_server_rotation("intermediate-issued client", tls, &files, &root, &client).await;
}

/// A client accepted by the policy's verify callback (a self-signed certificate
/// the bundle does not hold) keeps its connection when only the server
/// certificate rotates. Today the re-check verifies it against the bundle alone,
/// without the policy, and the server sends certificate_unknown.
#[tokio::test]
async fn policy_accepted_client_resumes_after_server_rotation() {
    let ca = Ca::new("policy bundle CA");
    let files = Files::new(&ca.leaf("server"), &[&ca]);
    let tls = ReloadingAcceptor::builder()
        .identity(&files.cert, &files.key)
        .ca(&files.ca)
        .client_auth(ClientAuth::Required)
        .check_chain_against_ca(false)
        .poll_interval(INTERVAL)
        .policy(|ctx| {
            ctx.set_verify_callback(
                SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
                |_, _| true,
            );
            Ok(())
        })
        .build()
        .unwrap();
    // A self-signed certificate: a root of its own, in no bundle.
    let own = Ca::new("self-signed client");
    let leaf = Leaf {
        serial: support::serial_hex(&own.cert),
        cert: own.cert,
        key: own.key,
        chain: vec![],
    };
    let client = tls13_client(&leaf, &ca);
    survives_server_rotation("policy-accepted client", tls, &files, &ca, &client).await;
}

/// A plain client of the bundle's CA whose session, the reload of a new server
/// certificate and whose resumption all fall in one wall-clock second keeps its
/// connection: a comparison of whole-second timestamps cannot tell such a session
/// from one made after the reload, nor from one made before it. (Today's re-check
/// verifies such a session and accepts it; this guards the fix.)
#[tokio::test]
async fn same_second_resumption_after_server_rotation() {
    let ca = Ca::new("same-second CA");
    let files = Files::new(&ca.leaf("server"), &[&ca]);
    let tls = mtls_server(&files);
    let client = tls13_client(&ca.leaf("client"), &ca);
    let server = serve(tls.clone()).await;
    let mut same_second = 0;
    for attempt in 1..=5 {
        // Start at the beginning of a second, so the whole attempt fits in it.
        past_second(unix_secs()).await;
        let first = exchange(&client, server.addr, None).await;
        assert!(
            served(&first),
            "attempt {attempt}: first handshake: {}",
            outcome(&first)
        );
        let session = first.unwrap().session.expect("a TLS 1.3 ticket");
        rotate_server(&tls, &files, &ca.leaf(&format!("server {attempt}"))).await;
        let published = tls
            .status()
            .last_reload
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let again = exchange(&client, server.addr, Some(&session)).await;
        let resumed_at = unix_secs();
        assert!(
            served(&again),
            "attempt {attempt}: refused after a rotation of the server certificate alone \
             (session dated {}, reload at {published}, resumption at {resumed_at}): {}",
            session.time(),
            outcome(&again)
        );
        if u64::try_from(session.time()).ok() == Some(published) && published == resumed_at {
            same_second += 1;
        }
    }
    assert!(
        same_second > 0,
        "no attempt put session, reload and resumption in one second"
    );
}

/// Twenty mutual-TLS sessions, then a rotation of the server certificate alone:
/// every one of them still resumes, because the CA bundle that verified them is
/// the one in service. (Today's re-check accepts them; this guards the fix.)
#[tokio::test]
async fn mtls_resumption_survives_server_rotation() {
    let ca = Ca::new("resumption CA");
    let files = Files::new(&ca.leaf("server"), &[&ca]);
    let tls = mtls_server(&files);
    let client = tls13_client(&ca.leaf("client"), &ca);
    let server = serve(tls.clone()).await;
    let mut sessions = Vec::new();
    for i in 0..20 {
        let first = exchange(&client, server.addr, None).await;
        assert!(served(&first), "session {i}: {}", outcome(&first));
        sessions.push(first.unwrap().session.expect("a TLS 1.3 ticket"));
    }
    rotate_server(&tls, &files, &ca.leaf("rotated server")).await;
    let mut lost = Vec::new();
    for (i, session) in sessions.iter().enumerate() {
        let again = exchange(&client, server.addr, Some(session)).await;
        if !matches!(&again, Ok(seen) if seen.resumed && !seen.reply.is_empty()) {
            lost.push(format!("session {i}: {}", outcome(&again)));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of 20 sessions did not resume after a rotation of the server certificate alone: \
         {lost:#?}",
        lost.len()
    );
}

/// A server certificate from a public CA with a private client CA bundle: the
/// server starts without `check_chain_against_ca(false)` (today `build` refuses it
/// as untrusted), serves the private CA's clients, and follows a rotation of the
/// bundle alone from CA A to CA B.
#[tokio::test]
async fn public_server_ca_with_private_client_ca() {
    let public = Ca::new("public CA");
    let private_a = Ca::new("private CA A");
    let private_b = Ca::new("private CA B");
    let files = Files::new(&public.leaf("public server"), &[&private_a]);
    let tls = ReloadingAcceptor::builder()
        .identity(&files.cert, &files.key)
        .ca(&files.ca)
        .client_auth(ClientAuth::Required)
        .poll_interval(INTERVAL)
        .build()
        .unwrap_or_else(|e| {
            panic!("a public server certificate with a private client CA must start: {e}")
        });
    let server = serve(tls.clone()).await;
    let a_client = tls13_client(&private_a.leaf("A client"), &public);
    let b_client = tls13_client(&private_b.leaf("B client"), &public);
    let a = exchange(&a_client, server.addr, None).await;
    assert!(served(&a), "A's client on bundle A: {}", outcome(&a));
    let b = exchange(&b_client, server.addr, None).await;
    assert!(!served(&b), "B's client on bundle A: {}", outcome(&b));

    let generation = tls.status().generation;
    write_atomic(&files.ca, &private_b.pem());
    wait_status(&tls, "bundle B in service", |s| s.generation > generation).await;
    let a = exchange(&a_client, server.addr, None).await;
    assert!(!served(&a), "A's client on bundle B: {}", outcome(&a));
    let b = exchange(&b_client, server.addr, None).await;
    assert!(served(&b), "B's client on bundle B: {}", outcome(&b));
}

/// Runs `make` and drops the acceptor it returns at once, on another thread, so
/// that a drop that never returns fails the test instead of hanging it. Returns
/// how long the drop took, or `None` if it had not returned a second after the
/// acceptor was made.
fn timed_drop(make: impl FnOnce() -> ReloadingAcceptor + Send + 'static) -> Option<Duration> {
    let (tx, rx) = mpsc::channel();
    let (made_tx, made_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let tls = make();
        let _ = made_tx.send(());
        let start = Instant::now();
        drop(tls);
        let _ = tx.send(start.elapsed());
    });
    made_rx
        .recv_timeout(DEADLINE)
        .expect("the acceptor to be built");
    rx.recv_timeout(Duration::from_secs(1)).ok()
}

/// Dropping the last handle of an acceptor with an hour-long poll interval stops
/// its poller at once, right after `build` (today a poller thread that has not
/// taken its lock yet when the stop is signalled misses it and sleeps the whole
/// interval) and after a `reload_now`.
#[test]
fn poller_drop_returns_quickly_with_long_interval() {
    let ca = Ca::new("drop CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf("drop server").write(dir.path());
    let limit = Duration::from_millis(100);
    let build = move || {
        ReloadingAcceptor::builder()
            .identity(&cert, &key)
            .poll_interval(Duration::from_secs(3600))
            .build()
            .unwrap()
    };
    // The window is narrow (from the poller thread's spawn to its first lock), so
    // the drop follows `build` on the same thread, and there are many rounds.
    for i in 0..200 {
        let took = timed_drop(build.clone());
        assert!(
            took.is_some_and(|t| t < limit),
            "drop right after build (round {i}) took {took:?} (None: still blocked after 1 s); \
             the limit is {limit:?}"
        );
    }
    for i in 0..5 {
        let leaf = ca.leaf(&format!("drop server {i}"));
        let (build, path) = (build.clone(), dir.path().to_owned());
        let took = timed_drop(move || {
            let tls = build();
            leaf.write(&path);
            let reload = tls.reload_now();
            assert!(
                matches!(reload, Ok(Reload::Published(_))),
                "round {i}: {reload:?}"
            );
            tls
        });
        assert!(
            took.is_some_and(|t| t < limit),
            "drop after reload_now (round {i}) took {took:?} (None: still blocked after 1 s); \
             the limit is {limit:?}"
        );
    }
}
