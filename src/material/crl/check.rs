//! A CRL file from bytes to the store: parsed (PEM with one or more CRLs, or
//! one DER CRL), checked against the CA bundle it is published with, and added
//! to that bundle's store.

use super::*;
use crate::CrlProblem;

const PEM_BEGIN: &[u8] = b"-----BEGIN X509 CRL-----";
const PEM_END: &[u8] = b"-----END X509 CRL-----";

/// Parses a CRL file: PEM with one or more CRLs, or one DER CRL.
pub(in crate::material) fn parse_crls(path: &Path, bytes: &[u8]) -> Result<Vec<X509Crl>, Error> {
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
pub(in crate::material) fn check(
    path: &Path,
    crls: &[X509Crl],
    cas: &[X509],
) -> Result<Vec<CrlInfo>, Error> {
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
pub(in crate::material) fn install(
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
