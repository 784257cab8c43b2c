//! Certificates, CRLs and stores: reads of extensions, a CRL added to a store
//! from memory, a store's verify callback, and an ASN.1 time conversion.

use std::ffi::c_int;

use foreign_types::ForeignTypeRef;
use openssl::asn1::{Asn1GeneralizedTimeRef, Asn1StringRef, Asn1TimeRef};
use openssl::error::ErrorStack;
use openssl::x509::store::{X509StoreBuilderRef, X509StoreRef};
use openssl::x509::{X509CrlRef, X509Ref};

use super::cvt;
use super::sys::{self, VerifyCallback};

/// Adds a CRL to a store (`X509_STORE_add_crl`); the store takes its own
/// reference to it.
pub(crate) fn add_crl(store: &mut X509StoreBuilderRef, crl: &X509CrlRef) -> Result<(), ErrorStack> {
    // SAFETY: both pointers are live for the call (the store is borrowed
    // mutably, the CRL shared); X509_STORE_add_crl takes its own reference to
    // the CRL and keeps no pointer to anything else.
    cvt(unsafe { sys::X509_STORE_add_crl(store.as_ptr(), crl.as_ptr()) }).map(drop)
}

/// Whether a CRL carries an extension of this NID (`X509_CRL_get_ext_by_NID`).
pub(crate) fn crl_has_extension(crl: &X509CrlRef, nid: c_int) -> bool {
    // SAFETY: the CRL is live and borrowed for the call; the lookup only reads
    // its extensions and keeps no pointer.
    let at = unsafe { openssl_sys::X509_CRL_get_ext_by_NID(crl.as_ptr(), nid, -1) };
    at >= 0
}

/// The value of a certificate's extension of this NID: `None` when it has
/// none, `Some(None)` when its data cannot be read.
pub(crate) fn extension_data(cert: &X509Ref, nid: c_int) -> Option<Option<&[u8]>> {
    // SAFETY: `cert` is live for the call; the lookup only reads it.
    let at = unsafe { openssl_sys::X509_get_ext_by_NID(cert.as_ptr(), nid, -1) };
    if at < 0 {
        return None;
    }
    // SAFETY: `at` is a valid extension index of `cert`; the extension and its
    // data belong to `cert`, which outlives this borrow, and are only read.
    let data = unsafe {
        let ext = openssl_sys::X509_get_ext(cert.as_ptr(), at);
        openssl_sys::X509_EXTENSION_get_data(ext)
    };
    if data.is_null() {
        return Some(None);
    }
    // SAFETY: non-NULL, `data` is the extension's OCTET STRING, owned by `cert`
    // and only read while `cert` is borrowed.
    let value = unsafe { Asn1StringRef::from_ptr(data.cast()) };
    Some(Some(value.as_slice()))
}

/// Computes and caches in the certificate what OpenSSL otherwise computes the
/// first time a handshake uses it: its extensions and SHA-1 hash
/// (`X509_get_extension_flags`).
pub(crate) fn cache_extensions(cert: &X509Ref) {
    // SAFETY: `cert` is a live certificate; the call only fills the
    // certificate's own cache (under its lock) and returns flags.
    unsafe { openssl_sys::X509_get_extension_flags(cert.as_ptr()) };
}

/// The verify callback a store starts each verification with, if any
/// (`X509_STORE_get_verify_cb`).
pub(crate) fn store_verify_callback(store: &X509StoreRef) -> Option<VerifyCallback> {
    // SAFETY: `store` is live; the getter only reads it.
    unsafe { sys::X509_STORE_get_verify_cb(store.as_ptr()) }
}

/// A GeneralizedTime as an `Asn1TimeRef`, for `Asn1TimeRef::diff`.
pub(crate) fn generalized_as_time(time: &Asn1GeneralizedTimeRef) -> &Asn1TimeRef {
    // SAFETY: ASN1_GENERALIZEDTIME and ASN1_TIME are the same C type
    // (ASN1_STRING), and ASN1_TIME functions accept a GeneralizedTime; the
    // reference is only read while `time` lives.
    unsafe { Asn1TimeRef::from_ptr(time.as_ptr().cast()) }
}
