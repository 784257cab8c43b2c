//! What the site set reports: each site's status, and the acceptor's status
//! summed over the sites and the trust.

use super::*;
use crate::{CertificateInfo, CrlInfo};

impl Sites {
    /// Every site with its own status, in site order; sites that have not loaded
    /// last.
    pub(crate) fn sites(&self) -> Vec<SiteStatus> {
        let snapshot = self.current.load();
        let default = snapshot.table.default_site();
        let mut out: Vec<SiteStatus> = self
            .entries()
            .iter()
            .map(|(key, entry)| {
                // The certificate in the snapshot the handshakes read: a site's
                // engine publishes a moment before the snapshot is rebuilt.
                let cert = snapshot.certs.get(&key.path);
                let mut status = entry.engine.status();
                status.certificate = cert.map(|c| c.identity.info.clone());
                SiteStatus {
                    name: key.name.clone(),
                    path: key.path.clone(),
                    names: cert.map(|c| c.names.clone()).unwrap_or_default(),
                    key_type: cert.map(|c| c.key_label.clone()),
                    default: cert.is_some() && default == Some(key.name.as_str()),
                    serving: cert.is_some(),
                    status,
                }
            })
            .collect();
        out.extend(
            self.pending_view
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .cloned(),
        );
        out
    }

    /// The acceptor's status: the default site's certificate, the trust's CA
    /// count, and failures summed over everything.
    pub(super) fn refresh_status(&self, scan: &ScanState, published: bool, notify: bool) {
        let summed = self.sum(scan);
        self.status.send_if_modified(|s| {
            let before = observed(s);
            if published {
                s.generation += 1;
                if s.generation > 1 {
                    s.reloads += 1;
                }
                s.last_reload = SystemTime::now();
            }
            summed.apply(s);
            // Subscribers hear of publishes and of failures starting or ending.
            notify && (published || before != observed(s))
        });
        let pending = scan
            .pending
            .iter()
            .map(|(key, pending)| SiteStatus {
                name: key.name.clone(),
                path: key.path.clone(),
                names: Vec::new(),
                key_type: None,
                default: false,
                serving: false,
                status: pending.status(self.setup.poll_interval),
            })
            .collect();
        *self
            .pending_view
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = pending;
    }

    /// The trust's and every site's status, summed: failures add up, the
    /// newest failure wins, the default site gives the certificate.
    fn sum(&self, scan: &ScanState) -> Summed {
        let entries = self.entries();
        let snapshot = self.current.load();
        let default = snapshot.table.default_site();
        let trust = self.trust.status_ref();
        let mut summed = Summed {
            certificate: None,
            ca_certificates: trust.ca_certificates,
            crls: trust.crls.clone(),
            failures: trust.failures,
            consecutive: trust.consecutive_failures,
            last_error: trust.last_error.clone(),
        };
        drop(trust);
        for (key, entry) in entries.iter() {
            let status = entry.engine.status_ref();
            summed.failures += status.failures;
            summed.consecutive = summed.consecutive.max(status.consecutive_failures);
            summed.newer(status.last_error.as_ref());
            if default == Some(key.name.as_str()) {
                summed.certificate.clone_from(&status.certificate);
            }
        }
        for pending in scan.pending.values() {
            summed.failures += pending.failures;
            summed.newer(Some(&pending.failure));
        }
        summed
    }
}

/// The acceptor's status fields summed over the trust and the sites.
struct Summed {
    certificate: Option<CertificateInfo>,
    ca_certificates: usize,
    crls: Vec<CrlInfo>,
    failures: u64,
    consecutive: u64,
    last_error: Option<ReloadFailure>,
}

type Observed = (u64, u64, Option<SystemTime>, usize, Option<String>);

impl Summed {
    /// Keeps the newer of the failure so far and `candidate`.
    fn newer(&mut self, candidate: Option<&ReloadFailure>) {
        if let Some(c) = candidate {
            if self.last_error.as_ref().is_none_or(|l| c.at > l.at) {
                self.last_error = Some(c.clone());
            }
        }
    }

    fn apply(&self, s: &mut CertificateStatus) {
        s.certificate.clone_from(&self.certificate);
        s.ca_certificates = self.ca_certificates;
        s.crls.clone_from(&self.crls);
        s.failures = self.failures;
        s.consecutive_failures = self.consecutive;
        s.last_error.clone_from(&self.last_error);
    }
}

/// What a change of the acceptor's status is judged by: the failure counts,
/// the last failure, the CA count and the certificate.
fn observed(s: &CertificateStatus) -> Observed {
    (
        s.failures,
        s.consecutive_failures,
        s.last_error.as_ref().map(|e| e.at),
        s.ca_certificates,
        s.certificate.as_ref().map(|c| c.sha256.clone()),
    )
}
