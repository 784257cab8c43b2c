//! What the site set reports: each site's status, and the acceptor's status
//! summed over the sites and the trust.

use super::*;

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
        let entries = self.entries();
        let snapshot = self.current.load();
        let default = snapshot.table.default_site();
        let trust = self.trust.status_ref();
        let mut failures = trust.failures;
        let mut consecutive = trust.consecutive_failures;
        let mut last_error = trust.last_error.clone();
        let mut certificate = None;
        let mut newer = |candidate: &Option<ReloadFailure>| {
            if let Some(c) = candidate {
                if last_error.as_ref().is_none_or(|l| c.at > l.at) {
                    last_error = Some(c.clone());
                }
            }
        };
        for (key, entry) in entries.iter() {
            let status = entry.engine.status_ref();
            failures += status.failures;
            consecutive = consecutive.max(status.consecutive_failures);
            newer(&status.last_error);
            if default == Some(key.name.as_str()) {
                certificate.clone_from(&status.certificate);
            }
        }
        for pending in scan.pending.values() {
            failures += pending.failures;
            newer(&Some(pending.failure.clone()));
        }
        let ca_certificates = trust.ca_certificates;
        let crls = trust.crls.clone();
        drop(trust);
        let update = |s: &mut CertificateStatus| {
            let before = (
                s.failures,
                s.consecutive_failures,
                s.last_error.as_ref().map(|e| e.at),
                s.ca_certificates,
                s.certificate.as_ref().map(|c| c.sha256.clone()),
            );
            if published {
                s.generation += 1;
                if s.generation > 1 {
                    s.reloads += 1;
                }
                s.last_reload = SystemTime::now();
            }
            s.certificate = certificate;
            s.ca_certificates = ca_certificates;
            s.crls = crls;
            s.failures = failures;
            s.consecutive_failures = consecutive;
            s.last_error = last_error;
            let after = (
                s.failures,
                s.consecutive_failures,
                s.last_error.as_ref().map(|e| e.at),
                s.ca_certificates,
                s.certificate.as_ref().map(|c| c.sha256.clone()),
            );
            // Subscribers hear of publishes and of failures starting or ending.
            notify && (published || before != after)
        };
        self.status.send_if_modified(update);
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
}
