//! Resumption across reloads: TLS 1.3 tickets issued before a reload of the server
//! certificate, offered after it; also with client certificates required, where
//! the sessions are bound to the client CA bundle, which such a reload keeps.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use openssl::ssl::{SslAcceptor, SslConnector, SslSession};
use openssl_reload::{ClientAuth, ReloadingAcceptor};

use crate::common::{
    acceptor_from_files, client, client_with, server_policy, KeyKind, Pair, Rotator,
};
use crate::net::{connect, peer_serial, Server, Strategy};
use crate::report::{int, progress, round2, Report, J};
use crate::Config;

/// A full handshake, read to the server's close_notify (so the TLS 1.3 tickets
/// are processed), and the session to resume.
pub(crate) fn ticket(addr: SocketAddr, connector: &SslConnector) -> Result<SslSession, String> {
    let mut stream = connect(addr, connector, None)?;
    let mut buf = [0u8; 64];
    while stream.read(&mut buf).map_err(|e| format!("read: {e}"))? > 0 {}
    // Our close_notify too: OpenSSL marks the session of a connection freed
    // without one as not resumable (ssl_clear_bad_session).
    let _ = stream.shutdown();
    let session = stream.ssl().session().ok_or("no session")?;
    Ok(session.to_owned())
}

#[derive(Default)]
pub(crate) struct ResumeCount {
    pub(crate) offered: u64,
    pub(crate) resumed: u64,
    pub(crate) failures: u64,
}

pub(crate) fn resume_all(
    addr: SocketAddr,
    connector: &SslConnector,
    sessions: &[SslSession],
    count: &mut ResumeCount,
) {
    for session in sessions {
        count.offered += 1;
        match connect(addr, connector, Some(session)) {
            Ok(stream) => count.resumed += u64::from(stream.ssl().session_reused()),
            Err(_) => count.failures += 1,
        }
    }
}

const ARMS: [&str; 3] = ["reloading", "reloading, mTLS required", "acceptor-swap"];

pub(crate) fn resumption(cfg: &Config, dir: &Path, report: &mut Report) -> J {
    progress("resumption across reloads");
    let kind = KeyKind::EcdsaP256;
    let pairs: Vec<Pair> = (0..4).map(|i| Pair::generate(kind, 200 + i)).collect();
    // For the mTLS row: a self-signed client certificate that is its own CA bundle.
    let client_pair = Pair::generate(kind, 900);
    let client_ca = dir.join("resume-client-ca.pem");
    std::fs::write(&client_ca, &client_pair.cert_pem).unwrap();
    let mut rows = Vec::new();
    report.say(format!(
        "\n### Resumption across reloads ({}, TLS 1.3 tickets, {} reloads × {} clients)\n",
        kind.label(),
        cfg.resume_reloads,
        cfg.resume_clients
    ));
    report.say(
        "| strategy | resumed after a reload | control: resumed without a reload | failures |",
    );
    report.say("|---|---:|---:|---:|");
    let mut crate_pct: f64 = 100.0;
    for (index, arm) in ARMS.into_iter().enumerate() {
        let mtls = arm.contains("mTLS");
        let connector = if mtls {
            client_with(&client_pair)
        } else {
            client()
        };
        let rotator = Rotator::new(&dir.join(format!("resume-{index}")), &pairs[0]);
        let mut served = Served::start(cfg, arm, rotator, mtls.then_some(&*client_ca));
        let run = served.measure(cfg, &connector, &pairs);
        report.say(run.markdown_row(arm));
        if served.tls.is_some() {
            crate_pct = crate_pct.min(pct(&run.after));
        }
        rows.push(run.json_row(cfg, arm));
        drop(served);
    }
    report.target(
        "resumption across a reload (this crate, with and without mTLS)",
        "≥ 99 %",
        format!("{crate_pct:.1} %"),
        crate_pct >= 99.0,
    );
    J::Arr(rows)
}

fn pct(c: &ResumeCount) -> f64 {
    100.0 * c.resumed as f64 / c.offered.max(1) as f64
}

/// One strategy's server on its certificate directory: the crate's reloading
/// acceptor (with client certificates required when `client_ca` is given) or
/// the acceptor-swap baseline.
struct Served {
    rotator: Rotator,
    server: Server,
    tls: Option<ReloadingAcceptor>,
    swap: Option<Arc<ArcSwap<SslAcceptor>>>,
}

