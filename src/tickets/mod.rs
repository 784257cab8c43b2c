//! Session ticket keys: made and rotated in memory, or read from a file that a
//! fleet of servers shares.
//!
//! `SSL_CTX_new` makes one random ticket key that lives as long as the context,
//! and the front context lives as long as the process: a key leaked after months
//! would decrypt every TLS 1.2 session resumed in those months. The crate installs
//! its own ticket key callback (`SSL_CTX_set_tlsext_ticket_key_evp_cb`) on the
//! front context instead. It reads an immutable [`KeyRing`] with one atomic load:
//! the first key encrypts new tickets, every key decrypts, and a ticket under an
//! older key is accepted and renewed under the newest.
//!
//! Why an hour and three keys by default: a ticket is decryptable from when it is
//! issued until its key falls off the ring, which is between `(keys - 1) * period`
//! and `keys * period` later, so two to three hours. That covers OpenSSL's default
//! session lifetime of two hours (`SSL_CTX_set_timeout`), so a rotation costs no
//! resumption, while a key that leaks exposes at most the last three hours of
//! tickets instead of the process's whole life. A server with a longer session
//! timeout wants `keys * period` above it; a shorter period tightens forward
//! secrecy at no cost as long as that holds.

mod callback;
mod file;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use openssl::error::ErrorStack;
use openssl::ssl::SslContextBuilder;
use zeroize::Zeroizing;

use self::callback::{ex_index, set_ticket_key_callback};
use self::file::load_file;
use crate::poll::Fingerprint;
use crate::reloader::FailureLog;
use crate::{Error, ReloadFailure};

/// How often in-memory ticket keys rotate by default: every hour.
pub const DEFAULT_TICKET_KEY_ROTATION: Duration = Duration::from_secs(3600);

/// How many in-memory ticket keys are kept by default: the one that encrypts and
/// two older ones that still decrypt.
pub const DEFAULT_TICKET_KEYS_KEPT: usize = 3;

/// 16 bytes of key name, 32 of HMAC-SHA256 key, 32 of AES-256 key (nginx's
/// `ssl_session_ticket_key` layout; HAProxy's `tls-ticket-keys` lines in base64).
const KEY_LEN: usize = 80;
const NAME_LEN: usize = 16;

/// One ticket key. The bytes are zeroed when dropped and never printed.
struct TicketKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TicketKey(<redacted>)")
    }
}

impl TicketKey {
    fn random() -> Result<Self, ErrorStack> {
        let mut bytes = Zeroizing::new([0; KEY_LEN]);
        openssl::rand::rand_priv_bytes(&mut bytes[..])?;
        Ok(Self(bytes))
    }

    fn name(&self) -> &[u8] {
        &self.0[..NAME_LEN]
    }

    fn hmac_key(&self) -> &[u8] {
        &self.0[NAME_LEN..NAME_LEN + 32]
    }

    fn aes_key(&self) -> &[u8] {
        &self.0[NAME_LEN + 32..]
    }
}

/// The keys in service, newest (encrypting) first; never empty.
struct KeyRing {
    keys: Vec<TicketKey>,
    made: Instant,
}

/// Where ticket keys come from.
#[derive(Clone, Debug)]
pub(crate) enum KeySource {
    /// Random keys, a new one every `period`, `kept` of them in service.
    Automatic { period: Duration, kept: usize },
    /// One key per line of a file, watched like the certificates.
    File(PathBuf),
}

impl Default for KeySource {
    fn default() -> Self {
        Self::Automatic {
            period: DEFAULT_TICKET_KEY_ROTATION,
            kept: DEFAULT_TICKET_KEYS_KEPT,
        }
    }
}

/// How the session ticket keys of a [`ReloadingAcceptor`](crate::ReloadingAcceptor) are doing.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TicketKeyStatus {
    /// The ticket-key file, or `None` when the keys are made and rotated in memory.
    pub file: Option<PathBuf>,
    /// How often in-memory keys rotate (`None` with a file).
    pub rotation_period: Option<Duration>,
    /// How many keys decrypt tickets now; the first of them encrypts.
    pub keys: usize,
    /// Rotations (in memory) or reloads of the file since start-up.
    pub rotations: u64,
    /// When the keys in service were put in service.
    pub last_rotation: SystemTime,
    /// Failed loads of the file (or failed key generations) since start-up.
    pub failures: u64,
    /// The most recent failure; the keys in service stayed.
    pub last_error: Option<ReloadFailure>,
}

/// The ticket keys of one front context: what the callback reads, and what the
/// poller rotates or reloads.
pub(crate) struct TicketKeys {
    ring: ArcSwap<KeyRing>,
    source: KeySource,
    max_file_size: u64,
    file: Mutex<FileState>,
    status: Mutex<TicketKeyStatus>,
}

#[derive(Default)]
struct FileState {
    fingerprint: Option<Fingerprint>,
    digest: Option<[u8; 32]>,
    logged: FailureLog,
    warned: std::collections::HashSet<PathBuf>,
}

impl fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketKeys")
            .field("source", &self.source)
            .field("keys", &self.ring.load().keys.len())
            .finish_non_exhaustive()
    }
}

