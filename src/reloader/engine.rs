//! The reload engine shared by every reloader: compare fingerprints, read, skip
//! identical content, parse and validate, build, publish, keep status.

use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use super::retry::{Backoff, FailureLog};
use super::start::Initial;
use super::status::{
    initial_status, log_published, log_stale_crls, log_start, mark_polled, CertificateStatus,
    Reload, ReloadFailure,
};
use super::Build;
use crate::common::panic_message;
use crate::material::{Checks, WatchedFiles};
use crate::poll::Fingerprint;
use crate::Error;
use crate::KeyUri;

/// What the poller compares from tick to tick. Its lock is only ever held for a
/// few comparisons and assignments, never across a `stat`, a read or a parse, so
/// a hung mount cannot make a `status()` or `reload_now()` caller wait on it.
struct PollState {
    fingerprints: Vec<Fingerprint>,
    logged: FailureLog,
    retry_at: Option<Instant>,
    backoff: Backoff,
    /// A key/certificate mismatch seen right after a change was given one tick.
    mismatch_deferred: bool,
    /// The generation whose stale CRLs were warned about.
    stale_crl_warned: u64,
    /// The URI of the hardware key in service (or to be opened), probed every tick.
    pub(super) key_uri: Option<KeyUri>,
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

/// What a poller tick did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Polled {
    /// Nothing to do: no file changed and no retry was due.
    Idle,
    /// The files were read; their content was what is in service (the status
    /// may have changed: a failure may have ended).
    Checked,
    /// New material is in service.
    Published,
    /// An attempt failed; the previous material stays.
    Failed,
}

/// What an attempt found.
enum Attempt {
    Done(Reload),
    /// A file changed while it was read; nothing was published or decided.
    Torn,
}

pub(crate) struct Engine<T> {
    /// "acceptor" or "connector", for the logs.
    role: &'static str,
    files: WatchedFiles,
    checks: Checks,
    paths: Vec<PathBuf>,
    build: Box<dyn Build<T>>,
    current: Arc<ArcSwap<T>>,
    poll_state: Mutex<PollState>,
    attempts: Mutex<AttemptState>,
    status: watch::Sender<CertificateStatus>,
    /// Runs between the read and the re-stat of an attempt: tests use it to
    /// change a file while it is being read.
    #[cfg(test)]
    pub(super) after_read: Option<Box<dyn Fn() + Send + Sync>>,
}

/// What [`Engine::start`] needs besides the build function.
pub(crate) struct Setup {
    pub(crate) role: &'static str,
    pub(crate) files: WatchedFiles,
    pub(crate) checks: Checks,
    pub(crate) poll_interval: Duration,
    pub(crate) allow_missing: bool,
    /// Log the material loaded at start-up at info (else debug: one site among
    /// thousands, which the site set sums up in one line).
    pub(crate) announce: bool,
}

impl<T> Engine<T> {
    /// Loads, validates and builds the initial material. A failure is returned,
    /// unless `allow_missing` says to start on empty material (no certificate, no
    /// CA) and adopt the files once they are valid.
    pub(crate) fn start(setup: Setup, build: impl Build<T> + 'static) -> Result<Self, Error> {
        let build: Box<dyn Build<T>> = Box::new(build);
        let Setup {
            role,
            files,
            checks,
            poll_interval,
            allow_missing,
            announce,
        } = setup;
        let paths = files.paths();
        let fingerprints = paths.iter().map(|p| Fingerprint::of(p)).collect();
        let mut warned = HashSet::new();
        let Initial {
            built,
            summary: (certificate, ca_certificates),
            digest,
            crls,
            key_uri,
            error,
        } = Initial::load(&files, &checks, &mut warned, build.as_ref(), allow_missing)?;
        let mut status =
            initial_status(certificate, ca_certificates, poll_interval, error.as_ref());
        status.crls = crls;
        let logged = log_start(role, &status, error.as_ref(), announce);
        let engine = Self {
            role,
            files,
            checks,
            paths,
            build,
            current: Arc::new(ArcSwap::from_pointee(built)),
            poll_state: Mutex::new(PollState {
                fingerprints,
                retry_at: logged
                    .is_some()
                    .then(|| Instant::now().checked_add(poll_interval))
                    .flatten(),
                logged: logged.map(FailureLog::said).unwrap_or_default(),
                backoff: Backoff::new(poll_interval),
                mismatch_deferred: false,
                stale_crl_warned: 0,
                key_uri,
            }),
            attempts: Mutex::new(AttemptState {
                served_digest: digest,
                warned,
            }),
            status: watch::channel(status).0,
            #[cfg(test)]
            after_read: None,
        };
        engine.note_key();
        Ok(engine)
    }

    /// The published value, shared with handshake callbacks.
    pub(crate) fn current(&self) -> &Arc<ArcSwap<T>> {
        &self.current
    }

    pub(crate) fn status(&self) -> CertificateStatus {
        self.status.borrow().clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<CertificateStatus> {
        self.status.subscribe()
    }

    /// The status without a copy, for sums over many engines.
    pub(crate) fn status_ref(&self) -> watch::Ref<'_, CertificateStatus> {
        self.status.borrow()
    }

