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
//!
//! Here: the keys and the ring. `keys.rs`: starting, rotating and reloading
//! them; `file.rs`: the ticket-key file's format; `callback.rs`: the callback
//! OpenSSL calls.

mod callback;
mod file;
mod keys;

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
