//! One reload's pass over the files: read every one and hash the bytes
//! (`read`), then parse and validate them into [`Material`] (`parse`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use openssl::error::ErrorStack;
use openssl::hash::{Hasher, MessageDigest};
use openssl::x509::X509;
use zeroize::Zeroizing;

use super::hardware::{open as hardware_open, HeldKey, KeyUri};
use super::read::read_key_file;
use super::staple::read_optional;
use super::{
    parse, read, validate, Checks, Identity, IdentityFiles, Material, Trust, WatchedFiles,
};
use crate::{CrlProblem, Error};

impl WatchedFiles {
    /// Reads every file (but parses nothing) and hashes the bytes, so that a rewrite
    /// with identical content can be recognised before any key is decrypted.
    pub(crate) fn read(
        &self,
        checks: &Checks,
        warned: &mut HashSet<PathBuf>,
    ) -> Result<RawMaterial, Error> {
        let limit = checks.max_file_size;
        let identity = match &self.identity {
            None => None,
            Some(IdentityFiles::Pair { cert, key }) => {
                let cert_bytes = read::read_file(cert, limit)?;
                let key_bytes = Zeroizing::new(read_key_file(key, limit, warned)?);
                Some(match key_reference(&key_bytes)? {
                    Some(uri) => self.hold(cert_bytes, &uri, checks)?,
                    None => RawIdentity::Pair {
                        cert_bytes,
                        key_bytes,
                    },
                })
            }
            Some(IdentityFiles::Pkcs12(path)) => Some(RawIdentity::Pkcs12(Zeroizing::new(
                read_key_file(path, limit, warned)?,
            ))),
            Some(IdentityFiles::Hardware { cert, key }) => {
                Some(self.hold(read::read_file(cert, limit)?, key, checks)?)
            }
        };
        let ca = match &self.ca {
            Some(path) => Some(read::read_file(path, limit)?),
            None => None,
        };
        let crl = match &self.crl {
            Some(path) => Some(read::read_file(path, limit)?),
            None => None,
        };
        // A staple (or its issuer) that cannot be read is reported, not fatal:
        // the certificate is served without it.
        let ocsp = self
            .ocsp
            .as_ref()
            .and_then(|file| read_optional(file, limit));
        let ocsp_issuer = match ocsp {
            Some(_) => self
                .ocsp_issuer
                .as_ref()
                .and_then(|file| read_optional(file, limit)),
            None => None,
        };
        let digest = digest(
            identity.as_ref(),
            ca.as_deref(),
            crl.as_deref(),
            [ocsp.as_ref(), ocsp_issuer.as_ref()],
        )
        .map_err(Error::openssl("hash the files"))?;
        Ok(RawMaterial {
            identity,
            ca,
            crl,
            ocsp,
            ocsp_issuer,
            digest,
        })
    }

    /// The certificate's bytes with the key `uri` names, held by this process
    /// (opened now only if it is not held yet: see `hardware/held.rs`).
    fn hold(
        &self,
        cert_bytes: Vec<u8>,
        uri: &KeyUri,
        checks: &Checks,
    ) -> Result<RawIdentity, Error> {
        let pin = self.passphrase.resolve(checks.max_file_size)?;
        let held = hardware_open(uri, pin.as_deref().map(|p| &p[..]))?;
        Ok(RawIdentity::Hardware {
            cert_bytes,
            uri: uri.clone(),
            held,
        })
    }

    /// Parses and validates what [`read`](Self::read) returned.
    pub(crate) fn parse(&self, raw: RawMaterial, checks: &Checks) -> Result<Material, Error> {
        let crl = match (&self.crl, &raw.crl) {
            (Some(path), Some(bytes)) => Some((path.as_path(), bytes.as_slice())),
            _ => None,
        };
        let trust = match (&self.ca, &raw.ca) {
            (Some(path), Some(bytes)) => Some(Trust::parse(path, bytes, crl, checks.crl)?),
            // A CRL needs the bundle of the CA that signed it: refused, never
            // dropped silently.
            _ => match crl {
                Some((path, _)) => {
                    return Err(Error::Crl {
                        path: path.to_owned(),
                        reason: CrlProblem::NoCaBundle,
                    })
                }
                None => None,
            },
        };
        let identity = match (&self.identity, raw.identity) {
            (Some(files), Some(raw_identity)) => {
                let mut identity = self.parse_identity(files, raw_identity, checks)?;
                if let (Some(trust), true) = (&trust, checks.chain_to_ca) {
                    trust.check_chain(files.cert_path(), &identity.cert, &identity.chain)?;
                }
                self.staple(&mut identity, raw.ocsp, raw.ocsp_issuer)?;
                Some(identity)
            }
            _ => None,
        };
        Ok(Material {
            identity,
            trust,
            digest: raw.digest,
        })
    }

