//! Reload latency: atomic rename of a new pair -> first handshake that sees it.

use std::path::Path;
use std::thread;
use std::time::Duration;

use openssl::ssl::SslConnector;
use openssl_reload::ReloadingAcceptor;

use crate::common::{client, server_policy, KeyKind, Pair, Rotator};
use crate::net::{connect, peer_serial, Server, Strategy};
use crate::report::{int, progress, round2, Report, J};
use crate::stats::{percentile_f, XorShift};
use crate::Config;

pub(crate) fn reload_latency(cfg: &Config, dir: &Path, report: &mut Report) -> J {
    let kind = KeyKind::EcdsaP256;
    let pairs: Vec<Pair> = (0..4).map(|i| Pair::generate(kind, 300 + i)).collect();
    let connector = client();
    let mut rng = XorShift::seeded();
    let mut rows = Vec::new();
    report.say(format!(
        "\n### Reload latency ({}): atomic rename of a new pair → first handshake that sees it\n",
        kind.label()
    ));
    report.say("| poll interval | rotations | p50 ms | p99 ms | max ms | target p99 ≤ | probe failures | not seen in 10 s |");
    report.say("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let intervals = [
        (Duration::from_millis(10), cfg.latency_samples),
        (Duration::from_millis(100), cfg.latency_samples),
        (Duration::from_secs(1), cfg.latency_samples_1s),
    ];
    for (interval, samples) in intervals {
        progress(format_args!(
            "reload latency at {} ms: {samples} rotations",
            interval.as_millis()
        ));
        let rotator = Rotator::new(
            &dir.join(format!("latency-{}", interval.as_millis())),
            &pairs[0],
        );
        let tls = ReloadingAcceptor::builder()
            .identity(rotator.cert_path(), rotator.key_path())
            .poll_interval(interval)
            .policy(server_policy)
            .build()
            .unwrap();
        let server = Server::start(Strategy::Reloading(tls.clone()), cfg.server_threads);
        let mut probe = Probe {
            server: &server,
            connector: &connector,
            rotator,
            latencies: Vec::with_capacity(samples),
            failures: 0,
            unseen: 0,
        };
        for i in 0..samples {
            // A random phase against the poller's ticks.
            let phase = rng.below(u64::try_from(interval.as_micros()).unwrap());
            thread::sleep(Duration::from_micros(phase));
            probe.rotate(&pairs[(i + 1) % pairs.len()]);
        }
        rows.push(probe.report(interval, tls.status().reloads, report));
    }
    J::Arr(rows)
}

/// Rotations of one poll interval and what the probing handshakes saw.
struct Probe<'a> {
    server: &'a Server,
    connector: &'a SslConnector,
    rotator: Rotator,
    /// Milliseconds from the rename to the first handshake that saw the new pair.
    latencies: Vec<f64>,
    failures: u64,
    /// Rotations not seen within 10 s.
    unseen: u64,
}

impl Probe<'_> {
    /// Installs `pair` and handshakes until one sees it (or 10 s passed).
    fn rotate(&mut self, pair: &Pair) {
        let renamed = self.rotator.install(pair);
        loop {
            match connect(self.server.addr, self.connector, None) {
                Ok(stream) if peer_serial(&stream).as_deref() == Some(&pair.serial[..]) => {
                    self.latencies.push(renamed.elapsed().as_secs_f64() * 1e3);
                    break;
                }
                Ok(_) => {}
                Err(_) => self.failures += 1,
            }
            if renamed.elapsed() > Duration::from_secs(10) {
                self.unseen += 1;
                break;
            }
        }
    }

    /// The Markdown row and the target of this interval, and its JSON row.
    fn report(mut self, interval: Duration, reloads: u64, report: &mut Report) -> J {
        let (failures, unseen) = (self.failures, self.unseen);
        let latencies = &mut self.latencies;
        latencies.sort_by(f64::total_cmp);
        let (p50, p99, max) = (
            percentile_f(latencies, 50.0),
            percentile_f(latencies, 99.0),
            latencies.last().copied().unwrap_or(f64::NAN),
        );
        let goal_ms = interval.as_secs_f64() * 1e3 + 20.0;
        report.say(format!(
            "| {} ms | {} | {p50:.1} | {p99:.1} | {max:.1} | {goal_ms:.0} ms | {failures} | {unseen} |",
            interval.as_millis(),
            latencies.len()
        ));
        report.target(
            format!("reload latency p99 at {} ms", interval.as_millis()),
            format!("≤ {goal_ms:.0} ms"),
            format!("{p99:.1} ms"),
            p99 <= goal_ms && unseen == 0,
        );
        J::Obj(vec![
            ("poll_interval_ms", int(interval.as_millis() as u64)),
            ("rotations", int(latencies.len() as u64)),
            ("p50_ms", J::Num(round2(p50))),
            ("p99_ms", J::Num(round2(p99))),
            ("max_ms", J::Num(round2(max))),
            ("probe_failures", int(failures)),
            ("not_seen", int(unseen)),
            ("reloads", int(reloads)),
        ])
    }
}
