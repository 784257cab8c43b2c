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
use openssl::ssl::{SslConnector, SslSession};
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
    for (index, arm) in ["reloading", "reloading, mTLS required", "acceptor-swap"]
        .into_iter()
        .enumerate()
    {
        let mtls = arm.contains("mTLS");
        let connector = if mtls {
            client_with(&client_pair)
        } else {
            client()
        };
        let mut rotator = Rotator::new(&dir.join(format!("resume-{index}")), &pairs[0]);
        let (server, tls, swap) = if arm.starts_with("reloading") {
            let mut builder = ReloadingAcceptor::builder(rotator.cert_path(), rotator.key_path())
                .poll_interval(cfg.reload_poll)
                .policy(server_policy);
            if mtls {
                builder = builder.client_ca(&client_ca, ClientAuth::Required);
            }
            let tls = builder.build().unwrap();
            (
                Server::start(Strategy::Reloading(tls.clone()), cfg.server_threads),
                Some(tls),
                None,
            )
        } else {
            let swap = Arc::new(ArcSwap::from_pointee(
                acceptor_from_files(&rotator.cert_path(), &rotator.key_path()).unwrap(),
            ));
            (
                Server::start(Strategy::Swap(Arc::clone(&swap)), cfg.server_threads),
                None,
                Some(swap),
            )
        };
        let mut after = ResumeCount {
            offered: 0,
            resumed: 0,
            failures: 0,
        };
        let mut control = ResumeCount {
            offered: 0,
            resumed: 0,
            failures: 0,
        };
        let mut ticket_failures = 0u64;
        let mut unseen = 0u64;
        for round in 0..cfg.resume_reloads {
            let mut tickets = |n: usize| -> Vec<SslSession> {
                (0..n)
                    .filter_map(|_| match ticket(server.addr, &connector) {
                        Ok(s) => Some(s),
                        Err(_) => {
                            ticket_failures += 1;
                            None
                        }
                    })
                    .collect()
            };
            // Control: the same, with no reload in between.
            let sessions = tickets(cfg.resume_clients);
            resume_all(server.addr, &connector, &sessions, &mut control);

            let sessions = tickets(cfg.resume_clients);
            let pair = &pairs[(round + 1) % pairs.len()];
            rotator.install(pair);
            if let Some(tls) = &tls {
                let generation = tls.status().generation;
                let deadline = Instant::now() + Duration::from_secs(10);
                while tls.status().generation == generation && Instant::now() < deadline {
                    thread::sleep(Duration::from_millis(1));
                }
            }
            if let Some(swap) = &swap {
                swap.store(Arc::new(
                    acceptor_from_files(&rotator.cert_path(), &rotator.key_path()).unwrap(),
                ));
            }
            // The reload is in service: a new handshake sees the new certificate.
            match connect(server.addr, &connector, None) {
                Ok(s) if peer_serial(&s).as_deref() == Some(&pair.serial[..]) => {}
                _ => unseen += 1,
            }
            resume_all(server.addr, &connector, &sessions, &mut after);
        }
        let pct = |c: &ResumeCount| 100.0 * c.resumed as f64 / c.offered.max(1) as f64;
        let failures = after.failures + control.failures + ticket_failures + unseen;
        report.say(format!(
            "| {arm} | {:.1} % ({} of {}) | {:.1} % ({} of {}) | {failures} |",
            pct(&after),
            after.resumed,
            after.offered,
            pct(&control),
            control.resumed,
            control.offered
        ));
        if tls.is_some() {
            crate_pct = crate_pct.min(pct(&after));
        }
        rows.push(J::Obj(vec![
            ("strategy", J::Str(arm.to_owned())),
            ("reloads", int(cfg.resume_reloads as u64)),
            ("offered", int(after.offered)),
            ("resumed", int(after.resumed)),
            ("resumed_pct", J::Num(round2(pct(&after)))),
            ("control_offered", int(control.offered)),
            ("control_resumed", int(control.resumed)),
            ("control_resumed_pct", J::Num(round2(pct(&control)))),
            ("handshake_failures", int(after.failures + control.failures)),
            ("ticket_failures", int(ticket_failures)),
            ("reload_not_seen", int(unseen)),
        ]));
        drop(server);
    }
    report.target(
        "resumption across a reload (this crate, with and without mTLS)",
        "≥ 99 %",
        format!("{crate_pct:.1} %"),
        crate_pct >= 99.0,
    );
    J::Arr(rows)
}
