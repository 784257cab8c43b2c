//! Why a hardware key could not be opened or used.

use std::fmt;

use openssl::error::ErrorStack;

use super::KeyRoute;

/// What went wrong with a key named by a [`KeyUri`](super::KeyUri).
#[derive(Debug)]
#[non_exhaustive]
pub enum HardwareKeyProblem {
    /// The text is not a key URI; says why.
    Malformed(&'static str),
    /// No loaded provider serves the URI's scheme (load one: the server's
    /// `--provider tpm2`, `OPENSSL_CONF`, or `openssl::provider::Provider::load`).
    NoLoader {
        /// The scheme, e.g. `handle`.
        scheme: String,
    },
    /// In FIPS mode a `pkcs11:` key must come through a provider
    /// (pkcs11-provider); the libp11 engine bypasses the FIPS provider.
    FipsNeedsProvider,
    /// The libp11 engine (`libengine-pkcs11-openssl`) could not be loaded or
    /// initialised with its PKCS#11 module.
    Engine(ErrorStack),
    /// The engine is already bound to another PKCS#11 module in this process.
    ModuleConflict {
        /// The module it is bound to.
        bound: String,
    },
    /// The provider or engine could not open the key: the token is absent,
    /// the object does not exist, the module failed.
    Open {
        /// How it was tried.
        route: KeyRoute,
        /// OpenSSL's (and the provider's or engine's) errors.
        source: ErrorStack,
    },
    /// The URI names no private key.
    NotFound {
        /// How it was looked for.
        route: KeyRoute,
    },
    /// The token refused the PIN. It is not offered again until the PIN
    /// (its file, variable or callback answer) changes, so that retries do
    /// not lock the token.
    PinRefused {
        /// How it was tried.
        route: KeyRoute,
        /// OpenSSL's errors.
        source: ErrorStack,
    },
    /// The key in service failed its probe signature: the token went away.
    Unusable(ErrorStack),
    /// The key signs, but its public half is missing: a token still being
    /// set up (its public key object not there yet). Tried again at the next
    /// poll.
    NoPublicHalf(ErrorStack),
}

impl fmt::Display for HardwareKeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "it is not a key URI: {why}"),
            Self::NoLoader { scheme } => write!(
                f,
                "no loaded OpenSSL provider serves {scheme}: URIs (load its provider, e.g. --provider tpm2)"
            ),
            Self::FipsNeedsProvider => f.write_str(
                "in FIPS mode a pkcs11: key is opened only through a provider (pkcs11-provider), never the libp11 engine",
            ),
            Self::Engine(_) => f.write_str("the pkcs11 engine (libengine-pkcs11-openssl) cannot be loaded"),
            Self::ModuleConflict { bound } => {
                write!(f, "the pkcs11 engine is already bound to module {bound} in this process")
            }
            Self::Open { route, .. } => write!(f, "cannot open it through {route}"),
            Self::NotFound { route } => write!(f, "{route} finds no private key there"),
            Self::PinRefused { route, .. } => write!(
                f,
                "the token refused the PIN (through {route}); it is not tried again until the PIN changes"
            ),
            Self::Unusable(_) => f.write_str("the key in service cannot sign: the token is unavailable"),
            Self::NoPublicHalf(_) => f.write_str(
                "the key signs, but its public key is missing (a token still being set up?)",
            ),
        }
    }
}

impl std::error::Error for HardwareKeyProblem {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Engine(source)
            | Self::Open { source, .. }
            | Self::PinRefused { source, .. }
            | Self::Unusable(source)
            | Self::NoPublicHalf(source) => Some(source),
            Self::Malformed(_)
            | Self::NoLoader { .. }
            | Self::FipsNeedsProvider
            | Self::ModuleConflict { .. }
            | Self::NotFound { .. } => None,
        }
    }
}
