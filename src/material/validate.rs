//! Checks on a parsed identity before it may be published: the key belongs to
//! the certificate, the certificate is within its validity period, and each
//! certificate of the chain file is signed by the next one.

use std::path::Path;

use openssl::asn1::Asn1Time;
use openssl::x509::{X509VerifyResult, X509};

use super::identity::Identity;
use super::IdentityFiles;
use crate::{ChainProblem, Error};

/// What to do with a certificate that is outside its validity period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValidityPolicy {
    /// Refuse an expired or not-yet-valid certificate: at start-up this is an error,
    /// on reload the previous certificate stays in service. The default.
    #[default]
    Enforce,
    /// Accept it and log a warning.
    Warn,
}
/// The key matches the certificate, and the certificate's dates are acceptable
/// under `validity`.
pub(super) fn validate(
    files: &IdentityFiles,
    identity: &Identity,
    validity: ValidityPolicy,
) -> Result<(), Error> {
    let cert_path = files.cert_path();
    let public_key = identity
        .cert
        .public_key()
        .map_err(|e| Error::parse(cert_path, "certificate public key", e))?;
    if !public_key.public_eq(&identity.key) {
        return Err(Error::KeyMismatch {
            cert: cert_path.to_owned(),
            key: files.key_name(),
        });
    }
    let now = Asn1Time::days_from_now(0).map_err(Error::openssl("read the clock"))?;
    let not_before = identity.cert.not_before();
    let not_after = identity.cert.not_after();
    let problem = if not_after < now {
        Error::Expired {
            path: cert_path.to_owned(),
            not_after: not_after.to_string(),
        }
    } else if not_before > now {
        Error::NotYetValid {
            path: cert_path.to_owned(),
            not_before: not_before.to_string(),
        }
    } else {
        return Ok(());
    };
    match validity {
        ValidityPolicy::Enforce => Err(problem),
        ValidityPolicy::Warn => {
            tracing::warn!(error = %problem, "accepting certificate outside its validity period, as configured");
            Ok(())
        }
    }
}

/// Each certificate of a chain file must be signed by the one after it: servers
/// send the chain as it is, and a client cannot verify an out-of-order or torn one.
pub(super) fn check_chain_order(path: &Path, certs: &[X509]) -> Result<(), Error> {
    for (position, pair) in certs.windows(2).enumerate() {
        let (cert, issuer) = (&pair[0], &pair[1]);
        let broken = |reason| Error::BrokenChain {
            path: path.to_owned(),
            position,
            reason,
        };
        let names = issuer.issued(cert);
        if names != X509VerifyResult::OK {
            return Err(broken(ChainProblem::NotIssuer(names)));
        }
        let key = issuer
            .public_key()
            .map_err(|e| Error::parse(path, "certificate public key", e))?;
        if !cert.verify(&key).unwrap_or(false) {
            return Err(broken(ChainProblem::Signature));
        }
    }
    Ok(())
}
