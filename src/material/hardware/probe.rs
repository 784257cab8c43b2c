//! What tells a usable key from one that is not: the probe a key must pass
//! to be held, and how a failure to open one is told from a refused PIN.

use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::sign::Signer;

use super::{HardwareKeyProblem, KeyRoute};

/// A signature over a fixed message, what a handshake asks of the key; and
/// for a key through the libp11 engine, its public half: a token coming back
/// half set up can hand out a private key before its public key object
/// exists (libp11 then has no EC point), and that key signs but never
/// matches its certificate. (Not for a provider's key: checking it would
/// send more work to the device, tpm2-openssl's verification runs on the
/// TPM.)
pub(super) fn probe(
    key: &PKey<Private>,
    route: Option<&KeyRoute>,
) -> Result<(), HardwareKeyProblem> {
    Signer::new(MessageDigest::sha256(), key)
        .and_then(|mut signer| signer.sign_oneshot_to_vec(b"openssl-reload key probe"))
        .map_err(HardwareKeyProblem::Unusable)?;
    if matches!(route, Some(KeyRoute::Engine { .. })) {
        key.public_key_to_der()
            .map_err(HardwareKeyProblem::NoPublicHalf)?;
    }
    Ok(())
}

/// A failure whose reason names the PIN (libp11: "PIN incorrect", "PIN
/// locked") is a refusal; anything else a failure to open, also "User pin
/// not initialized": a token coming back, half set up.
pub(super) fn refused_or_open(route: KeyRoute, source: ErrorStack) -> HardwareKeyProblem {
    let pin = source.errors().iter().any(|e| {
        let reason = e.reason().unwrap_or_default().to_ascii_lowercase();
        reason.contains("pin") && !reason.contains("pin len") && !reason.contains("not initialized")
    });
    if pin {
        HardwareKeyProblem::PinRefused { route, source }
    } else {
        HardwareKeyProblem::Open { route, source }
    }
}