impl Served {
    fn start(cfg: &Config, arm: &str, rotator: Rotator, client_ca: Option<&Path>) -> Self {
        if arm.starts_with("reloading") {
            let mut builder = ReloadingAcceptor::builder()
                .identity(rotator.cert_path(), rotator.key_path())
                .poll_interval(cfg.reload_poll)
                .policy(server_policy);
            if let Some(client_ca) = client_ca {
                builder = builder.ca(client_ca).client_auth(ClientAuth::Required);
            }
            let tls = builder.build().unwrap();
            let server = Server::start(Strategy::Reloading(tls.clone()), cfg.server_threads);
            Self {
                rotator,
                server,
                tls: Some(tls),
                swap: None,
            }
        } else {
            let swap = Arc::new(ArcSwap::from_pointee(
                acceptor_from_files(&rotator.cert_path(), &rotator.key_path()).unwrap(),
            ));
            let server = Server::start(Strategy::Swap(Arc::clone(&swap)), cfg.server_threads);
            Self {
                rotator,
                server,
                tls: None,
                swap: Some(swap),
            }
        }
    }

    /// `cfg.resume_reloads` rounds: tickets resumed without a reload (control),
    /// then tickets issued, a reload, and the tickets offered after it.
    fn measure(&mut self, cfg: &Config, connector: &SslConnector, pairs: &[Pair]) -> Run {
        let mut run = Run::default();
        let addr = self.server.addr;
        for round in 0..cfg.resume_reloads {
            // Control: the same, with no reload in between.
            let sessions = run.tickets(addr, connector, cfg.resume_clients);
            resume_all(addr, connector, &sessions, &mut run.control);

            let sessions = run.tickets(addr, connector, cfg.resume_clients);
            let pair = &pairs[(round + 1) % pairs.len()];
            self.reload(pair);
            // The reload is in service: a new handshake sees the new certificate.
            match connect(addr, connector, None) {
                Ok(s) if peer_serial(&s).as_deref() == Some(&pair.serial[..]) => {}
                _ => run.unseen += 1,
            }
            resume_all(addr, connector, &sessions, &mut run.after);
        }
        run
    }

    /// Installs `pair` and waits until the poller published it, or rebuilds and
    /// stores the acceptor-swap baseline's acceptor.
    fn reload(&mut self, pair: &Pair) {
        self.rotator.install(pair);
        if let Some(tls) = &self.tls {
            let generation = tls.status().generation;
            let deadline = Instant::now() + Duration::from_secs(10);
            while tls.status().generation == generation && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(1));
            }
        }
        if let Some(swap) = &self.swap {
            swap.store(Arc::new(
                acceptor_from_files(&self.rotator.cert_path(), &self.rotator.key_path()).unwrap(),
            ));
        }
    }
}

/// What one strategy's rounds counted.
#[derive(Default)]
struct Run {
    after: ResumeCount,
    control: ResumeCount,
    ticket_failures: u64,
    unseen: u64,
}

impl Run {
    /// `n` full handshakes' sessions; the failed ones are counted.
    fn tickets(&mut self, addr: SocketAddr, connector: &SslConnector, n: usize) -> Vec<SslSession> {
        (0..n)
            .filter_map(|_| match ticket(addr, connector) {
                Ok(s) => Some(s),
                Err(_) => {
                    self.ticket_failures += 1;
                    None
                }
            })
            .collect()
    }

    fn markdown_row(&self, arm: &str) -> String {
        let (after, control) = (&self.after, &self.control);
        let failures = after.failures + control.failures + self.ticket_failures + self.unseen;
        format!(
            "| {arm} | {:.1} % ({} of {}) | {:.1} % ({} of {}) | {failures} |",
            pct(after),
            after.resumed,
            after.offered,
            pct(control),
            control.resumed,
            control.offered
        )
    }

    fn json_row(&self, cfg: &Config, arm: &str) -> J {
        let (after, control) = (&self.after, &self.control);
        J::Obj(vec![
            ("strategy", J::Str(arm.to_owned())),
            ("reloads", int(cfg.resume_reloads as u64)),
            ("offered", int(after.offered)),
            ("resumed", int(after.resumed)),
            ("resumed_pct", J::Num(round2(pct(after)))),
            ("control_offered", int(control.offered)),
            ("control_resumed", int(control.resumed)),
            ("control_resumed_pct", J::Num(round2(pct(control)))),
            ("handshake_failures", int(after.failures + control.failures)),
            ("ticket_failures", int(self.ticket_failures)),
            ("reload_not_seen", int(self.unseen)),
        ])
    }
}
