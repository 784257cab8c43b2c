//! The reload engine shared by the acceptor and the connector: compare fingerprints,
//! read, skip identical content, parse and validate, build, publish, keep status.

use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::material::{Material, Sources};
use crate::watch::Fingerprint;
use crate::{CertificateInfo, Error};

/// The longest wait between retries of a failed load whose files did not change.
///
/// A changed file is retried on the next tick. Unchanged files are retried with a
/// doubling back-off, because what failed may depend on something other than the
/// files: a not-yet-valid certificate becomes valid, a passphrase variable appears.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// A point-in-time view of a reloader, cheap to clone.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CertificateStatus {
    /// The certificate in service (`None` for a connector without a client certificate).
    pub certificate: Option<CertificateInfo>,
    /// How many CA certificates the trust bundle in service holds (0 when none is configured).
    pub ca_certificates: usize,
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
    pub last_error: Option<ReloadError>,
    /// When the material in service was published.
    pub last_reload: SystemTime,
    /// How often the files are checked.
    pub poll_interval: Duration,
    /// Whether the process fetches algorithms with `fips=yes` ([`crate::fips::is_enabled`]),
    /// as of this snapshot.
    pub fips_enabled: bool,
}

/// A failed reload, as kept in [`CertificateStatus`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ReloadError {
    /// The error's message; it names the file and the reason.
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

pub(crate) type Build<T> = Box<dyn Fn(&Material) -> Result<T, Error> + Send + Sync>;

struct State {
    fingerprints: Vec<Fingerprint>,
    served_digest: [u8; 32],
    /// The message of the last failure logged, so a failure repeats in the log only
    /// when it changes.
    last_logged: Option<String>,
    retry_at: Option<Instant>,
    retry_delay: Duration,
    warned: HashSet<PathBuf>,
    /// A key/certificate mismatch seen right after a change was given one tick.
    mismatch_deferred: bool,
}

pub(crate) struct Engine<T> {
    what: &'static str,
    sources: Sources,
    paths: Vec<PathBuf>,
    build: Build<T>,
    current: Arc<ArcSwap<T>>,
    state: Mutex<State>,
    status: watch::Sender<CertificateStatus>,
}

impl<T> Engine<T> {
    /// Loads, validates and builds the initial material. A failure is returned,
    /// unless `allow_missing` says to start on empty material (no certificate, no
    /// CA) and adopt the files once they are valid.
    pub(crate) fn start(
        what: &'static str,
        sources: Sources,
        poll_interval: Duration,
        build: Build<T>,
        allow_missing: bool,
    ) -> Result<Self, Error> {
        let paths = sources.paths();
        let fingerprints = paths.iter().map(|p| Fingerprint::of(p)).collect();
        let mut warned = HashSet::new();
        let loaded = sources
            .read(&mut warned)
            .and_then(|raw| sources.parse(raw))
            .and_then(|material| {
                let built = build(&material)?;
                Ok((built, material))
            });
        let (built, material, error) = match loaded {
            Ok((built, material)) => (built, material, None),
            Err(error) if allow_missing => {
                let empty = Material::empty();
                (build(&empty)?, empty, Some(error))
            }
            Err(error) => return Err(error),
        };
        let now = SystemTime::now();
        let status = CertificateStatus {
            certificate: material.identity.as_ref().map(|i| i.info.clone()),
            ca_certificates: material.ca.as_ref().map_or(0, Vec::len),
            generation: u64::from(error.is_none()),
            reloads: 0,
            failures: u64::from(error.is_some()),
            consecutive_failures: u64::from(error.is_some()),
            last_error: error.as_ref().map(|e| ReloadError {
                message: e.to_string(),
                path: e.path().map(Into::into),
                at: now,
            }),
            last_reload: now,
            poll_interval,
            fips_enabled: crate::fips::is_enabled(),
        };
        let last_logged = match &error {
            None => {
                log_published(what, &status);
                None
            }
            Some(error) => {
                tracing::warn!(
                    what,
                    path = error.path().map(|p| p.display().to_string()),
                    error = %error,
                    "starting without a certificate, as allowed; handshakes fail until the files are valid"
                );
                Some(error.to_string())
            }
        };
        Ok(Self {
            what,
            sources,
            paths,
            build,
            current: Arc::new(ArcSwap::from_pointee(built)),
            state: Mutex::new(State {
                fingerprints,
                served_digest: material.digest,
                retry_at: last_logged
                    .as_ref()
                    .and_then(|_| Instant::now().checked_add(poll_interval)),
                last_logged,
                retry_delay: poll_interval,
                warned,
                mismatch_deferred: false,
            }),
            status: watch::channel(status).0,
        })
    }

