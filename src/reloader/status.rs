//! What a reloader reports: the status snapshot, failure records, and the log
//! line of each publish.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::{CertificateInfo, CrlInfo, Error, KeyStatus, StaleCrl};

/// A point-in-time view of a reloader, cheap to clone.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CertificateStatus {
    /// The certificate in service (`None` for a connector without a client certificate).
    pub certificate: Option<CertificateInfo>,
    /// How many CA certificates the trust bundle in service holds (0 when none is configured).
    pub ca_certificates: usize,
    /// The CRLs in service with the trust bundle (empty when none is configured).
    pub crls: Vec<CrlInfo>,
    /// Bumped on every publish; the material loaded at start-up is generation 1
    /// (0 while a reloader started with `allow_missing_at_start` waits for files).
    pub generation: u64,
    /// Successful reloads since start-up (the initial load not counted; after an
    /// `allow_missing_at_start` start, the first good files count as a reload).
    pub reloads: u64,
    /// Failed reload attempts since start-up.
    pub failures: u64,
    /// Failed attempts since the last success; 0 when the files on disk are in service.
    pub consecutive_failures: u64,
    /// The most recent failure, kept after recovery for the record.
    pub last_error: Option<ReloadFailure>,
    /// When the material in service was published.
    pub last_reload: SystemTime,
    /// When the poller last finished a tick (`None` before its first). A value
    /// that stops moving means a stuck poller: alert on it.
    pub last_poll: Option<SystemTime>,
    /// How often the files are checked.
    pub poll_interval: Duration,
    /// Whether the process fetched algorithms with `fips=yes` ([`crate::fips::is_enabled`])
    /// when the reloader was built.
    pub fips_enabled: bool,
    /// The private key, when it stays in hardware ([`KeyUri`](crate::KeyUri)):
    /// how it was opened, whether it answers, and any outage.
    pub key: Option<KeyStatus>,
}

/// The record of a failed reload attempt, as kept in [`CertificateStatus`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ReloadFailure {
    /// The error's full text ([`Error::report`]): what failed, the file, and
    /// every cause down to OpenSSL's reason.
    pub message: String,
    /// The file the error is about, if any.
    pub path: Option<PathBuf>,
    /// When it happened.
    pub at: SystemTime,
}

/// What a reload attempt did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reload {
    /// No file had changed, or the bytes were those already in service.
    Unchanged,
    /// New material was published with this generation.
    Published(u64),
}

impl ReloadFailure {
    pub(crate) fn new(error: &Error, at: SystemTime) -> Self {
        Self {
            message: error.report().to_string(),
            path: error.path().map(Into::into),
            at,
        }
    }
}

pub(crate) fn log_published(role: &'static str, status: &CertificateStatus) {
    match &status.certificate {
        Some(cert) => tracing::info!(
            role,
            generation = status.generation,
            subject = %cert.subject,
            serial = %cert.serial,
            not_after = %cert.not_after,
            sha256 = %cert.sha256,
            // A server's sites reload apart from its CA bundle, which logs its own line.
            ca_certificates = (status.ca_certificates > 0).then_some(status.ca_certificates),
            "certificate loaded"
        ),
        None => tracing::info!(
            role,
            generation = status.generation,
            ca_certificates = status.ca_certificates,
            "trust bundle loaded"
        ),
    }
}

/// The status of a reloader that just loaded `certificate` and `ca_certificates`
/// (or, with `error`, started without them, as allowed).
pub(crate) fn initial_status(
    certificate: Option<CertificateInfo>,
    ca_certificates: usize,
    poll_interval: Duration,
    error: Option<&Error>,
) -> CertificateStatus {
    let now = SystemTime::now();
    CertificateStatus {
        certificate,
        ca_certificates,
        crls: Vec::new(),
        generation: u64::from(error.is_none()),
        reloads: 0,
        failures: u64::from(error.is_some()),
        consecutive_failures: u64::from(error.is_some()),
        last_error: error.map(|e| ReloadFailure::new(e, now)),
        last_reload: now,
        last_poll: None,
        poll_interval,
        fips_enabled: crate::fips::is_enabled(),
        key: None,
    }
}

/// What start-up logs: the material loaded, or why it is missing (as allowed).
/// Returns the message of the failure logged, if any.
pub(super) fn log_start(
    role: &'static str,
    status: &CertificateStatus,
    error: Option<&Error>,
    announce: bool,
) -> Option<String> {
    match error {
        None if announce => {
            log_published(role, status);
            None
        }
        None => {
            tracing::debug!(role, certificate = ?status.certificate.as_ref().map(|c| &c.subject), "loaded");
            None
        }
        Some(error) => {
            let message = error.report().to_string();
            tracing::warn!(
                role,
                path = error.path().map(|p| p.display().to_string()),
                error = %message,
                "starting without a certificate, as allowed; handshakes fail until the files are valid"
            );
            Some(message)
        }
    }
}

impl CertificateStatus {
    /// The CRLs in service that are past their nextUpdate.
    pub(crate) fn stale_crls(&self) -> Vec<CrlInfo> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.crls
            .iter()
            .filter(|crl| crl.next_update_unix.is_some_and(|next| next < now))
            .cloned()
            .collect()
    }
}

/// Warns of each CRL in service that is past its nextUpdate, saying what
/// `policy` does about it.
pub(super) fn log_stale_crls(role: &'static str, stale: &[CrlInfo], policy: StaleCrl) {
    for crl in stale {
        let path = crl.path.display().to_string();
        let next_update = crl.next_update.clone().unwrap_or_default();
        match policy {
            StaleCrl::KeepEnforcing => tracing::warn!(
                role,
                path,
                issuer = %crl.issuer,
                next_update,
                "CRL in service is past its nextUpdate; still enforcing it until a fresh one is published"
            ),
            _ => tracing::warn!(
                role,
                path,
                issuer = %crl.issuer,
                next_update,
                "CRL in service is past its nextUpdate; every certificate it covers is refused until a fresh one is published"
            ),
        }
    }
}

/// Records on `status` that the poller finished a tick, quietly: subscribers
/// hear of publishes and failures, not of every tick.
pub(crate) fn mark_polled(status: &watch::Sender<CertificateStatus>) {
    let now = SystemTime::now();
    status.send_if_modified(|s| {
        s.last_poll = Some(now);
        false
    });
}
