//! Private keys that stay in hardware (an HSM, a TPM, a smart card), named by
//! a URI instead of a file: what a URI is (`uri.rs`), how a key is opened,
//! held once per process, probed and opened again after an outage
//! (`held.rs`), taking turns where the provider needs it (`turn.rs`), the
//! providers' order and fresh instances (`providers.rs`), the libp11 engine
//! and its fresh instances (`engine.rs`), the probe a key must pass
//! (`probe.rs`), and what can go wrong (`problem.rs`).
//!
//! docs/hardware-keys.md describes the routes (a provider's `OSSL_STORE`
//! loader, or the libp11 engine for `pkcs11:` where no provider serves it)
//! and the rotation rules; docs/design.md, "Keys in hardware", the reasons.

mod engine;
mod held;
mod probe;
mod problem;
mod providers;
mod turn;
mod uri;

use std::fmt;
use std::time::SystemTime;

pub(crate) use self::held::{needs_open, open, opened_elsewhere, status as key_status, HeldKey};
pub use self::problem::HardwareKeyProblem;
pub use self::providers::load_key_providers;
pub use self::turn::{hardware_key_lock, KeyTurn};
pub use self::uri::KeyUri;

/// How a hardware key was opened.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyRoute {
    /// Through `OSSL_STORE`, by the store loader of this provider (e.g.
    /// `tpm2`, `pkcs11`): the key's operations run in that provider.
    Provider {
        /// The provider's name.
        name: String,
    },
    /// Through an OpenSSL engine (`pkcs11`, libp11), because no loaded
    /// provider serves the URI's scheme. Never in FIPS mode.
    Engine {
        /// The engine's id.
        id: String,
    },
}

impl fmt::Display for KeyRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Provider { name } => write!(f, "provider {name} (OSSL_STORE)"),
            Self::Engine { id } => {
                write!(f, "engine {id} (no loaded provider serves pkcs11: URIs)")
            }
        }
    }
}

/// What a reloader reports about its hardware key.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyStatus {
    /// The key's URI, with any `pin-value` redacted.
    pub uri: String,
    /// How it is opened; `None` until it first was.
    pub route: Option<KeyRoute>,
    /// Whether the key in service answered the last probe (a signature made
    /// on the poller thread, at most once per poll interval).
    pub available: bool,
    /// When the current outage began: the probe failed, or the key could not
    /// be opened. `None` while it is available.
    pub unavailable_since: Option<SystemTime>,
    /// Outages seen since start-up.
    pub outages: u64,
    /// How often the key was opened in this process (1 unless it was opened
    /// again after an outage, a fork or a PIN change).
    pub opened: u64,
    /// Why the last probe or open failed, if one did.
    pub last_error: Option<String>,
}