impl TicketKeys {
    /// The initial keys: random ones, or the file's. A bad file is an error unless
    /// `allow_missing`, which starts on a random key until the file is valid.
    pub(crate) fn start(
        source: KeySource,
        max_file_size: u64,
        allow_missing: bool,
    ) -> Result<Arc<Self>, Error> {
        let random = || -> Result<KeyRing, Error> {
            Ok(KeyRing {
                keys: vec![TicketKey::random().map_err(Error::TicketKeyGeneration)?],
                made: Instant::now(),
            })
        };
        let mut file = FileState::default();
        let (ring, error) = match &source {
            KeySource::Automatic { .. } => (random()?, None),
            KeySource::File(path) => {
                file.fingerprint = Some(Fingerprint::of(path));
                match load_file(path, max_file_size, &mut file) {
                    // A first read has no digest in service, so it always parses.
                    Ok(Some(ring)) => (ring, None),
                    Ok(None) => (random()?, None),
                    Err(error) if allow_missing => (random()?, Some(error)),
                    Err(error) => return Err(error),
                }
            }
        };
        let now = SystemTime::now();
        let status = TicketKeyStatus {
            file: match &source {
                KeySource::File(path) => Some(path.clone()),
                KeySource::Automatic { .. } => None,
            },
            rotation_period: match &source {
                KeySource::Automatic { period, .. } => Some(*period),
                KeySource::File(_) => None,
            },
            keys: ring.keys.len(),
            rotations: 0,
            last_rotation: now,
            failures: u64::from(error.is_some()),
            last_error: error.as_ref().map(|e| ReloadFailure::new(e, now)),
        };
        if let Some(error) = &error {
            tracing::warn!(error = %error.report(), "ticket-key file not usable at start-up, as allowed; using a random key until it is");
            file.logged = FailureLog::said(error.report().to_string());
        }
        Ok(Arc::new(Self {
            ring: ArcSwap::from_pointee(ring),
            source,
            max_file_size,
            file: Mutex::new(file),
            status: Mutex::new(status),
        }))
    }

    pub(crate) fn status(&self) -> TicketKeyStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// One poller tick: rotate when the newest key is a period old, or reload the
    /// file when its fingerprint changed.
    pub(crate) fn poll(&self) {
        match &self.source {
            KeySource::Automatic { period, kept } => {
                if self.ring.load().made.elapsed() >= *period {
                    self.rotate(*kept);
                }
            }
            KeySource::File(path) => {
                let _ = self.reload_file(path, false);
            }
        }
    }

    /// Reads the ticket-key file now whatever its fingerprint (SIGHUP); nothing to
    /// do for in-memory keys.
    pub(crate) fn reload_now(&self) -> Result<(), Error> {
        match &self.source {
            KeySource::File(path) => self.reload_file(path, true),
            KeySource::Automatic { .. } => Ok(()),
        }
    }

    fn rotate(&self, kept: usize) {
        let new = match TicketKey::random() {
            Ok(key) => key,
            Err(source) => {
                self.record_failure(&Error::TicketKeyGeneration(source));
                return;
            }
        };
        let old = self.ring.load();
        let mut keys = Vec::with_capacity(kept);
        keys.push(new);
        for key in old.keys.iter().take(kept.saturating_sub(1)) {
            keys.push(TicketKey(key.0.clone()));
        }
        let count = keys.len();
        self.ring.store(Arc::new(KeyRing {
            keys,
            made: Instant::now(),
        }));
        self.record_success(count);
        tracing::debug!(keys = count, "session ticket keys rotated");
    }

    fn reload_file(&self, path: &Path, force: bool) -> Result<(), Error> {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let fingerprint = Fingerprint::of(path);
        if !force && file.fingerprint.as_ref() == Some(&fingerprint) {
            return Ok(());
        }
        file.fingerprint = Some(fingerprint);
        match load_file(path, self.max_file_size, &mut file) {
            Ok(None) => Ok(()),
            Ok(Some(ring)) => {
                let count = ring.keys.len();
                self.ring.store(Arc::new(ring));
                self.record_success(count);
                if file.logged.recovered() {
                    tracing::info!(path = %path.display(), "ticket-key file is valid again");
                }
                tracing::info!(path = %path.display(), keys = count, "session ticket keys loaded");
                Ok(())
            }
            Err(error) => {
                self.record_failure(&error);
                let message = error.report().to_string();
                if file.logged.is_new(&message) {
                    tracing::warn!(path = %path.display(), error = %message, "ticket-key reload failed; keeping the keys in service");
                }
                Err(error)
            }
        }
    }

    fn record_success(&self, keys: usize) {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        status.keys = keys;
        status.rotations += 1;
        status.last_rotation = SystemTime::now();
    }

    fn record_failure(&self, error: &Error) {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        status.failures += 1;
        status.last_error = Some(ReloadFailure::new(error, SystemTime::now()));
    }

    /// Makes `builder`'s ticket callback find these keys. Every context that a
    /// handshake can be switched to needs it: OpenSSL calls the front context's
    /// callback, which looks the keys up on the context installed at that moment.
    pub(crate) fn attach(
        self: &Arc<Self>,
        builder: &mut SslContextBuilder,
    ) -> Result<(), ErrorStack> {
        builder.set_ex_data(ex_index()?, Arc::clone(self));
        Ok(())
    }

    /// Installs the ticket key callback on the front context.
    pub(crate) fn install(
        self: &Arc<Self>,
        front: &mut SslContextBuilder,
    ) -> Result<(), ErrorStack> {
        self.attach(front)?;
        set_ticket_key_callback(front)
    }
}
