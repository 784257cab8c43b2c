//! A private key decoded by a decoder told its type (`OSSL_DECODER`), which the
//! openssl crate does not wrap; `material/fastkey.rs` says why.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;

use foreign_types::ForeignType;
use openssl::error::ErrorStack;
use openssl::pkey::{PKey, Private};

use super::{cvt, cvt_p};

/// Never hands a passphrase: the keys decoded here are not encrypted, and a
/// decoder must not fall back to a terminal prompt if one turns out to be.
///
/// # Safety
///
/// None beyond OpenSSL's calling convention: no argument is read.
// SAFETY: OpenSSL's OSSL_PASSPHRASE_CALLBACK signature; the body dereferences
// none of its pointers, so any arguments OpenSSL passes are sound.
unsafe extern "C" fn no_passphrase(
    _pass: *mut c_char,
    _size: usize,
    _len: *mut usize,
    _params: *const openssl_sys::OSSL_PARAM,
    _arg: *mut c_void,
) -> c_int {
    0
}

/// The unencrypted private key (a key pair) of type `keytype` ("EC", "RSA")
/// in the PEM block `pem`, decoded by that type's decoders only; never asks
/// for a passphrase.
pub(crate) fn pem_private_key(pem: &[u8], keytype: &CStr) -> Result<PKey<Private>, ErrorStack> {
    let mut pkey: *mut openssl_sys::EVP_PKEY = ptr::null_mut();
    // SAFETY: `pkey` outlives the decoder context, which writes the decoded key
    // into it; the strings are NUL-terminated; a NULL library context and
    // property query mean the defaults, as PEM_read_bio_PrivateKey uses.
    let ctx = cvt_p(unsafe {
        openssl_sys::OSSL_DECODER_CTX_new_for_pkey(
            &mut pkey,
            c"PEM".as_ptr(),
            ptr::null(),
            keytype.as_ptr(),
            openssl_sys::EVP_PKEY_KEYPAIR,
            ptr::null_mut(),
            ptr::null(),
        )
    })?;
    // SAFETY: `ctx` is the live context made above; the callback is a plain
    // function that uses none of its arguments.
    let mut decoded = cvt(unsafe {
        openssl_sys::OSSL_DECODER_CTX_set_passphrase_cb(ctx, Some(no_passphrase), ptr::null_mut())
    });
    if decoded.is_ok() {
        let (mut data, mut len) = (pem.as_ptr(), pem.len());
        // SAFETY: `ctx` is live; `data`/`len` describe `pem`, which outlives
        // the call, and the decoder only advances them within it.
        decoded = cvt(unsafe { openssl_sys::OSSL_DECODER_from_data(ctx, &mut data, &mut len) });
    }
    // SAFETY: `ctx` is freed once, here; the key it decoded is owned by `pkey`.
    unsafe { openssl_sys::OSSL_DECODER_CTX_free(ctx) };
    // SAFETY: a non-NULL `pkey` is a key the decoder made for us, with one
    // reference, which `PKey` now owns (and frees).
    let key = (!pkey.is_null()).then(|| unsafe { PKey::from_ptr(pkey) });
    decoded?;
    key.ok_or_else(ErrorStack::get)
}
