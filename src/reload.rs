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
    /// When the poller last finished a tick (`None` before its first). A value
    /// that stops moving means a stuck poller: alert on it.
    pub last_poll: Option<SystemTime>,
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

impl ReloadError {
    pub(crate) fn new(error: &Error, at: SystemTime) -> Self {
        Self {
            message: error.to_string(),
            path: error.path().map(Into::into),
            at,
        }
    }
}

/// What the poller compares from tick to tick. Its lock is only ever held for a
/// few comparisons and assignments, never across a `stat`, a read or a parse, so
/// a hung mount cannot make a `status()` or `reload_now()` caller wait on it.
struct PollState {
    fingerprints: Vec<Fingerprint>,
    /// The message of the last failure logged, so a failure repeats in the log only
    /// when it changes.
    last_logged: Option<String>,
    retry_at: Option<Instant>,
    retry_delay: Duration,
    /// A key/certificate mismatch seen right after a change was given one tick.
    mismatch_deferred: bool,
}

/// What only an attempt (read, parse, build, publish) touches. Its lock makes
/// attempts single-flight: `reload_now` waits for an attempt in progress to end,
/// and the poller skips a tick rather than queue behind one.
struct AttemptState {
    served_digest: [u8; 32],
    warned: HashSet<PathBuf>,
}

/// Why an attempt runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// A poller tick saw changed fingerprints (`true`) or a due retry (`false`).
    Poll { changed: bool },
    /// `reload_now`: read whatever the fingerprints say.
    Forced,
}

/// What an attempt found.
enum Attempt {
    Done(Reload),
    /// A file changed while it was read; nothing was published or decided.
    Torn,
}

