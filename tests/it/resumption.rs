//! The resumption matrix: a session resumes only where a full handshake with the
//! same client certificate and SNI name, on the same application context, would
//! succeed at that moment.
//!
//! Each cell sets a server up, makes a full handshake and keeps the client's
//! session, applies one change (waiting until the server has reloaded it),
//! offers the session again, then makes a fresh full handshake with the same
//! client and name. A session that resumes where the fresh handshake fails is a
//! hole. Every cell runs the three kinds of session (TLS 1.3 ticket, TLS 1.2
//! ticket, TLS 1.2 session-ID cache) against one of four ways of serving:
//!
//! - `front`: the crate's own acceptor;
//! - `attach`: an application context with a reloader attached;
//! - `install`: an application context whose servername callback calls `install`;
//! - `switch`: two attached contexts, the second chosen by the first's
//!   servername callback.
//!
//! Each test collects its failing cells, named `mode/change/kind`, and fails
//! once with all of them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use openssl::ssl::{
    NameType, SniError, Ssl, SslAcceptor, SslAcceptorBuilder, SslConnector, SslContext,
    SslContextBuilder, SslMethod, SslOptions, SslSession, SslSessionRef, SslVerifyMode, SslVersion,
};
use openssl_reload::{ClientAuth, ReloadingAcceptor, ReloadingAcceptorBuilder};
use tempfile::TempDir;

use crate::support::{
    openssl_time_ago, serial_hex, write_atomic, Ca, CliCa, Leaf, LeafSpec, DEADLINE, INTERVAL,
};

/// How long one connection may wait for the other end before it counts as refused.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The kinds of session every cell runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tls13Ticket,
    Tls12Ticket,
    Tls12SessionId,
}

const KINDS: [Kind; 3] = [Kind::Tls13Ticket, Kind::Tls12Ticket, Kind::Tls12SessionId];

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::Tls13Ticket => "tls13_ticket",
            Self::Tls12Ticket => "tls12_ticket",
            Self::Tls12SessionId => "tls12_session_id",
        }
    }
}

/// The cell's name in every message: `mode/change/kind`.
fn cell_name(mode: &str, change: &str, kind: Kind) -> String {
    format!("{mode}/{change}/{}", kind.label())
}

/// A client of `kind` (version pinned; no tickets for the session-ID cache)
/// trusting `server_ca`, presenting `identity` if any.
fn client(kind: Kind, server_ca: &Ca, identity: Option<&Leaf>) -> SslConnector {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.cert_store_mut().add_cert(server_ca.cert.clone()).unwrap();
    if let Some(leaf) = identity {
        b.set_certificate(&leaf.cert).unwrap();
        b.set_private_key(&leaf.key).unwrap();
    }
    let version = match kind {
        Kind::Tls13Ticket => SslVersion::TLS1_3,
        Kind::Tls12Ticket | Kind::Tls12SessionId => SslVersion::TLS1_2,
    };
    b.set_min_proto_version(Some(version)).unwrap();
    b.set_max_proto_version(Some(version)).unwrap();
    if kind == Kind::Tls12SessionId {
        b.set_options(SslOptions::NO_TICKET);
    }
    b.build()
}

/// An application's server context: Mozilla's intermediate profile (server
/// session cache on) and its own session id context.
fn app_context(sid_ctx: &[u8]) -> SslAcceptorBuilder {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
    b.set_session_id_context(sid_ctx).unwrap();
    b
}

