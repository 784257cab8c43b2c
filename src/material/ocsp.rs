//! OCSP staples: a DER OCSP response (as `openssl ocsp -respout` writes it)
//! for the certificate in service, checked before it is stapled.
//!
//! A staple is optional material: one that fails a check is not stapled and
//! is reported, and the certificate stays in service, except for a certificate
//! that demands stapling (the TLS feature extension with `status_request`,
//! "must-staple"), which is not published without a valid staple.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Report;
use crate::OcspProblem;
use arc_swap::ArcSwap;
use foreign_types::ForeignTypeRef;
use openssl::asn1::{Asn1GeneralizedTimeRef, Asn1Time};
use openssl::hash::MessageDigest;
use openssl::ocsp::{
    OcspBasicResponseRef, OcspCertId, OcspCertStatus, OcspFlag, OcspResponse, OcspResponseStatus,
};
use openssl::ssl::SslRef;
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509Ref, X509VerifyResult, X509};

/// `NID_tlsfeature` (obj_mac.h), which openssl-sys does not name.
const NID_TLSFEATURE: i32 = 1020;

/// How far in the future a responder's thisUpdate may be (clock skew).
const CLOCK_SKEW: i64 = 300;

/// How long a response without nextUpdate is stapled after its thisUpdate:
/// seven days. RFC 6960 lets a responder omit nextUpdate ("newer information
/// is always available"), which says nothing of how long a stored copy stays
/// true; without a bound, such a staple would be sent for ever, however long
/// ago the certificate was last known good. OpenSSL's `OCSP_check_validity`
/// takes the same kind of bound as `maxsec`.
const MAX_AGE_WITHOUT_NEXT_UPDATE: i64 = 7 * 86_400;

/// A staple that passed every check: what the status callback hands out.
#[derive(Debug)]
pub(crate) struct Staple {
    der: Vec<u8>,
    /// From then on the staple is no longer sent (see [`current_until`]).
    until: Option<i64>,
}

/// What the status shows of a certificate's OCSP staple.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OcspInfo {
    /// The staple file.
    pub path: PathBuf,
    /// Whether it passed the checks and is sent to clients that ask (until
    /// its `next_update`, or, without one, until seven days after its
    /// `this_update`).
    pub stapled: bool,
    /// The certificate's status in the response: `good`, `revoked` or
    /// `unknown`; `None` if it could not be read.
    pub status: Option<String>,
    /// thisUpdate, as OpenSSL prints it.
    pub this_update: Option<String>,
    /// thisUpdate in seconds since the Unix epoch.
    pub this_update_unix: Option<i64>,
    /// nextUpdate, as OpenSSL prints it (`None`: the responder gave none).
    pub next_update: Option<String>,
    /// nextUpdate in seconds since the Unix epoch.
    pub next_update_unix: Option<i64>,
    /// Why it is not stapled: the [`OcspProblem`](crate::OcspProblem) and
    /// its causes in one line, as [`Error::report`](crate::Error::report)
    /// writes an error.
    pub error: Option<String>,
}

impl OcspInfo {
    /// Until when a response read into this info may be stapled (`None`: no
    /// end); why not at all, if its thisUpdate is in the future or it is no
    /// longer current.
    fn service_end(&self) -> Result<Option<i64>, OcspProblem> {
        let now = now();
        let this_update = self.this_update.clone().unwrap_or_default();
        match self.this_update_unix {
            Some(this) if this <= now + CLOCK_SKEW => {}
            _ => return Err(OcspProblem::NotYetValid { this_update }),
        }
        let until = current_until(self.this_update_unix, self.next_update_unix);
        if expired(until, now) {
            return Err(match &self.next_update {
                Some(next) => OcspProblem::Expired {
                    next_update: next.clone(),
                },
                None => OcspProblem::TooOld {
                    this_update,
                    days: MAX_AGE_WITHOUT_NEXT_UPDATE / 86_400,
                },
            });
        }
        Ok(until)
    }

    /// Whether handshakes that ask get this staple now: it passed the checks
    /// at load and its nextUpdate has not passed since (a response without
    /// nextUpdate: its thisUpdate is at most seven days old).
    pub fn in_service(&self) -> bool {
        self.stapled
            && !expired(
                current_until(self.this_update_unix, self.next_update_unix),
                now(),
            )
    }

