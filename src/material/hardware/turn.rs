//! Taking turns with a hardware key whose provider is not thread-safe
//! (tpm2-openssl 1.1 shares one ESYS context between threads, tpm2-openssl
//! #61): once such a key is held, every user of it holds one lock.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Set once a key of a provider that is not thread-safe is held: from then
/// on handshakes, probes and opens take the lock in turn.
static SERIALISE: AtomicBool = AtomicBool::new(false);
static HANDSHAKES: Mutex<()> = Mutex::new(());

/// Providers whose key operations must not run on two threads at once:
/// tpm2-openssl shares one ESYS context per provider (tpm2-openssl #61).
const NOT_THREAD_SAFE: &[&str] = &["tpm2"];

/// The lock that serialises every use of a hardware key whose provider is not
/// thread-safe (tpm2-openssl): `Some` once such a key is held in this
/// process, `None` (nothing to hold) otherwise.
///
/// [`ReloadingAcceptor::accept`](crate::ReloadingAcceptor::accept) holds it
/// around each step of a handshake, and the poller around its probes. A
/// server that drives handshakes itself (`SSL_do_handshake`, a framework's
/// acceptor) must hold it around each call too; docs/hardware-keys.md says how.
///
/// A thread that holds it already gets `None`: the poller holds it for a
/// whole tick, whose opens and probes would otherwise wait on themselves.
pub fn hardware_key_lock() -> Option<KeyTurn> {
    if !SERIALISE.load(Ordering::Acquire) || HOLDING.get() {
        return None;
    }
    let guard = HANDSHAKES.lock().unwrap_or_else(PoisonError::into_inner);
    HOLDING.set(true);
    Some(KeyTurn(guard))
}

thread_local! {
    /// Whether this thread holds the lock.
    static HOLDING: Cell<bool> = const { Cell::new(false) };
}

/// This thread's turn with a hardware key that is not thread-safe
/// ([`hardware_key_lock`]); the next thread's comes when it drops.
#[must_use = "the turn ends when it is dropped"]
pub struct KeyTurn(#[allow(dead_code)] MutexGuard<'static, ()>);

impl Drop for KeyTurn {
    fn drop(&mut self) {
        HOLDING.set(false);
    }
}

impl std::fmt::Debug for KeyTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyTurn")
    }
}

/// Turns serialisation on if `provider` is one whose keys are not thread-safe.
pub(super) fn serialise(provider: &str) {
    if NOT_THREAD_SAFE.contains(&provider) && !SERIALISE.swap(true, Ordering::AcqRel) {
        tracing::info!(
            provider,
            "this provider's keys are not thread-safe: handshakes take turns"
        );
    }
}
