//! What tells a usable key from one that is not: the probe a key must pass
//! to be held, and how a failure to open one is told from a refused PIN.

use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::sign::{Signer, Verifier};

use super::{HardwareKeyProblem, KeyRoute};

/// A signature over a fixed message, what a handshake asks of the key,
/// checked with the key's public half: a token coming back half set up can
/// hand out a private key without its public key (libp11 then has no EC
/// point), which would never match its certificate.
pub(super) fn probe(key: &PKey<Private>) -> Result<(), HardwareKeyProblem> {
    const MESSAGE: &[u8] = b"openssl-reload key probe";
    let signature = Signer::new(MessageDigest::sha256(), key)
        .and_then(|mut signer| signer.sign_oneshot_to_vec(MESSAGE))
        .map_err(HardwareKeyProblem::Unusable)?;
    let public = key
        .public_key_to_der()
        .and_then(|der| PKey::public_key_from_der(&der))
        .map_err(HardwareKeyProblem::NoPublicHalf)?;
    let verified = Verifier::new(MessageDigest::sha256(), &public)
        .and_then(|mut verifier| verifier.verify_oneshot(&signature, MESSAGE))
        .map_err(HardwareKeyProblem::NoPublicHalf)?;
    if verified {
        Ok(())
    } else {
        Err(HardwareKeyProblem::NoPublicHalf(ErrorStack::get()))
    }
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