    fn parse_identity(
        &self,
        files: &IdentityFiles,
        raw: RawIdentity,
        checks: &Checks,
    ) -> Result<Identity, Error> {
        // A hardware key's PIN was used (and its key held) in `read`.
        let pass = match raw {
            RawIdentity::Hardware { .. } => None,
            _ => self.passphrase.resolve(checks.max_file_size)?,
        };
        let pass = pass.as_deref().map(|p| &p[..]);
        // `read` made the raw form from these same files; the paths come from
        // `files`, the bytes from `raw`, and a PKCS#12 file is its own "key".
        let identity = match raw {
            RawIdentity::Pair {
                cert_bytes,
                key_bytes,
            } => {
                let cert = files.cert_path();
                let key = files.key_path().unwrap_or(cert);
                let (leaf, chain) = parse_chain(cert, &cert_bytes)?;
                let pkey = parse::parse_key(key, &key_bytes, pass)?;
                Identity::new(cert, leaf, chain, pkey)?
            }
            RawIdentity::Pkcs12(bytes) => parse::parse_pkcs12(files.cert_path(), &bytes, pass)?,
            RawIdentity::Hardware {
                cert_bytes,
                uri,
                held,
            } => {
                let cert = files.cert_path();
                let (leaf, chain) = parse_chain(cert, &cert_bytes)?;
                let mut identity = Identity::new(cert, leaf, chain, held.key)?;
                identity.key_uri = Some(uri);
                identity
            }
        };
        validate::validate(files, &identity, checks.validity)?;
        Ok(identity)
    }
}

/// A certificate file's leaf and the rest of its chain, in order.
fn parse_chain(cert: &Path, bytes: &[u8]) -> Result<(X509, Vec<X509>), Error> {
    let mut certs = parse::parse_certificates(cert, bytes, "certificate chain")?;
    validate::check_chain_order(cert, &certs)?;
    let leaf = certs.remove(0);
    Ok((leaf, certs))
}

/// SHA-256 over the length-prefixed bytes of every file.
fn digest(
    identity: Option<&RawIdentity>,
    ca: Option<&[u8]>,
    crl: Option<&[u8]>,
    optional: [Option<&Result<Vec<u8>, Error>>; 2],
) -> Result<[u8; 32], ErrorStack> {
    let mut hasher = Hasher::new(MessageDigest::sha256())?;
    let mut feed = |bytes: &[u8]| -> Result<(), ErrorStack> {
        hasher.update(&(bytes.len() as u64).to_be_bytes())?;
        hasher.update(bytes)
    };
    match identity {
        Some(RawIdentity::Pair {
            cert_bytes,
            key_bytes,
        }) => {
            feed(cert_bytes)?;
            feed(key_bytes)?;
        }
        Some(RawIdentity::Pkcs12(bytes)) => feed(bytes)?,
        // The key opened again (after an outage, a fork, a new PIN) is new
        // material, to be published even though no file changed.
        Some(RawIdentity::Hardware {
            cert_bytes,
            uri,
            held,
        }) => {
            feed(cert_bytes)?;
            feed(uri.secret_text().as_bytes())?;
            feed(&held.generation.to_be_bytes())?;
        }
        None => {}
    }
    if let Some(ca) = ca {
        feed(ca)?;
    }
    if let Some(crl) = crl {
        feed(crl)?;
    }
    for file in optional {
        match file {
            Some(Ok(der)) => feed(der)?,
            // A different reason is a different state to report.
            Some(Err(error)) => feed(error.report().to_string().as_bytes())?,
            // Absent and empty hash apart.
            None => feed(b"\0absent")?,
        }
    }
    let mut out = [0; 32];
    out.copy_from_slice(&hasher.finish()?);
    Ok(out)
}

/// Key bytes are zeroed when dropped: they may be an unencrypted private key.
enum RawIdentity {
    Pair {
        cert_bytes: Vec<u8>,
        key_bytes: Zeroizing<Vec<u8>>,
    },
    Pkcs12(Zeroizing<Vec<u8>>),
    /// A key in hardware, held: read means opened (once per process).
    Hardware {
        cert_bytes: Vec<u8>,
        uri: KeyUri,
        held: HeldKey,
    },
}

/// A key file that holds one line, a `pkcs11:` or `store:` URI, names a key
/// in hardware (a site directory's `NAME.key`, a secret's `tls.key`).
fn key_reference(bytes: &[u8]) -> Result<Option<KeyUri>, Error> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(None);
    };
    let line = text.trim_end_matches(['\n', '\r']);
    if line.contains('\n') {
        return Ok(None);
    }
    KeyUri::from_key_arg(line)
}

/// The bytes of every file, read but not yet parsed.
pub(crate) struct RawMaterial {
    identity: Option<RawIdentity>,
    ca: Option<Vec<u8>>,
    crl: Option<Vec<u8>>,
    ocsp: Option<Result<Vec<u8>, Error>>,
    ocsp_issuer: Option<Result<Vec<u8>, Error>>,
    pub(crate) digest: [u8; 32],
}