/// The application's blocking accept loop on 127.0.0.1:0: each connection, made
/// from `ctx`, gets its handshake, `ok\n` and a clean close. Stops when dropped.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn serve(ctx: SslContext) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let thread = thread::spawn(move || {
        for tcp in listener.incoming() {
            if stopped.load(Ordering::SeqCst) {
                return;
            }
            let Ok(tcp) = tcp else { continue };
            let _ = tcp.set_read_timeout(Some(IO_TIMEOUT));
            let _ = tcp.set_write_timeout(Some(IO_TIMEOUT));
            let ssl = Ssl::new(&ctx).unwrap();
            thread::spawn(move || {
                if let Ok(mut tls) = ssl.accept(tcp) {
                    let _ = tls.write_all(b"ok\n");
                    let _ = tls.shutdown();
                }
            });
        }
    });
    Server {
        addr,
        stop,
        thread: Some(thread),
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where a connection goes: an address and the SNI name (also the host name checked).
#[derive(Clone, Copy)]
struct Target {
    addr: SocketAddr,
    sni: &'static str,
}

/// What one connection saw: whether it resumed, whether it was served (the
/// handshake and one read of the server's `ok`), the server certificate's
/// serial, and the session it left.
struct Outcome {
    resumed: bool,
    served: Result<(), String>,
    serial: String,
    session: Option<SslSession>,
}

impl Outcome {
    fn served(&self) -> bool {
        self.served.is_ok()
    }

    fn describe(&self) -> String {
        let served = match &self.served {
            Ok(()) => "served".to_owned(),
            Err(e) => format!("refused ({e})"),
        };
        format!("resumed={}, {served}", self.resumed)
    }
}

/// Connects to `to`, offering `session` if any; a clean close keeps the
/// session resumable. TLS 1.3 refuses a client certificate after the client's
/// handshake, so the read is what tells.
fn connect(client: &SslConnector, to: Target, session: Option<&SslSessionRef>) -> Outcome {
    let refused = |e: String| Outcome {
        resumed: false,
        served: Err(e),
        serial: String::new(),
        session: None,
    };
    let tcp = TcpStream::connect(to.addr).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut ssl = client.configure().unwrap().into_ssl(to.sni).unwrap();
    if let Some(session) = session {
        // SAFETY: `set_session` is unsafe because the session must come from a
        // compatible context; every session offered here comes from this client.
        #[allow(unsafe_code)]
        unsafe {
            ssl.set_session(session).unwrap();
        }
    }
    let mut tls = match ssl.connect(tcp) {
        Ok(tls) => tls,
        Err(e) => return refused(format!("handshake: {e}")),
    };
    let resumed = tls.ssl().session_reused();
    let serial = tls
        .ssl()
        .peer_certificate()
        .map(|c| serial_hex(&c))
        .unwrap_or_default();
    let mut buf = [0; 3];
    let served = match tls.read(&mut buf) {
        Ok(0) => Err("closed by the server".to_owned()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("read: {e}")),
    };
    if served.is_ok() {
        // TLS 1.3 tickets came with the read; close_notify keeps them resumable.
        let _ = tls.shutdown();
    }
    Outcome {
        resumed,
        served,
        serial,
        session: tls.ssl().session().map(ToOwned::to_owned),
    }
}

/// The failing cells of one test, reported together when it ends.
#[derive(Default)]
struct Report(Vec<String>);

impl Report {
    fn check(&mut self, ok: bool, cell: &str, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(format!("{cell}: {}", what()));
        }
    }

    fn finish(self) {
        assert!(
            self.0.is_empty(),
            "{} failing cell(s):\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

/// What a cell saw after its change: the session offered again, and a fresh
/// full handshake with the same client and name.
struct After {
    again: Outcome,
    fresh: Outcome,
}

/// Steps 2 to 5 of a cell: a full handshake to `first`, keeping its session;
/// with `baseline`, the session offered to `first` must resume before anything
/// changes (so that "did not resume" below is about the change); `change`; the
/// session offered to `then`; a fresh full handshake to `then`. Checks the
/// invariant: a session resumes only where the fresh handshake passes.
fn run(
    report: &mut Report,
    cell: &str,
    client: &SslConnector,
    first: Target,
    then: Target,
    baseline: bool,
    change: impl FnOnce(),
) -> Option<After> {
    let made = connect(client, first, None);
    if let Err(e) = &made.served {
        report.check(false, cell, || {
            format!("setup: the first full handshake: {e}")
        });
        return None;
    }
    let mut session = made.session.expect("a session after a full handshake");
    if baseline {
        let own = connect(client, first, Some(&session));
        report.check(own.resumed && own.served(), cell, || {
            format!(
                "setup: before the change the session does not resume where it was made: {}",
                own.describe()
            )
        });
        session = own.session.unwrap_or(session);
    }
    change();
    let again = connect(client, then, Some(&session));
    let fresh = connect(client, then, None);
    report.check(!again.resumed || fresh.served(), cell, || {
        format!(
            "the session resumed ({}) where a fresh full handshake fails: {}",
            again.describe(),
            fresh.describe()
        )
    });
    Some(After { again, fresh })
}

/// After a change that refuses the client: the fresh handshake must fail;
/// `run` checked that the session then did not resume.
fn expect_refused(report: &mut Report, cell: &str, after: &After) {
    report.check(!after.fresh.served(), cell, || {
        format!(
            "a fresh full handshake still passes after the change: {}",
            after.fresh.describe()
        )
    });
}

/// Nothing changed: the session is served, resumed where `resumes`, and a
/// fresh handshake passes.
fn expect_unchanged(report: &mut Report, cell: &str, after: &After, resumes: bool) {
    report.check(after.again.served() && after.fresh.served(), cell, || {
        format!(
            "not served: session {}, fresh {}",
            after.again.describe(),
            after.fresh.describe()
        )
    });
    if resumes {
        report.check(after.again.resumed, cell, || {
            format!("the session did not resume: {}", after.again.describe())
        });
    }
}

/// Waits until `done` holds; panics naming the cell and `what` after DEADLINE.
fn wait_until(cell: &str, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < DEADLINE,
            "{cell}: setup: {what} not in service within {DEADLINE:?}"
        );
        thread::sleep(INTERVAL / 4);
    }
}

/// A server leaf from `srv` for `names`.
fn server_leaf(srv: &Ca, names: &[&str]) -> Leaf {
    srv.leaf_with(LeafSpec::new(names[0]).dns(names))
}

/// Writes `leaf` as one `NAME.pem` holding certificate and key, a directory site.
fn write_pem_site(dir: &Path, name: &str, leaf: &Leaf) {
    let mut pem = leaf.cert_pem();
    pem.extend(leaf.key_pem());
    write_atomic(&dir.join(format!("{name}.pem")), &pem);
}

/// How a single reloader is served.
#[derive(Clone, Copy)]
enum Mode {
    Front,
    Attach,
    /// Attached with `update_attached_contexts`: the context carries the
    /// certificates in service and the callback installs none.
    AttachUpdating,
    Install,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Self::Front => "front",
            Self::Attach => "attach",
            Self::AttachUpdating => "attach-updating",
            Self::Install => "install",
        }
    }

    /// Builds `b` as this mode needs.
    fn build(self, b: ReloadingAcceptorBuilder) -> ReloadingAcceptor {
        b.update_attached_contexts(matches!(self, Self::AttachUpdating))
            .build()
            .unwrap()
    }

    /// Whether sessions of this mode must resume when nothing changed.
    fn resumes(self) -> bool {
        !matches!(self, Self::Install)
    }
}