    /// Nothing known yet of the staple at `path`.
    pub(crate) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            stapled: false,
            status: None,
            this_update: None,
            this_update_unix: None,
            next_update: None,
            next_update_unix: None,
            error: None,
        }
    }
}

/// Checks `der` as the staple of `cert` (whose issuer must be in `chain`):
/// it parses, the responder answered, it is a response for this certificate,
/// the status is good, the signature verifies against the issuer or a
/// responder the issuer delegated to, and now is within thisUpdate/nextUpdate
/// (without nextUpdate: at most [`MAX_AGE_WITHOUT_NEXT_UPDATE`] after
/// thisUpdate).
/// The info is filled as far as the response could be read.
pub(crate) fn check(
    path: &Path,
    der: &[u8],
    cert: &X509Ref,
    chain: &[X509],
) -> (Result<Staple, OcspProblem>, OcspInfo) {
    let mut info = OcspInfo::new(path);
    let checked = check_into(&mut info, der, cert, chain);
    match &checked {
        Ok(_) => info.stapled = true,
        Err(problem) => info.refused(problem),
    }
    (checked, info)
}

impl OcspInfo {
    /// Records why the staple is not stapled.
    pub(crate) fn refused(&mut self, problem: &OcspProblem) {
        self.error = Some(Report(problem).to_string());
    }
}

/// The certificate's OCSP IDs. Responders use SHA-1 IDs (openssl ocsp's
/// default) or SHA-256; a digest the provider lacks (SHA-1 under some FIPS
/// configurations) is skipped.
fn cert_ids(cert: &X509Ref, issuer: &X509Ref) -> Result<Vec<OcspCertId>, OcspProblem> {
    let ids: Vec<OcspCertId> = [MessageDigest::sha1(), MessageDigest::sha256()]
        .into_iter()
        .filter_map(|digest| OcspCertId::from_cert(digest, cert, issuer).ok())
        .collect();
    if ids.is_empty() {
        return Err(OcspProblem::CertId(openssl::error::ErrorStack::get()));
    }
    Ok(ids)
}

/// The response is signed by `issuer` or by a responder it delegated to
/// (whose certificate the response or `chain` holds).
fn verify_signature(
    basic: &OcspBasicResponseRef,
    chain: &[X509],
    issuer: &X509Ref,
) -> Result<(), OcspProblem> {
    let mut store = X509StoreBuilder::new().map_err(OcspProblem::OpenSsl)?;
    store
        .add_cert(issuer.to_owned())
        .map_err(OcspProblem::OpenSsl)?;
    // The issuer may be an intermediate: it is the trust anchor here.
    store
        .set_flags(X509VerifyFlags::PARTIAL_CHAIN)
        .map_err(OcspProblem::OpenSsl)?;
    let store = store.build();
    let mut certs = Stack::new().map_err(OcspProblem::OpenSsl)?;
    for c in chain {
        certs.push(c.clone()).map_err(OcspProblem::OpenSsl)?;
    }
    basic
        .verify(&certs, &store, OcspFlag::empty())
        .map_err(|source| OcspProblem::Signature {
            issuer: super::info::name_to_string(issuer.subject_name()),
            source,
        })
}

fn check_into(
    info: &mut OcspInfo,
    der: &[u8],
    cert: &X509Ref,
    chain: &[X509],
) -> Result<Staple, OcspProblem> {
    if der.is_empty() {
        return Err(OcspProblem::Empty);
    }
    let response = OcspResponse::from_der(der).map_err(OcspProblem::NotDer)?;
    let answer = response.status();
    if answer != OcspResponseStatus::SUCCESSFUL {
        return Err(OcspProblem::Responder {
            status: response_status(answer),
        });
    }
    let basic = response.basic().map_err(OcspProblem::NotBasic)?;
    let issuer = chain
        .iter()
        .find(|c| c.issued(cert) == X509VerifyResult::OK)
        .ok_or(OcspProblem::NoIssuer)?;
    let status = cert_ids(cert, issuer)?
        .iter()
        .find_map(|id| basic.find_status(id))
        .ok_or_else(|| {
            let serial = cert
                .serial_number()
                .to_bn()
                .and_then(|bn| bn.to_hex_str().map(|s| s.to_string()))
                .unwrap_or_default();
            OcspProblem::OtherCertificate { serial }
        })?;
    info.status = Some(cert_status(status.status).to_owned());
    info.this_update = Some(status.this_update.to_string());
    info.this_update_unix = unix(status.this_update);
    info.next_update = status.next_update().map(ToString::to_string);
    info.next_update_unix = status.next_update().and_then(unix);

    verify_signature(&basic, chain, issuer)?;

    if status.status != OcspCertStatus::GOOD {
        return Err(OcspProblem::Status {
            status: cert_status(status.status),
        });
    }
    let until = info.service_end()?;
    Ok(Staple {
        der: der.to_vec(),
        until,
    })
}

