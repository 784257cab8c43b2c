//! Parsing certificates, private keys and PKCS#12 bundles, never through a reader
//! that could prompt on a terminal.

use std::path::Path;

use openssl::error::ErrorStack;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use super::identity::Identity;
use crate::{Error, PassphraseProblem};

fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Parses one or more certificates: PEM (any number, leaf first) or a single DER.
pub(crate) fn parse_certificates(
    path: &Path,
    bytes: &[u8],
    what: &'static str,
) -> Result<Vec<X509>, Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::NoCertificate {
            path: path.to_owned(),
        });
    }
    let certs = if is_pem(bytes) {
        X509::stack_from_pem(bytes).map_err(|e| Error::parse(path, what, e))?
    } else {
        vec![X509::from_der(bytes).map_err(|e| Error::parse(path, what, e))?]
    };
    if certs.is_empty() {
        return Err(Error::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Parses a private key in PEM (PKCS#1, SEC1, PKCS#8, encrypted PKCS#8 or
/// traditional encrypted) or DER (PKCS#8, encrypted PKCS#8, PKCS#1, SEC1).
///
/// Only the callback variants of OpenSSL's readers are used: the plain ones fall
/// back to OpenSSL's terminal prompt when they meet an encrypted key.
pub(crate) fn parse_key(
    path: &Path,
    bytes: &[u8],
    passphrase: Option<&[u8]>,
) -> Result<PKey<Private>, Error> {
    let mut asked = false;
    let callback = |buf: &mut [u8]| -> Result<usize, ErrorStack> {
        asked = true;
        match passphrase {
            Some(pass) if pass.len() <= buf.len() => {
                buf[..pass.len()].copy_from_slice(pass);
                Ok(pass.len())
            }
            // No passphrase, or one longer than OpenSSL's buffer: give up on
            // this key rather than hand OpenSSL a truncated secret.
            _ => Err(ErrorStack::get()),
        }
    };
    let result = if is_pem(bytes) {
        if let Some(key) = super::fastkey::decode(bytes) {
            return Ok(key);
        }
        PKey::private_key_from_pem_callback(bytes, callback)
    } else {
        // An encrypted PKCS#8 DER first: the reader only calls the callback for
        // an encrypted structure, so plain DER falls through to the second reader.
        match PKey::private_key_from_pkcs8_callback(bytes, callback) {
            Ok(key) => Ok(key),
            Err(e) if asked => Err(e),
            Err(_) => PKey::private_key_from_der(bytes),
        }
    };
    result.map_err(|source| match (asked, passphrase) {
        (true, None) => Error::PassphraseRequired {
            path: path.to_owned(),
        },
        (true, Some(_)) => unsupported_or(path, source, |source| Error::Decrypt {
            path: path.to_owned(),
            source,
        }),
        (false, _) => unsupported_or(path, source, |source| {
            Error::parse(path, "private key", source)
        }),
    })
}

/// Parses a PKCS#12 bundle; a missing passphrase is tried as the empty one.
pub(super) fn parse_pkcs12(
    path: &Path,
    bytes: &[u8],
    passphrase: Option<&[u8]>,
) -> Result<Identity, Error> {
    let pkcs12 = Pkcs12::from_der(bytes).map_err(|e| Error::parse(path, "PKCS#12 bundle", e))?;
    let pass = match passphrase {
        None => "",
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(s) if !s.contains('\0') => s,
            _ => {
                return Err(Error::Passphrase {
                    reason: PassphraseProblem::Pkcs12NotUtf8 {
                        bundle: path.display().to_string(),
                    },
                })
            }
        },
    };
    let parsed = pkcs12.parse2(pass).map_err(|source| {
        unsupported_or(path, source, |source| {
            // Without a passphrase the empty one was tried: a MAC that does not
            // verify means the bundle has a real password.
            let mac_failed = source
                .errors()
                .iter()
                .any(|e| e.reason() == Some("mac verify failure"));
            match passphrase {
                None if mac_failed => Error::PassphraseRequired {
                    path: path.to_owned(),
                },
                None => Error::parse(path, "PKCS#12 bundle", source),
                Some(_) => Error::Decrypt {
                    path: path.to_owned(),
                    source,
                },
            }
        })
    })?;
    let missing = |missing| Error::IncompletePkcs12 {
        path: path.to_owned(),
        missing,
    };
    let cert = parsed.cert.ok_or_else(|| missing("certificate"))?;
    let key = parsed.pkey.ok_or_else(|| missing("private key"))?;
    let chain = parsed
        .ca
        .map(|s| s.into_iter().collect())
        .unwrap_or_default();
    Identity::new(path, cert, chain, key)
}

/// An `Unsupported` error if OpenSSL could not fetch an algorithm, else `other`.
fn unsupported_or(
    path: &Path,
    source: ErrorStack,
    other: impl FnOnce(ErrorStack) -> Error,
) -> Error {
    match unsupported_algorithm(&source) {
        Some(algorithm) => Error::Unsupported {
            path: path.to_owned(),
            algorithm,
            source,
        },
        None => other(source),
    }
}

/// `Some(algorithm)` if OpenSSL failed to fetch an algorithm (`unsupported`); its
/// error data reads e.g. "Global default library context, Algorithm (MD5 : 100),
/// Properties ()".
fn unsupported_algorithm(stack: &ErrorStack) -> Option<Option<String>> {
    let error = stack
        .errors()
        .iter()
        .find(|e| e.reason() == Some("unsupported"))?;
    Some(error.data().and_then(|data| {
        let rest = &data[data.find("Algorithm (")? + "Algorithm (".len()..];
        let name = rest[..rest.find(" :").or_else(|| rest.find(')'))?].trim();
        (!name.is_empty()).then(|| name.to_owned())
    }))
}