/// Serves `tls` as `mode` does: its own acceptor's context, an application
/// context it is attached to, or an application front context whose
/// servername callback switches to another of its contexts and calls `install`.
fn serve_as(mode: Mode, tls: &ReloadingAcceptor) -> Server {
    match mode {
        Mode::Front => serve(tls.acceptor().context().to_owned()),
        Mode::Attach | Mode::AttachUpdating => {
            let mut app = app_context(b"app");
            tls.attach(&mut app).unwrap();
            serve(app.build().into_context())
        }
        Mode::Install => {
            let other = app_context(b"app").build().into_context();
            let mut front = app_context(b"app");
            let reloader = tls.clone();
            front.set_servername_callback(move |ssl, _| {
                ssl.set_ssl_context(&other)
                    .map_err(|_| SniError::ALERT_FATAL)?;
                reloader.install(ssl).map_err(|_| SniError::ALERT_FATAL)
            });
            serve(front.build().into_context())
        }
    }
}

/// A server for `name` that requires client certificates: the CA bundle
/// {CA1, CA2}, a client of CA1, and optionally CA1's CRL, all in one directory.
struct Mtls {
    dir: TempDir,
    ca1: CliCa,
    ca2: Ca,
    client: Leaf,
}

impl Mtls {
    fn new(srv: &Ca, name: &str, crl: bool) -> Self {
        let dir = TempDir::new().unwrap();
        let ca1 = CliCa::new(Ca::new("matrix clients CA1"));
        let ca2 = Ca::new("matrix clients CA2");
        let client = ca1.ca.leaf("matrix client");
        server_leaf(srv, &[name]).write(dir.path());
        write_atomic(
            &dir.path().join("ca.pem"),
            &[ca1.ca.pem(), ca2.pem()].concat(),
        );
        if crl {
            write_atomic(&dir.path().join("crl.pem"), &ca1.crl(&[]));
        }
        Self {
            dir,
            ca1,
            ca2,
            client,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn builder(&self) -> ReloadingAcceptorBuilder {
        let mut b = ReloadingAcceptor::builder()
            .identity(self.path("cert.pem"), self.path("key.pem"))
            .ca(self.path("ca.pem"))
            .client_auth(ClientAuth::Required)
            .poll_interval(INTERVAL);
        if self.path("crl.pem").exists() {
            b = b.crl(self.path("crl.pem"));
        }
        b
    }

    /// Revokes the client and publishes CA1's new CRL (`openssl ca -gencrl`
    /// with `extra`); waits until it is in service.
    fn revoke_client(&self, tls: &ReloadingAcceptor, cell: &str, extra: &[&str]) -> Vec<u8> {
        self.ca1.revoke(&self.client.cert);
        let crl = self.ca1.crl(extra);
        write_atomic(&self.path("crl.pem"), &crl);
        wait_until(cell, "the CRL revoking the client", || {
            tls.status().crls.first().is_some_and(|c| c.revoked == 1)
        });
        crl
    }
}

/// One cell over [`Mtls`] for `a.example`, served as `mode`: the reloader,
/// its server (stopped when dropped) and a client of CA1.
struct MtlsCell {
    cell: String,
    mode: Mode,
    f: Mtls,
    tls: ReloadingAcceptor,
    server: Server,
    client: SslConnector,
}

impl MtlsCell {
    fn new(srv: &Ca, mode: Mode, change: &str, kind: Kind, crl: bool) -> Self {
        let f = Mtls::new(srv, "a.example", crl);
        let tls = mode.build(f.builder());
        let server = serve_as(mode, &tls);
        let client = client(kind, srv, Some(&f.client));
        Self {
            cell: cell_name(mode.label(), change, kind),
            mode,
            f,
            tls,
            server,
            client,
        }
    }

    /// [`run`] to `a.example` and back, with the mode's baseline, and a change
    /// that must refuse the client.
    fn refused_after(&self, report: &mut Report, change: impl FnOnce()) {
        let at = Target {
            addr: self.server.addr,
            sni: "a.example",
        };
        let resumes = self.mode.resumes();
        if let Some(after) = run(report, &self.cell, &self.client, at, at, resumes, change) {
            expect_refused(report, &self.cell, &after);
        }
    }
}

/// `control`: nothing changes; the session goes back to the server that made it.
fn control(report: &mut Report, srv: &Ca, mode: Mode, kind: Kind) {
    let c = MtlsCell::new(srv, mode, "control", kind, false);
    let at = Target {
        addr: c.server.addr,
        sni: "a.example",
    };
    if let Some(after) = run(report, &c.cell, &c.client, at, at, false, || {}) {
        expect_unchanged(report, &c.cell, &after, mode.resumes());
    }
}

/// `ca_dropped`: the bundle goes from {CA1, CA2} to {CA2}; the client is CA1's.
fn ca_dropped(report: &mut Report, srv: &Ca, mode: Mode, kind: Kind) {
    let c = MtlsCell::new(srv, mode, "ca_dropped", kind, false);
    c.refused_after(report, || {
        write_atomic(&c.f.path("ca.pem"), &c.f.ca2.pem());
        wait_until(&c.cell, "the bundle without CA1", || {
            c.tls.status().ca_certificates == 1
        });
    });
}

/// `crl_revoked`: a CRL written after the session was made revokes the client.
fn crl_revoked(report: &mut Report, srv: &Ca, mode: Mode, kind: Kind) {
    let c = MtlsCell::new(srv, mode, "crl_revoked", kind, true);
    c.refused_after(report, || {
        c.f.revoke_client(&c.tls, &c.cell, &[]);
    });
}

/// `delta_crl`: a base CRL revoking the client, then a newer delta CRL of it
/// revoking nothing appended to the same file (`openssl crl -gendelta`). The
/// server either refuses the file, keeping the base, or honours the delta:
/// either way the client stays revoked. The delta's lastUpdate is a minute
/// after the base's, as it is when a CA issues deltas between full CRLs.
fn delta_crl(report: &mut Report, srv: &Ca, mode: Mode, kind: Kind) {
    let c = MtlsCell::new(srv, mode, "delta_crl", kind, true);
    c.refused_after(report, || {
        let (base_at, newer_at) = (openssl_time_ago(120), openssl_time_ago(60));
        let base =
            c.f.revoke_client(&c.tls, &c.cell, &["-crl_lastupdate", &base_at]);
        let failures = c.tls.status().failures;
        let newer = c.f.ca1.crl(&["-crl_lastupdate", &newer_at]);
        let delta = gendelta(&c.f, &base, &newer);
        write_atomic(&c.f.path("crl.pem"), &[base, delta].concat());
        wait_until(
            &c.cell,
            "the base and delta CRL file (or its refusal)",
            || {
                let status = c.tls.status();
                status.crls.len() == 2 || status.failures > failures
            },
        );
    });
}

/// The delta CRL from `base` to `newer` (`openssl crl -gendelta`, signed by CA1):
/// Delta CRL Indicator = base's number, revoking what `newer` adds to `base`.
fn gendelta(f: &Mtls, base: &[u8], newer: &[u8]) -> Vec<u8> {
    let (base_path, newer_path, key_path) = (
        f.path("delta-base.crl"),
        f.path("delta-newer.crl"),
        f.path("delta-ca.key"),
    );
    std::fs::write(&base_path, base).unwrap();
    std::fs::write(&newer_path, newer).unwrap();
    std::fs::write(&key_path, f.ca1.ca.key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let out = Command::new("openssl")
        .arg("crl")
        .arg("-in")
        .arg(&base_path)
        .arg("-gendelta")
        .arg(&newer_path)
        .arg("-key")
        .arg(&key_path)
        .arg("-sha256")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl crl -gendelta: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `sni_moved`: site X serves `a.example` and `b.example`, site Y `c.example`;
/// after the session for `a.example`, `a.example` moves to Y. A fresh handshake
/// gets Y's certificate; the session must not resume.
fn sni_moved(report: &mut Report, srv: &Ca, mode: Mode, kind: Kind) {
    let cell = cell_name(mode.label(), "sni_moved", kind);
    let dir = TempDir::new().unwrap();
    write_pem_site(
        dir.path(),
        "x",
        &server_leaf(srv, &["a.example", "b.example"]),
    );
    write_pem_site(dir.path(), "y", &server_leaf(srv, &["c.example"]));
    let tls = mode.build(
        ReloadingAcceptor::builder()
            .site_dir(dir.path())
            .poll_interval(INTERVAL),
    );
    let server = serve_as(mode, &tls);
    let client = client(kind, srv, None);
    let at = Target {
        addr: server.addr,
        sni: "a.example",
    };
    let (x, y) = (
        server_leaf(srv, &["b.example"]),
        server_leaf(srv, &["a.example", "c.example"]),
    );
    let change = || {
        write_pem_site(dir.path(), "x", &x);
        write_pem_site(dir.path(), "y", &y);
        wait_until(&cell, "a.example on site y", || {
            let sites = tls.sites();
            let names = |n: &str| {
                sites
                    .iter()
                    .find(|s| s.name == n)
                    .map(|s| s.names.clone())
                    .unwrap_or_default()
            };
            names("y").iter().any(|n| n == "a.example")
                && !names("x").iter().any(|n| n == "a.example")
        });
    };
    if let Some(after) = run(report, &cell, &client, at, at, mode.resumes(), change) {
        report.check(!after.again.resumed, &cell, || {
            "the session for a.example resumed after a.example moved to another site".to_owned()
        });
        report.check(
            after.again.served() && after.again.serial == y.serial,
            &cell,
            || {
                format!(
                    "the session's connection did not get site y's certificate: {}, serial {} (y: {})",
                    after.again.describe(),
                    after.again.serial,
                    y.serial
                )
            },
        );
        report.check(
            after.fresh.served() && after.fresh.serial == y.serial,
            &cell,
            || format!("fresh handshake: {}", after.fresh.describe()),
        );
    }
}

/// `same_stem`: one directory holds `www.pem` (for `a.example`) and `www/`
/// with `tls.crt` and `tls.key` (for `b.example`): two sites named `www`. A
/// session for `a.example` offered with SNI `b.example` must not resume.
fn same_stem(report: &mut Report, srv: &Ca, mode: Mode, kind: Kind) {
    let cell = cell_name(mode.label(), "same_stem", kind);
    let dir = TempDir::new().unwrap();
    let a = server_leaf(srv, &["a.example"]);
    let b = server_leaf(srv, &["b.example"]);
    write_pem_site(dir.path(), "www", &a);
    let sub = dir.path().join("www");
    std::fs::create_dir(&sub).unwrap();
    write_atomic(&sub.join("tls.crt"), &b.cert_pem());
    write_atomic(&sub.join("tls.key"), &b.key_pem());
    let tls = mode.build(
        ReloadingAcceptor::builder()
            .site_dir(dir.path())
            .poll_interval(INTERVAL),
    );
    let serving = tls.sites().iter().filter(|s| s.serving).count();
    report.check(serving == 2, &cell, || {
        format!(
            "setup: {serving} sites served, not both: {:#?}",
            tls.sites()
        )
    });
    let server = serve_as(mode, &tls);
    let client = client(kind, srv, None);
    let (on_a, on_b) = (
        Target {
            addr: server.addr,
            sni: "a.example",
        },
        Target {
            addr: server.addr,
            sni: "b.example",
        },
    );
    if let Some(after) = run(report, &cell, &client, on_a, on_b, mode.resumes(), || {}) {
        report.check(!after.again.resumed, &cell, || {
            format!(
                "the session for a.example resumed with SNI b.example: {}",
                after.again.describe()
            )
        });
        report.check(
            after.fresh.served() && after.fresh.serial == b.serial,
            &cell,
            || format!("fresh handshake for b.example: {}", after.fresh.describe()),
        );
    }
}

/// OpenSSL's `SSL_CTRL_SET_TLSEXT_TICKET_KEYS` (ssl.h); openssl-sys lacks it.
const SSL_CTRL_SET_TLSEXT_TICKET_KEYS: std::ffi::c_int = 59;

/// Gives `ctx` the 80 bytes of ticket keys `keys` (name, HMAC key, AES key), as
/// servers that share tickets do.
fn set_ticket_keys(ctx: &mut SslContextBuilder, keys: &[u8; 80]) {
    // SAFETY: `ctx` is live; OpenSSL copies the 80 bytes and keeps no pointer.
    #[allow(unsafe_code)]
    let ok = unsafe {
        openssl_sys::SSL_CTX_ctrl(
            ctx.as_ptr(),
            SSL_CTRL_SET_TLSEXT_TICKET_KEYS,
            80,
            keys.as_ptr().cast_mut().cast::<std::ffi::c_void>(),
        )
    };
    assert_eq!(ok, 1, "SSL_CTX_set_tlsext_ticket_keys");
}

/// `other_context_verify_mode`: contexts PUBLIC (no client authentication,
/// session id context `public`) and INTERNAL (the application's own
/// `PEER | FAIL_IF_NO_PEER_CERT` and CA store, `internal`) on two ports, both
/// attached to one reloader without a CA, with the same ticket keys. A client
/// without a certificate takes a session from PUBLIC to INTERNAL, same name.
fn other_context_verify_mode(report: &mut Report, srv: &Ca, kind: Kind) {
    let cell = cell_name("attach", "other_context_verify_mode", kind);
    let dir = TempDir::new().unwrap();
    server_leaf(srv, &["svc.example"]).write(dir.path());
    let tls = ReloadingAcceptor::builder()
        .identity(dir.path().join("cert.pem"), dir.path().join("key.pem"))
        .poll_interval(INTERVAL)
        .build()
        .unwrap();
    let mut keys = [0; 80];
    openssl::rand::rand_bytes(&mut keys).unwrap();
    let internal_ca = Ca::new("matrix internal clients CA");
    let mut public = app_context(b"public");
    set_ticket_keys(&mut public, &keys);
    tls.attach(&mut public).unwrap();
    let mut internal = app_context(b"internal");
    internal.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    internal
        .cert_store_mut()
        .add_cert(internal_ca.cert)
        .unwrap();
    set_ticket_keys(&mut internal, &keys);
    tls.attach(&mut internal).unwrap();
    let (public, internal) = (
        serve(public.build().into_context()),
        serve(internal.build().into_context()),
    );
    let client = client(kind, srv, None);
    let (on_public, on_internal) = (
        Target {
            addr: public.addr,
            sni: "svc.example",
        },
        Target {
            addr: internal.addr,
            sni: "svc.example",
        },
    );
    if let Some(after) = run(report, &cell, &client, on_public, on_internal, true, || {}) {
        expect_refused(report, &cell, &after);
    }
}

/// The `switch` mode: context A attached to reloader R1 (`a.example`, no client
/// CA, the default for unknown names), context B attached to reloader R2
/// (`b.example`, client certificates of CA1 required). Every connection starts
/// on A, whose servername callback switches to B for `b.example`; tickets and
/// the session cache are A's.
struct Switch {
    server: Server,
    mtls: Mtls,
    _r1: ReloadingAcceptor,
    _r2: ReloadingAcceptor,
    _dir: TempDir,
}

impl Switch {
    fn new(srv: &Ca) -> Self {
        let dir = TempDir::new().unwrap();
        server_leaf(srv, &["a.example"]).write(dir.path());
        let r1 = ReloadingAcceptor::builder()
            .identity(dir.path().join("cert.pem"), dir.path().join("key.pem"))
            .poll_interval(INTERVAL)
            .build()
            .unwrap();
        let mtls = Mtls::new(srv, "b.example", false);
        let r2 = mtls.builder().build().unwrap();
        let mut b = app_context(b"b");
        r2.attach(&mut b).unwrap();
        let b = b.build().into_context();
        let mut a = app_context(b"a");
        r1.attach(&mut a).unwrap();
        a.set_servername_callback(move |ssl, _| {
            if ssl.servername(NameType::HOST_NAME) == Some("b.example") {
                ssl.set_ssl_context(&b).map_err(|_| SniError::ALERT_FATAL)?;
            }
            Ok(())
        });
        Self {
            server: serve(a.build().into_context()),
            mtls,
            _r1: r1,
            _r2: r2,
            _dir: dir,
        }
    }

    fn target(&self, sni: &'static str) -> Target {
        Target {
            addr: self.server.addr,
            sni,
        }
    }
}

/// `switch/control_a` and `switch/control_b`: nothing changes; a session made on
/// A (no certificate) and one made on B (a client of CA1) go back to where they
/// were made. Resumption is not required: sessions that end on another context
/// than they began on may well be full handshakes.
fn switch_control(report: &mut Report, srv: &Ca, kind: Kind) {
    let f = Switch::new(srv);
    for (change, sni, identity) in [
        ("control_a", "a.example", None),
        ("control_b", "b.example", Some(&f.mtls.client)),
    ] {
        let cell = cell_name("switch", change, kind);
        let client = client(kind, srv, identity);
        let at = f.target(sni);
        if let Some(after) = run(report, &cell, &client, at, at, false, || {}) {
            expect_unchanged(report, &cell, &after, false);
        }
    }
}

/// `switch_cross_name`: a session from `a.example` (A, no certificate) offered
/// with SNI `b.example`, which B serves only to clients with a certificate.
fn switch_cross_name(report: &mut Report, srv: &Ca, kind: Kind) {
    let cell = cell_name("switch", "switch_cross_name", kind);
    let f = Switch::new(srv);
    let client = client(kind, srv, None);
    let (on_a, on_b) = (f.target("a.example"), f.target("b.example"));
    if let Some(after) = run(report, &cell, &client, on_a, on_b, false, || {}) {
        expect_refused(report, &cell, &after);
    }
}

/// The CA of every server certificate in the matrix.
fn server_ca() -> Ca {
    Ca::new("matrix server CA")
}

/// The crate's own acceptor: every change that applies to one reloader.
#[test]
fn front() {
    let (srv, mut report) = (server_ca(), Report::default());
    for kind in KINDS {
        control(&mut report, &srv, Mode::Front, kind);
        ca_dropped(&mut report, &srv, Mode::Front, kind);
        crl_revoked(&mut report, &srv, Mode::Front, kind);
        delta_crl(&mut report, &srv, Mode::Front, kind);
        sni_moved(&mut report, &srv, Mode::Front, kind);
        same_stem(&mut report, &srv, Mode::Front, kind);
    }
    report.finish();
}

/// An attached application context, and two of them sharing ticket keys.
#[test]
fn attach() {
    let (srv, mut report) = (server_ca(), Report::default());
    for kind in KINDS {
        control(&mut report, &srv, Mode::Attach, kind);
        ca_dropped(&mut report, &srv, Mode::Attach, kind);
        crl_revoked(&mut report, &srv, Mode::Attach, kind);
        sni_moved(&mut report, &srv, Mode::Attach, kind);
        same_stem(&mut report, &srv, Mode::Attach, kind);
        other_context_verify_mode(&mut report, &srv, kind);
    }
    report.finish();
}

/// An attached context that carries the certificates in service itself
/// (`update_attached_contexts`, as the nginx module attaches).
#[test]
fn attach_updating() {
    let (srv, mut report) = (server_ca(), Report::default());
    for kind in KINDS {
        control(&mut report, &srv, Mode::AttachUpdating, kind);
        ca_dropped(&mut report, &srv, Mode::AttachUpdating, kind);
        crl_revoked(&mut report, &srv, Mode::AttachUpdating, kind);
        sni_moved(&mut report, &srv, Mode::AttachUpdating, kind);
        same_stem(&mut report, &srv, Mode::AttachUpdating, kind);
    }
    report.finish();
}

/// `install` from the application's servername callback: no binding of its own.
#[test]
fn install() {
    let (srv, mut report) = (server_ca(), Report::default());
    for kind in KINDS {
        control(&mut report, &srv, Mode::Install, kind);
        ca_dropped(&mut report, &srv, Mode::Install, kind);
    }
    report.finish();
}

/// Two attached contexts, switched by the application's servername callback.
#[test]
fn switch() {
    let (srv, mut report) = (server_ca(), Report::default());
    for kind in KINDS {
        switch_control(&mut report, &srv, kind);
        switch_cross_name(&mut report, &srv, kind);
    }
    report.finish();
}