/// Whether `cert` demands a staple: the TLS feature extension (RFC 7633)
/// listing `status_request` (5).
pub(crate) fn must_staple(cert: &X509Ref) -> bool {
    let value = match crate::ffi::x509::extension_data(cert, NID_TLSFEATURE) {
        None => return false,
        Some(None) => return true, // unreadable: demand a staple rather than risk serving without
        Some(Some(value)) => value,
    };
    // SEQUENCE OF INTEGER: an INTEGER 5 (02 01 05) in it.
    value.windows(3).any(|w| w == [0x02, 0x01, 0x05])
}

/// The staples of the certificates in service, by the address of their X509,
/// which the status callback gets back from `SSL_get_certificate`. Each entry
/// holds a reference to its certificate, so no address is reused while it is
/// in the map.
#[derive(Default)]
pub(crate) struct StapleMap(HashMap<usize, (X509, Arc<Staple>)>);

impl StapleMap {
    pub(crate) fn insert(&mut self, cert: &X509, staple: Arc<Staple>) {
        self.0
            .insert(cert.as_ptr() as usize, (cert.clone(), staple));
    }
}

/// Every context a reloader serves reads the same map.
pub(crate) type Staples = Arc<ArcSwap<StapleMap>>;

/// The server status callback (`SSL_CTX_set_tlsext_status_cb`): only for a
/// client that asked for a staple; no I/O, no lock. `Ok(false)` sends none.
pub(crate) fn status_callback(
    staples: Staples,
) -> impl Fn(&mut SslRef) -> Result<bool, openssl::error::ErrorStack> + Send + Sync + 'static {
    move |ssl| {
        let Some(cert) = ssl.certificate() else {
            return Ok(false);
        };
        let map = staples.load();
        let Some((_, staple)) = map.0.get(&(cert.as_ptr() as usize)) else {
            return Ok(false);
        };
        if expired(staple.until, now()) {
            return Ok(false);
        }
        ssl.set_ocsp_status(&staple.der)?;
        Ok(true)
    }
}

/// When a response stops being current: its nextUpdate or, without one,
/// [`MAX_AGE_WITHOUT_NEXT_UPDATE`] after its thisUpdate (`None`: neither is
/// known, which a checked response never is).
fn current_until(this_update: Option<i64>, next_update: Option<i64>) -> Option<i64> {
    next_update.or_else(|| this_update.map(|this| this + MAX_AGE_WITHOUT_NEXT_UPDATE))
}

/// Whether a response current until `until` (see [`current_until`]) is no
/// longer current at `now`.
fn expired(until: Option<i64>, now: i64) -> bool {
    until.is_some_and(|until| until <= now)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn unix(time: &Asn1GeneralizedTimeRef) -> Option<i64> {
    let time = crate::ffi::x509::generalized_as_time(time);
    let epoch = Asn1Time::from_unix(0).ok()?;
    let diff = epoch.diff(time).ok()?;
    Some(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}

fn cert_status(status: OcspCertStatus) -> &'static str {
    match status {
        OcspCertStatus::GOOD => "good",
        OcspCertStatus::REVOKED => "revoked",
        _ => "unknown",
    }
}

fn response_status(status: OcspResponseStatus) -> String {
    match status {
        OcspResponseStatus::MALFORMED_REQUEST => "malformedRequest".to_owned(),
        OcspResponseStatus::INTERNAL_ERROR => "internalError".to_owned(),
        OcspResponseStatus::TRY_LATER => "tryLater".to_owned(),
        OcspResponseStatus::SIG_REQUIRED => "sigRequired".to_owned(),
        OcspResponseStatus::UNAUTHORIZED => "unauthorized".to_owned(),
        other => format!("status {}", other.as_raw()),
    }
}

#[cfg(test)]
#[path = "ocsp_tests.rs"]
mod tests;
