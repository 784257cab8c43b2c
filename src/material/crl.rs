//! Certificate revocation lists: parsed from the bytes the poller read, checked
//! against the CA bundle they are published with, and put in that bundle's store.
//!
//! The openssl crate loads CRLs into a store only from a path
//! (`X509Lookup::file`), which would read the file again behind the poller's
//! back; the CRLs parsed here are added with `X509_STORE_add_crl` instead.

#![allow(unsafe_code)] // Calls through crate::ffi and openssl-sys, each with its SAFETY note.

use std::cmp::Ordering;
use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use foreign_types::ForeignTypeRef;
use openssl::asn1::Asn1Time;
use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::{Ssl, SslContextRef, SslRef};
use openssl::x509::extension::CrlNumber;
use openssl::x509::store::X509StoreBuilderRef;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509Crl, X509};

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

/// Parses a CRL file: PEM with one or more CRLs, or one DER CRL.
pub(super) fn parse_crls(path: &Path, bytes: &[u8]) -> Result<Vec<X509Crl>, Error> {
    let refuse = |reason: &str| Error::Crl {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(refuse("the file is empty: it holds no CRL"));
    }
    let parse_failed = |e| Error::parse(path, "CRL", e);
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Ok(vec![X509Crl::from_der(bytes).map_err(parse_failed)?]);
    }
    let mut crls = Vec::new();
    let mut rest = bytes;
    while let Some(start) = find(rest, PEM_BEGIN) {
        let Some(len) = find(&rest[start..], PEM_END) else {
            return Err(refuse("a PEM CRL has no END line"));
        };
        let end = start + len + PEM_END.len();
        crls.push(X509Crl::from_pem(&rest[start..end]).map_err(parse_failed)?);
        rest = &rest[end..];
    }
    if crls.is_empty() {
        return Err(refuse("holds no PEM block `X509 CRL`"));
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
        let refuse = |what: String| Error::Crl {
            path: path.to_owned(),
            reason: format!("CRL {} (issuer {issuer}) {what}", index + 1),
        };
        // Without X509_V_FLAG_USE_DELTAS OpenSSL scores a delta CRL like a
        // complete one, so a newer delta that does not repeat a revocation
        // would replace the base that holds it.
        if is_delta(crl) {
            return Err(refuse(
                "is a delta CRL (it carries the Delta CRL Indicator extension); only complete \
                 CRLs are supported"
                    .to_owned(),
            ));
        }
        let signed = signed_by_one_of(crl, cas).map_err(failed)?;
        if !signed {
            return Err(refuse("is signed by no CA in the bundle".to_owned()));
        }
        if crl.last_update().compare(&now).map_err(failed)? == Ordering::Greater {
            return Err(refuse(format!(
                "is not yet valid (lastUpdate {})",
                crl.last_update()
            )));
        }
        if let Some(next) = crl.next_update() {
            if next.compare(&now).map_err(failed)? == Ordering::Less {
                return Err(refuse(format!("is past its nextUpdate ({next})")));
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
    // SAFETY: the CRL is live and borrowed for the call; the lookup only reads
    // its extensions and keeps no pointer.
    let at = unsafe {
        openssl_sys::X509_CRL_get_ext_by_NID(crl.as_ptr(), openssl_sys::NID_delta_crl, -1)
    };
    at >= 0
}

/// Puts `crls` in the store and turns on their checking.
pub(super) fn install(
    store: &mut X509StoreBuilderRef,
    crls: &[X509Crl],
    options: CrlOptions,
) -> Result<(), ErrorStack> {
    for crl in crls {
        // SAFETY: both pointers are live for the call (the store is borrowed
        // mutably, the CRL shared); X509_STORE_add_crl takes its own reference to
        // the CRL and keeps no pointer to anything else.
        let ok = unsafe { ffi::X509_STORE_add_crl(store.as_ptr(), crl.as_ptr()) };
        if ok != 1 {
            return Err(ErrorStack::get());
        }
    }
    store.set_flags(match options.check {
        CrlCheck::Leaf => X509VerifyFlags::CRL_CHECK,
        CrlCheck::Chain => X509VerifyFlags::CRL_CHECK | X509VerifyFlags::CRL_CHECK_ALL,
    })?;
    if options.stale == StaleCrl::KeepEnforcing {
        // SAFETY: the store is live and borrowed mutably; the callback is a plain
        // function with the signature OpenSSL expects, valid for ever.
        unsafe { ffi::X509_STORE_set_verify_cb(store.as_ptr(), Some(keep_enforcing_stale)) };
    }
    Ok(())
}

/// The store's verify callback under [`StaleCrl::KeepEnforcing`]: a CRL past
/// its nextUpdate is still used (OpenSSL goes on to look the certificate up in
/// it), every other verdict is OpenSSL's.
// SAFETY: the X509_STORE_CTX_verify_cb signature; callers (OpenSSL only, through
// X509_STORE_set_verify_cb) pass the live context of the verification in progress.
unsafe extern "C" fn keep_enforcing_stale(
    ok: c_int,
    ctx: *mut openssl_sys::X509_STORE_CTX,
) -> c_int {
    // SAFETY: OpenSSL calls this with the live store context of a verification
    // in progress; reading and resetting its error is what verify callbacks do.
    unsafe {
        if ok == 0
            && openssl_sys::X509_STORE_CTX_get_error(ctx) == openssl_sys::X509_V_ERR_CRL_HAS_EXPIRED
        {
            openssl_sys::X509_STORE_CTX_set_error(ctx, openssl_sys::X509_V_OK);
            return 1;
        }
    }
    ok
}

/// A connection's own verify callback (the policy's, or an attached
/// application's), kept while [`chained_verify`] stands in for it.
struct OwnVerify(ffi::VerifyCallback);

fn own_verify_index() -> Result<Index<Ssl, OwnVerify>, ErrorStack> {
    static INDEX: OnceLock<Index<Ssl, OwnVerify>> = OnceLock::new();
    if let Some(index) = INDEX.get() {
        return Ok(*index);
    }
    let index = Ssl::new_ex_index()?;
    // A racing thread may have made another index; either is valid, one is used.
    Ok(*INDEX.get_or_init(|| index))
}

/// Keeps [`StaleCrl::KeepEnforcing`] on a connection verified against
/// `trust`'s store whose own verify callback would replace the store's:
/// OpenSSL runs a connection's verify callback (`SSL_set_verify`) instead of
/// its store's, which is where the rule lives. The connection's callback is
/// kept and called after the rule. A no-op for the usual connection, which has
/// no callback of its own: one call and a NULL check on the handshake path.
pub(crate) fn chain_stale_rule(ssl: &mut SslRef, trust: &SslContextRef) -> Result<(), ErrorStack> {
    // SAFETY: `ssl` is live and borrowed for the call; the getter only reads.
    let Some(own) = (unsafe { ffi::SSL_get_verify_callback(ssl.as_ptr()) }) else {
        return Ok(());
    };
    // SAFETY: `trust` is live; its store is read, not kept.
    let store_rule = unsafe {
        ffi::X509_STORE_get_verify_cb(openssl_sys::SSL_CTX_get_cert_store(trust.as_ptr()))
    };
    let ours: ChainedVerify = chained_verify;
    let rule_in_store = store_rule.is_some_and(|rule| {
        std::ptr::fn_addr_eq(rule, keep_enforcing_stale as ffi::VerifyCallback)
    });
    if !rule_in_store || std::ptr::fn_addr_eq(own, ours) {
        return Ok(());
    }
    ssl.set_ex_data(own_verify_index()?, OwnVerify(own));
    let mode = ssl.verify_mode().bits();
    // SAFETY: `ssl` is live; the callback is a function valid for ever, and
    // the one it replaces is kept in the connection's ex_data for it to call.
    unsafe { openssl_sys::SSL_set_verify(ssl.as_ptr(), mode, Some(chained_verify)) };
    Ok(())
}

/// The type openssl-sys gives `SSL_set_verify`'s callback.
type ChainedVerify = extern "C" fn(c_int, *mut openssl_sys::X509_STORE_CTX) -> c_int;

/// The stale-CRL rule, then the connection's own verify callback. OpenSSL is
/// its only caller (set by `chain_stale_rule` with `SSL_set_verify`), with the
/// live context of the verification in progress, whose ex_data holds the
/// connection; openssl-sys types the callback as a safe function.
extern "C" fn chained_verify(ok: c_int, ctx: *mut openssl_sys::X509_STORE_CTX) -> c_int {
    // SAFETY: `ctx` is the live verification OpenSSL called us for; the rule
    // only reads and resets its error.
    let ok = unsafe { keep_enforcing_stale(ok, ctx) };
    // SAFETY: a verification OpenSSL runs for a connection carries it at this
    // index (ssl_verify_cert_chain); it is live for the whole verification.
    let ssl = unsafe {
        openssl_sys::X509_STORE_CTX_get_ex_data(
            ctx,
            openssl_sys::SSL_get_ex_data_X509_STORE_CTX_idx(),
        )
    };
    if ssl.is_null() {
        return ok;
    }
    // SAFETY: non-NULL, it is the connection being verified, only read here.
    let ssl = unsafe { SslRef::from_ptr(ssl.cast()) };
    let own = own_verify_index()
        .ok()
        .and_then(|index| ssl.ex_data(index))
        .map(|o| o.0);
    match own {
        // SAFETY: the connection's own callback, called as OpenSSL would have
        // called it, with the same live context.
        Some(own) => unsafe { own(ok, ctx) },
        None => ok,
    }
}