    /// One poller tick: reload if a fingerprint changed or a retry is due.
    pub(crate) fn poll(&self) -> Polled {
        self.warn_stale_crls();
        let key_due = self.key_due();
        let fingerprints = self.stat();
        let changed = {
            let state = self.lock_poll_state();
            let changed = fingerprints != state.fingerprints || key_due;
            let retry_due = state.retry_at.is_some_and(|at| Instant::now() >= at);
            (changed || retry_due).then_some(changed)
        };
        let Some(changed) = changed else {
            return Polled::Idle;
        };
        // An attempt in progress (a `reload_now`) reads the same files; this tick
        // does not queue behind it, the next one looks again.
        let Ok(mut attempt) = self.attempts.try_lock() else {
            return Polled::Idle;
        };
        let outcome = self.run(&mut attempt, fingerprints, Trigger::Poll { changed });
        self.note_key();
        match outcome {
            Ok(Reload::Published(_)) => Polled::Published,
            Ok(Reload::Unchanged) => Polled::Checked,
            Err(_) => Polled::Failed,
        }
    }

    /// Warns once per generation when a CRL in service has passed its nextUpdate
    /// (the file has not been replaced by a fresher one that loads).
    fn warn_stale_crls(&self) {
        let (generation, stale) = {
            let status = self.status.borrow();
            (status.generation, status.stale_crls())
        };
        if stale.is_empty() {
            return;
        }
        {
            let mut state = self.lock_poll_state();
            if state.stale_crl_warned == generation {
                return;
            }
            state.stale_crl_warned = generation;
        }
        log_stale_crls(self.role, &stale, self.checks.crl.stale);
    }

    /// Records that the poller finished a tick.
    pub(crate) fn mark_polled(&self) {
        mark_polled(&self.status);
    }

    /// Reads the files now, whatever their fingerprints say. Waits for an attempt
    /// in progress (its read, parse and build) first, never for a poller tick's `stat`s.
    pub(crate) fn reload_now(&self) -> Result<Reload, Error> {
        let mut attempt = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        let fingerprints = self.stat();
        let outcome = self.run(&mut attempt, fingerprints, Trigger::Forced);
        self.note_key();
        outcome
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
                tracing::debug!(role = self.role, error = %error.report(), "certificate and key do not match yet; waiting a tick for the other file");
                // Nothing is decided yet: no news, not a failure.
                return Ok(Reload::Unchanged);
            }
        }
        state.mismatch_deferred = false;
        match outcome {
            // Nothing was decided about the files: the state stays as it was.
            Ok(Attempt::Torn) => Ok(Reload::Unchanged),
            Ok(Attempt::Done(reload)) => {
                state.retry_at = None;
                state.backoff.reset();
                if state.logged.recovered() {
                    tracing::info!(role = self.role, "files on disk are valid again");
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
        let failure = ReloadFailure::new(error, SystemTime::now());
        let message = failure.message.clone();
        self.status.send_modify(|s| {
            s.failures += 1;
            s.consecutive_failures += 1;
            s.last_error = Some(failure);
        });
        if state.logged.is_new(&message) {
            tracing::warn!(
                role = self.role,
                path = error.path().map(|p| p.display().to_string()),
                error = %message,
                "reload failed; keeping previous certificate"
            );
        } else {
            tracing::debug!(role = self.role, error = %message, "reload still failing");
        }
        state.retry_at = Instant::now().checked_add(state.backoff.next_delay());
    }

    fn attempt(
        &self,
        attempt: &mut AttemptState,
        fingerprints: &[Fingerprint],
    ) -> Result<Attempt, Error> {
        let raw = self.files.read(&self.checks, &mut attempt.warned)?;
        #[cfg(test)]
        if let Some(hook) = &self.after_read {
            hook();
        }
        if self.stat() != fingerprints {
            // A writer is still at work (a leaf written, its intermediates about to
            // be appended): what was read may be a torn file. The fingerprints kept
            // are those from before the read, so the next tick reads again.
            tracing::debug!(
                role = self.role,
                "a file changed while it was read; reading it again next tick"
            );
            return Ok(Attempt::Torn);
        }
        if raw.digest == attempt.served_digest {
            tracing::debug!(
                role = self.role,
                "files changed on disk but their content did not; nothing to publish"
            );
            self.status.send_if_modified(|s| {
                let was_failing = s.consecutive_failures != 0;
                s.consecutive_failures = 0;
                was_failing
            });
            return Ok(Attempt::Done(Reload::Unchanged));
        }
        let material = self.files.parse(raw, &self.checks)?;
        let ((certificate, ca_certificates), digest) = (material.summary(), material.digest);
        let crls = material.crls();
        let key_uri = material.key_uri();
        let built = self.build.build(material)?;
        // Status first, quietly; then the context; then wake subscribers. Whoever
        // sees the new certificate in a handshake finds it in `status()` too, and
        // a subscriber woken by the change finds it in service.
        let mut generation = 0;
        self.status.send_if_modified(|s| {
            s.generation += 1;
            s.reloads += 1;
            s.consecutive_failures = 0;
            s.certificate = certificate;
            s.ca_certificates = ca_certificates;
            s.crls = crls;
            s.last_reload = SystemTime::now();
            generation = s.generation;
            false
        });
        self.current.store(Arc::new(built));
        self.status.send_modify(|_| {});
        attempt.served_digest = digest;
        self.lock_poll_state().key_uri = key_uri;
        log_published(self.role, &self.status.borrow());
        Ok(Attempt::Done(Reload::Published(generation)))
    }
}

#[path = "engine_key.rs"]
mod key;

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