pub(crate) struct Engine<T> {
    what: &'static str,
    sources: Sources,
    paths: Vec<PathBuf>,
    build: Build<T>,
    current: Arc<ArcSwap<T>>,
    poll_state: Mutex<PollState>,
    attempts: Mutex<AttemptState>,
    status: watch::Sender<CertificateStatus>,
    /// Runs between the read and the re-stat of an attempt: tests use it to
    /// change a file while it is being read.
    #[cfg(test)]
    after_read: Option<Box<dyn Fn() + Send + Sync>>,
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
            last_error: error.as_ref().map(|e| ReloadError::new(e, now)),
            last_reload: now,
            last_poll: None,
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
            poll_state: Mutex::new(PollState {
                fingerprints,
                retry_at: last_logged
                    .as_ref()
                    .and_then(|_| Instant::now().checked_add(poll_interval)),
                last_logged,
                retry_delay: poll_interval,
                mismatch_deferred: false,
            }),
            attempts: Mutex::new(AttemptState {
                served_digest: material.digest,
                warned,
            }),
            status: watch::channel(status).0,
            #[cfg(test)]
            after_read: None,
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
        let fingerprints = self.stat();
        let changed = {
            let state = self.lock_poll_state();
            let changed = fingerprints != state.fingerprints;
            let retry_due = state.retry_at.is_some_and(|at| Instant::now() >= at);
            (changed || retry_due).then_some(changed)
        };
        if let Some(changed) = changed {
            // An attempt in progress (a `reload_now`) reads the same files; this
            // tick does not queue behind it, the next one looks again.
            if let Ok(mut attempt) = self.attempts.try_lock() {
                let _ = self.run(&mut attempt, fingerprints, Trigger::Poll { changed });
            }
        }
        // Quietly: subscribers hear of publishes and failures, not of every tick.
        let now = SystemTime::now();
        self.status.send_if_modified(|s| {
            s.last_poll = Some(now);
            false
        });
    }

    /// Reads the files now, whatever their fingerprints say. Waits for an attempt
    /// in progress (its read, parse and build) first, never for a poller tick's `stat`s.
    pub(crate) fn reload_now(&self) -> Result<Reload, Error> {
        let mut attempt = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        let fingerprints = self.stat();
        self.run(&mut attempt, fingerprints, Trigger::Forced)
    }

    fn stat(&self) -> Vec<Fingerprint> {
        self.paths.iter().map(|p| Fingerprint::of(p)).collect()
    }

    fn lock_poll_state(&self) -> std::sync::MutexGuard<'_, PollState> {
        self.poll_state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// One attempt, with its outcome recorded: `fingerprints` were taken before
    /// the read, so a write that lands during or after it is seen again.
    fn run(
        &self,
        attempt: &mut AttemptState,
        fingerprints: Vec<Fingerprint>,
        trigger: Trigger,
    ) -> Result<Reload, Error> {
        self.lock_poll_state().fingerprints = fingerprints.clone();
        // A panic in a user callback (policy, passphrase) or in a dependency must
        // not end reloading silently: it is recorded as a failed attempt.
        let outcome =
            panic::catch_unwind(AssertUnwindSafe(|| self.attempt(attempt, &fingerprints)))
                .unwrap_or_else(|payload| {
                    Err(Error::Panicked {
                        message: panic_message(&*payload),
                    })
                });
        let mut state = self.lock_poll_state();
        if let Err(error @ Error::KeyMismatch { .. }) = &outcome {
            // Writers that replace the certificate and the key as two files (cp,
            // certbot hooks) are caught between the two now and then. Give the
            // second file one tick before calling it a failure, so that a routine
            // rotation does not log a warning or count in the failure metrics.
            if trigger == (Trigger::Poll { changed: true }) && !state.mismatch_deferred {
                state.mismatch_deferred = true;
                state.retry_at = Some(Instant::now());
                tracing::debug!(what = self.what, %error, "certificate and key do not match yet; waiting a tick for the other file");
                return outcome.map(|_| Reload::Unchanged);
            }
        }
        state.mismatch_deferred = false;
        match outcome {
            // Nothing was decided about the files: the state stays as it was.
            Ok(Attempt::Torn) => Ok(Reload::Unchanged),
            Ok(Attempt::Done(reload)) => {
                state.retry_at = None;
                state.retry_delay = self.status.borrow().poll_interval;
                if state.last_logged.take().is_some() {
                    tracing::info!(what = self.what, "files on disk are valid again");
                }
                Ok(reload)
            }
            Err(error) => {
                self.record_failure(&mut state, &error);
                Err(error)
            }
        }
    }

    fn record_failure(&self, state: &mut PollState, error: &Error) {
        let failure = ReloadError::new(error, SystemTime::now());
        let message = failure.message.clone();
        self.status.send_modify(|s| {
            s.failures += 1;
            s.consecutive_failures += 1;
            s.last_error = Some(failure);
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
    }

    fn attempt(
        &self,
        attempt: &mut AttemptState,
        fingerprints: &[Fingerprint],
    ) -> Result<Attempt, Error> {
        let raw = self.sources.read(&mut attempt.warned)?;
        #[cfg(test)]
        if let Some(hook) = &self.after_read {
            hook();
        }
        if self.stat() != fingerprints {
            // A writer is still at work (a leaf written, its intermediates about to
            // be appended): what was read may be a torn file. The fingerprints kept
            // are those from before the read, so the next tick reads again.
            tracing::debug!(
                what = self.what,
                "a file changed while it was read; reading it again next tick"
            );
            return Ok(Attempt::Torn);
        }
        if raw.digest == attempt.served_digest {
            tracing::debug!(
                what = self.what,
                "files changed on disk but their content did not; nothing to publish"
            );
            self.status.send_if_modified(|s| {
                let was_failing = s.consecutive_failures != 0;
                s.consecutive_failures = 0;
                was_failing
            });
            return Ok(Attempt::Done(Reload::Unchanged));
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
        attempt.served_digest = material.digest;
        log_published(self.what, &self.status.borrow());
        Ok(Attempt::Done(Reload::Published(generation)))
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

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
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

    /// A file that changes while it is read is not published; the next tick
    /// reads it again and publishes what the writer finished.
    #[test]
    fn a_file_changed_during_the_read_is_read_again() {
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
        let mut engine = Engine::start(
            "test",
            sources,
            Duration::from_secs(3600),
            Box::new(|_| Ok(())),
            false,
        )
        .unwrap();
        // The writer appends to the file (as it would the intermediates) right
        // after the first read of it.
        let appended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (hook_cert, hook_appended) = (cert.clone(), Arc::clone(&appended));
        engine.after_read = Some(Box::new(move || {
            if !hook_appended.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&hook_cert)
                    .unwrap();
                std::io::Write::write_all(&mut f, b"\n").unwrap();
            }
        }));
        let (c2, k2) = pair("two");
        std::fs::write(&key, &k2).unwrap();
        std::fs::write(&cert, &c2).unwrap();
        engine.poll();
        let status = engine.status();
        assert!(
            appended.load(std::sync::atomic::Ordering::SeqCst),
            "the hook ran"
        );
        assert_eq!(
            (status.generation, status.failures),
            (1, 0),
            "torn read published: {status:?}"
        );
        engine.poll();
        let status = engine.status();
        assert_eq!(
            (status.generation, status.failures),
            (2, 0),
            "not read again: {status:?}"
        );
        assert!(status.last_poll.is_some());
    }
}
