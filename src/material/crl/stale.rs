//! [`StaleCrl::KeepEnforcing`](super::StaleCrl::KeepEnforcing): a CRL past its
//! nextUpdate is still enforced. The rule is the store's verify callback, and OpenSSL runs a connection's
//! own verify callback instead of its store's, so on a connection that has
//! one (a policy's, an attached application's) a small callback applies the
//! rule and then calls it.

#![allow(unsafe_code)] // Two `extern "C"` verify callbacks OpenSSL calls, and the calls that install them.

use std::ffi::c_int;
use std::sync::OnceLock;

use foreign_types::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::{Ssl, SslContextRef, SslRef};
use openssl::x509::store::X509StoreBuilderRef;

use crate::ffi;

/// The store's verify callback under the keep-enforcing rule: a CRL past
/// its nextUpdate is still used (OpenSSL goes on to look the certificate up in
/// it), every other verdict is OpenSSL's.
///
/// # Safety
///
/// `ctx` is the live store context of a verification in progress.
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

/// Makes `keep_enforcing_stale` the callback every verification against
/// `store` starts with (`X509_STORE_set_verify_cb`).
pub(super) fn keep_enforcing(store: &mut X509StoreBuilderRef) {
    // SAFETY: the store is live and borrowed mutably; the callback is a plain
    // function with the signature OpenSSL expects, valid for ever.
    unsafe { ffi::sys::X509_STORE_set_verify_cb(store.as_ptr(), Some(keep_enforcing_stale)) };
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

/// Keeps the keep-enforcing rule on a connection verified against
/// `trust`'s store whose own verify callback would replace the store's:
/// OpenSSL runs a connection's verify callback (`SSL_set_verify`) instead of
/// its store's, which is where the rule lives. The connection's callback is
/// kept and called after the rule. A no-op for the usual connection, which has
/// no callback of its own: one call and a NULL check on the handshake path.
pub(crate) fn chain_stale_rule(ssl: &mut SslRef, trust: &SslContextRef) -> Result<(), ErrorStack> {
    let Some(own) = ffi::ssl::verify_callback(ssl) else {
        return Ok(());
    };
    let store_rule = ffi::x509::store_verify_callback(trust.cert_store());
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