    /// The published value, shared with handshake callbacks.
    pub(crate) fn current(&self) -> &Arc<ArcSwap<T>> {
        &self.current
    }

    pub(crate) fn status(&self) -> CertificateStatus {
        let mut status = self.status.borrow().clone();
        status.fips_enabled = crate::fips::is_enabled();
        status
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<CertificateStatus> {
        self.status.subscribe()
    }

    /// One poller tick: reload if a fingerprint changed or a retry is due.
    pub(crate) fn poll(&self) {
        let _ = self.check(false);
    }

    /// Reads the files now, whatever their fingerprints say.
    pub(crate) fn reload_now(&self) -> Result<Reload, Error> {
        self.check(true)
    }

    fn check(&self, force: bool) -> Result<Reload, Error> {
        // The lock serialises the poller with `reload_now` callers; handshakes never
        // take it, they only load `current`.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let fingerprints: Vec<_> = self.paths.iter().map(|p| Fingerprint::of(p)).collect();
        let changed = fingerprints != state.fingerprints;
        let retry_due = state.retry_at.is_some_and(|at| Instant::now() >= at);
        if !(changed || force || retry_due) {
            return Ok(Reload::Unchanged);
        }
        // Fingerprints are taken before the read: a write that lands during the read
        // changes them again and is picked up on the next tick.
        state.fingerprints = fingerprints;
        // A panic in a user callback (policy, passphrase) or in a dependency must
        // not end reloading silently: it is recorded as a failed attempt.
        let attempt = panic::catch_unwind(AssertUnwindSafe(|| self.attempt(&mut state)))
            .unwrap_or_else(|payload| {
                Err(Error::Panicked {
                    message: panic_message(&*payload),
                })
            });
        if let Err(error @ Error::KeyMismatch { .. }) = &attempt {
            // Writers that replace the certificate and the key as two files (cp,
            // certbot hooks) are caught between the two now and then. Give the
            // second file one tick before calling it a failure, so that a routine
            // rotation does not log a warning or count in the failure metrics.
            if changed && !force && !state.mismatch_deferred {
                state.mismatch_deferred = true;
                state.retry_at = Some(Instant::now());
                tracing::debug!(what = self.what, %error, "certificate and key do not match yet; waiting a tick for the other file");
                return attempt;
            }
        }
        state.mismatch_deferred = false;
        match attempt {
            Ok(outcome) => {
                state.retry_at = None;
                state.retry_delay = self.status.borrow().poll_interval;
                if state.last_logged.take().is_some() {
                    tracing::info!(what = self.what, "files on disk are valid again");
                }
                Ok(outcome)
            }
            Err(error) => {
                let message = error.to_string();
                let at = SystemTime::now();
                self.status.send_modify(|s| {
                    s.failures += 1;
                    s.consecutive_failures += 1;
                    s.last_error = Some(ReloadError {
                        message: message.clone(),
                        path: error.path().map(Into::into),
                        at,
                    });
                });
                if state.last_logged.as_deref() != Some(message.as_str()) {
                    tracing::warn!(
                        what = self.what,
                        path = error.path().map(|p| p.display().to_string()),
                        error = %message,
                        "reload failed; keeping previous certificate"
                    );
                    state.last_logged = Some(message);
                } else {
                    tracing::debug!(what = self.what, error = %message, "reload still failing");
                }
                state.retry_at = Instant::now().checked_add(state.retry_delay);
                state.retry_delay = state.retry_delay.saturating_mul(2).min(MAX_RETRY_DELAY);
                Err(error)
            }
        }
    }

    fn attempt(&self, state: &mut State) -> Result<Reload, Error> {
        let raw = self.sources.read(&mut state.warned)?;
        if raw.digest == state.served_digest {
            tracing::debug!(
                what = self.what,
                "files changed on disk but their content did not; nothing to publish"
            );
            self.status.send_if_modified(|s| {
                let was_failing = s.consecutive_failures != 0;
                s.consecutive_failures = 0;
                was_failing
            });
            return Ok(Reload::Unchanged);
        }
        let material = self.sources.parse(raw)?;
        let built = (self.build)(&material)?;
        // Status first, quietly; then the context; then wake subscribers. Whoever
        // sees the new certificate in a handshake finds it in `status()` too, and
        // a subscriber woken by the change finds it in service.
        let mut generation = 0;
        self.status.send_if_modified(|s| {
            s.generation += 1;
            s.reloads += 1;
            s.consecutive_failures = 0;
            s.certificate = material.identity.as_ref().map(|i| i.info.clone());
            s.ca_certificates = material.ca.as_ref().map_or(0, Vec::len);
            s.last_reload = SystemTime::now();
            generation = s.generation;
            false
        });
        self.current.store(Arc::new(built));
        self.status.send_modify(|_| {});
        state.served_digest = material.digest;
        log_published(self.what, &self.status.borrow());
        Ok(Reload::Published(generation))
    }
}

fn log_published(what: &'static str, status: &CertificateStatus) {
    match &status.certificate {
        Some(cert) => tracing::info!(
            what,
            generation = status.generation,
            subject = %cert.subject,
            serial = %cert.serial,
            not_after = %cert.not_after,
            sha256 = %cert.sha256,
            ca_certificates = status.ca_certificates,
            "certificate loaded"
        ),
        None => tracing::info!(
            what,
            generation = status.generation,
            ca_certificates = status.ca_certificates,
            "trust bundle loaded"
        ),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::material::IdentityFiles;
    use openssl::asn1::Asn1Time;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::x509::{X509Name, X509};

    /// A self-signed P-256 certificate and its PKCS#8 key, as PEM.
    fn pair(cn: &str) -> (Vec<u8>, Vec<u8>) {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let mut name = X509Name::builder().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        (
            b.build().to_pem().unwrap(),
            key.private_key_to_pem_pkcs8().unwrap(),
        )
    }

    /// A mismatch right after a change waits one tick; one that stays is a failure.
    #[test]
    fn mismatch_after_a_change_gets_one_tick() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let (c1, k1) = pair("one");
        std::fs::write(&cert, &c1).unwrap();
        std::fs::write(&key, &k1).unwrap();
        let mut sources = Sources::new();
        sources.identity = Some(IdentityFiles::Pair {
            cert: cert.clone(),
            key: key.clone(),
        });
        // The poller thread is not started: `poll` is called by hand.
        let engine = Engine::start(
            "test",
            sources,
            Duration::from_secs(3600),
            Box::new(|_| Ok(())),
            false,
        )
        .unwrap();

        let (c2, k2) = pair("two");
        std::fs::write(&cert, &c2).unwrap();
        engine.poll();
        assert_eq!(engine.status().failures, 0, "the key gets a tick");
        std::fs::write(&key, &k2).unwrap();
        engine.poll();
        let status = engine.status();
        assert_eq!((status.failures, status.generation), (0, 2), "{status:?}");

        let (c3, _) = pair("three");
        std::fs::write(&cert, &c3).unwrap();
        engine.poll();
        assert_eq!(engine.status().failures, 0);
        engine.poll(); // no change, but the retry is due: now it counts
        let status = engine.status();
        assert_eq!((status.failures, status.generation), (1, 2), "{status:?}");
        assert!(matches!(
            engine.reload_now(),
            Err(Error::KeyMismatch { .. })
        ));
    }
}
