//! Certificate revocation lists: parsed from the bytes the poller read, checked
//! against the CA bundle they are published with, and put in that bundle's store.
//!
//! The openssl crate loads CRLs into a store only from a path
//! (`X509Lookup::file`), which would read the file again behind the poller's
//! back; the CRLs parsed here are added with `X509_STORE_add_crl` instead.

mod stale;

use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::error::ErrorStack;
use openssl::x509::extension::CrlNumber;
use openssl::x509::store::X509StoreBuilderRef;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509Crl, X509};

pub(crate) use self::stale::chain_stale_rule;
use self::stale::keep_enforcing;
use super::info::{name_to_string, unix_seconds};
use crate::{ffi, Error};

/// Which certificates of a peer's chain are checked against the CRLs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CrlCheck {
    /// The peer's own certificate only (`X509_V_FLAG_CRL_CHECK`): the CRL
    /// file must hold a CRL of the CA that issues the peers. The default.
    #[default]
    Leaf,
    /// Every certificate of the chain (`X509_V_FLAG_CRL_CHECK_ALL`): the file
    /// must hold a CRL of every CA in the chain, the root's included.
    Chain,
}

/// What happens once a CRL in service passes its nextUpdate and no newer one
/// has been published. Either way revocation is never silently left unchecked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StaleCrl {
    /// Keep enforcing the stale CRL (certificates it revokes stay refused,
    /// others are accepted) and warn once. The default: a CRL publisher that is
    /// late should not take the service down.
    #[default]
    KeepEnforcing,
    /// Refuse every peer that a stale CRL covers (OpenSSL's own behaviour,
    /// "CRL has expired") until a fresh CRL is published.
    RefuseAll,
}

/// How the CRLs are enforced.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CrlOptions {
    pub(crate) check: CrlCheck,
    pub(crate) stale: StaleCrl,
}

/// What a CRL in service says about itself, for status pages and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CrlInfo {
    /// The file it came from.
    pub path: PathBuf,
    /// The issuer, e.g. `CN=Clients CA, O=Example`.
    pub issuer: String,
    /// The CRL number extension in decimal, if it has one.
    pub number: Option<String>,
    /// How many certificates it revokes.
    pub revoked: usize,
    /// lastUpdate (thisUpdate) as OpenSSL prints it.
    pub last_update: String,
    /// lastUpdate in seconds since the Unix epoch.
    pub last_update_unix: i64,
    /// nextUpdate as OpenSSL prints it; `None` if the CRL has none.
    pub next_update: Option<String>,
    /// nextUpdate in seconds since the Unix epoch.
    pub next_update_unix: Option<i64>,
}

const PEM_BEGIN: &[u8] = b"-----BEGIN X509 CRL-----";
const PEM_END: &[u8] = b"-----END X509 CRL-----";

/// Why a CRL file was refused ([`Error::Crl`]). CRLs are numbered from 1 in
/// the order of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CrlProblem {
    /// The file holds nothing but white space.
    Empty,
    /// A PEM CRL has no END line.
    Unterminated,
    /// The file is PEM but holds no `X509 CRL` block.
    NoCrlBlock,
    /// A CRL file is configured without a CA bundle to check it against.
    NoCaBundle,
    /// A delta CRL (it carries the Delta CRL Indicator extension): only
    /// complete CRLs are supported.
    Delta {
        /// Which CRL of the file.
        index: usize,
        /// Its issuer, e.g. `CN=Clients CA`.
        issuer: String,
    },
    /// No CA of the bundle whose name is its issuer signed it.
    Unsigned {
        /// Which CRL of the file.
        index: usize,
        /// Its issuer.
        issuer: String,
    },
    /// Its lastUpdate is in the future.
    NotYetValid {
        /// Which CRL of the file.
        index: usize,
        /// Its issuer.
        issuer: String,
        /// Its lastUpdate, as OpenSSL prints it.
        last_update: String,
    },
    /// Its nextUpdate has passed.
    Expired {
        /// Which CRL of the file.
        index: usize,
        /// Its issuer.
        issuer: String,
        /// Its nextUpdate, as OpenSSL prints it.
        next_update: String,
    },
}

impl fmt::Display for CrlProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the file is empty: it holds no CRL"),
            Self::Unterminated => f.write_str("a PEM CRL has no END line"),
            Self::NoCrlBlock => f.write_str("holds no PEM block `X509 CRL`"),
            Self::NoCaBundle => f.write_str("a CRL needs a CA bundle (`ca`) that signed it"),
            Self::Delta { index, issuer } => write!(
                f,
                "CRL {index} (issuer {issuer}) is a delta CRL (it carries the Delta CRL \
                 Indicator extension); only complete CRLs are supported"
            ),
            Self::Unsigned { index, issuer } => write!(
                f,
                "CRL {index} (issuer {issuer}) is signed by no CA in the bundle"
            ),
            Self::NotYetValid {
                index,
                issuer,
                last_update,
            } => write!(
                f,
                "CRL {index} (issuer {issuer}) is not yet valid (lastUpdate {last_update})"
            ),
            Self::Expired {
                index,
                issuer,
                next_update,
            } => write!(
                f,
                "CRL {index} (issuer {issuer}) is past its nextUpdate ({next_update})"
            ),
        }
    }
}

/// Parses a CRL file: PEM with one or more CRLs, or one DER CRL.
pub(super) fn parse_crls(path: &Path, bytes: &[u8]) -> Result<Vec<X509Crl>, Error> {
    let refuse = |reason| Error::Crl {
        path: path.to_owned(),
        reason,
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(refuse(CrlProblem::Empty));
    }
    let parse_failed = |e| Error::parse(path, "CRL", e);
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Ok(vec![X509Crl::from_der(bytes).map_err(parse_failed)?]);
    }
    let mut crls = Vec::new();
    let mut rest = bytes;
    while let Some(start) = find(rest, PEM_BEGIN) {
        let Some(len) = find(&rest[start..], PEM_END) else {
            return Err(refuse(CrlProblem::Unterminated));
        };
        let end = start + len + PEM_END.len();
        crls.push(X509Crl::from_pem(&rest[start..end]).map_err(parse_failed)?);
        rest = &rest[end..];
    }
    if crls.is_empty() {
        return Err(refuse(CrlProblem::NoCrlBlock));
    }
    Ok(crls)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Checks every CRL before it is published: a complete CRL, not a delta;
/// signed by a CA of `cas` (whose name is its issuer); lastUpdate not in the
/// future; nextUpdate not passed.
pub(super) fn check(path: &Path, crls: &[X509Crl], cas: &[X509]) -> Result<Vec<CrlInfo>, Error> {
    let failed = |e| Error::parse(path, "CRL", e);
    let now = Asn1Time::days_from_now(0).map_err(failed)?;
    let mut infos = Vec::with_capacity(crls.len());
    for (index, crl) in crls.iter().enumerate() {
        let issuer = name_to_string(crl.issuer_name());
        let (index, refuse) = (index + 1, |reason| Error::Crl {
            path: path.to_owned(),
            reason,
        });
        // Without X509_V_FLAG_USE_DELTAS OpenSSL scores a delta CRL like a
        // complete one, so a newer delta that does not repeat a revocation
        // would replace the base that holds it.
        if is_delta(crl) {
            return Err(refuse(CrlProblem::Delta { index, issuer }));
        }
        let signed = signed_by_one_of(crl, cas).map_err(failed)?;
        if !signed {
            return Err(refuse(CrlProblem::Unsigned { index, issuer }));
        }
        if crl.last_update().compare(&now).map_err(failed)? == Ordering::Greater {
            return Err(refuse(CrlProblem::NotYetValid {
                index,
                issuer,
                last_update: crl.last_update().to_string(),
            }));
        }
        if let Some(next) = crl.next_update() {
            if next.compare(&now).map_err(failed)? == Ordering::Less {
                return Err(refuse(CrlProblem::Expired {
                    index,
                    issuer,
                    next_update: next.to_string(),
                }));
            }
        }
        infos.push(info(path, issuer, crl).map_err(failed)?);
    }
    Ok(infos)
}

/// Whether a CA of `cas` whose name is the CRL's issuer signed it.
fn signed_by_one_of(crl: &X509Crl, cas: &[X509]) -> Result<bool, ErrorStack> {
    let mut signed = false;
    for ca in cas {
        if ca.subject_name().try_cmp(crl.issuer_name())? != Ordering::Equal {
            continue;
        }
        if crl.verify(&*ca.public_key()?).unwrap_or(false) {
            signed = true;
            break;
        }
    }
    // Verification failures leave errors on OpenSSL's queue; they are not ours.
    let _ = ErrorStack::get();
    Ok(signed)
}

/// What the status shows of a CRL that passed the checks.
fn info(path: &Path, issuer: String, crl: &X509Crl) -> Result<CrlInfo, ErrorStack> {
    let number = match crl.extension::<CrlNumber>()? {
        Some((_, n)) => Some(n.to_bn()?.to_dec_str()?.to_string()),
        None => None,
    };
    Ok(CrlInfo {
        path: path.to_owned(),
        issuer,
        number,
        revoked: crl.get_revoked().map_or(0, |r| r.len()),
        last_update: crl.last_update().to_string(),
        last_update_unix: unix_seconds(crl.last_update())?,
        next_update: crl.next_update().map(ToString::to_string),
        next_update_unix: crl.next_update().map(unix_seconds).transpose()?,
    })
}

/// Whether `crl` is a delta CRL (RFC 5280 5.2.4): it carries the Delta CRL
/// Indicator extension.
fn is_delta(crl: &X509Crl) -> bool {
    ffi::x509::crl_has_extension(crl, openssl_sys::NID_delta_crl)
}

/// Puts `crls` in the store and turns on their checking.
pub(super) fn install(
    store: &mut X509StoreBuilderRef,
    crls: &[X509Crl],
    options: CrlOptions,
) -> Result<(), ErrorStack> {
    for crl in crls {
        ffi::x509::add_crl(store, crl)?;
    }
    store.set_flags(match options.check {
        CrlCheck::Leaf => X509VerifyFlags::CRL_CHECK,
        CrlCheck::Chain => X509VerifyFlags::CRL_CHECK | X509VerifyFlags::CRL_CHECK_ALL,
    })?;
    if options.stale == StaleCrl::KeepEnforcing {
        keep_enforcing(store);
    }
    Ok(())
}
