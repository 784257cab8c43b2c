//! Unencrypted PEM keys decoded by a decoder told the key type.
//!
//! OpenSSL 3.0's `PEM_read_bio_PrivateKey` builds a decoder chain from every
//! decoder of every provider for each key it reads: about 0.5 ms a key here, most
//! of a site's load time at 10,000 sites. Given the key type, the chain is built
//! from that type's decoders only: about 0.12 ms (measured with callgrind and a C
//! loop over one P-256 key). So unencrypted EC and RSA keys in PEM, the forms
//! cert-manager and `openssl genpkey` write, take this path; anything else, or
//! anything it cannot decode, takes the general one in `parse.rs`.

#![allow(unsafe_code)] // Four decoder calls through openssl-sys, with their SAFETY notes.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;

use foreign_types::ForeignType;
use openssl::error::ErrorStack;
use openssl::pkey::{PKey, Private};

/// PEM labels of unencrypted keys and the key type each holds; `None` for
/// PKCS#8, whose type is read from its algorithm identifier.
const LABELS: [(&str, Option<&CStr>); 3] = [
    ("EC PRIVATE KEY", Some(c"EC")),
    ("RSA PRIVATE KEY", Some(c"RSA")),
    ("PRIVATE KEY", None),
];

/// DER of the OIDs id-ecPublicKey (1.2.840.10045.2.1) and rsaEncryption
/// (1.2.840.113549.1.1.1), as they appear in a PKCS#8 AlgorithmIdentifier.
const EC_OID: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const RSA_OID: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];

/// The key in `bytes` if it is an unencrypted EC or RSA key in PEM that the
/// narrowed decoder reads; `None` sends the caller down the general path.
pub(super) fn decode(bytes: &[u8]) -> Option<PKey<Private>> {
    let text = std::str::from_utf8(bytes).ok()?;
    for (label, keytype) in LABELS {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        let Some(start) = text.find(&begin) else {
            continue;
        };
        let stop = start + text[start..].find(&end)? + end.len();
        let block = &text[start..stop];
        // Traditional encrypted PEM carries its cipher in headers.
        if block.contains("Proc-Type:") {
            return None;
        }
        let keytype = match keytype {
            Some(keytype) => keytype,
            None => pkcs8_type(&block[begin.len()..])?,
        };
        return decode_narrowed(block.as_bytes(), keytype);
    }
    None
}

/// EC or RSA from the start of a PKCS#8 body: its first base64 line holds the
/// AlgorithmIdentifier.
fn pkcs8_type(body: &str) -> Option<&'static CStr> {
    let first: String = body.split_whitespace().next()?.chars().take(64).collect();
    let usable = first.len() - first.len() % 4;
    let der = openssl::base64::decode_block(&first[..usable]).ok()?;
    let head = &der[..der.len().min(32)];
    if head.windows(EC_OID.len()).any(|w| w == EC_OID) {
        Some(c"EC")
    } else if head.windows(RSA_OID.len()).any(|w| w == RSA_OID) {
        Some(c"RSA")
    } else {
        None
    }
}

/// Never hands a passphrase: the blocks decoded here are not encrypted, and a
/// decoder must not fall back to a terminal prompt if one turns out to be.
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

fn decode_narrowed(pem: &[u8], keytype: &CStr) -> Option<PKey<Private>> {
    let mut pkey: *mut openssl_sys::EVP_PKEY = ptr::null_mut();
    // SAFETY: `pkey` outlives the decoder context, which writes the decoded key
    // into it; the strings are NUL-terminated literals; a NULL library context
    // and property query mean the defaults, as PEM_read_bio_PrivateKey uses.
    let ctx = unsafe {
        openssl_sys::OSSL_DECODER_CTX_new_for_pkey(
            &mut pkey,
            c"PEM".as_ptr(),
            ptr::null(),
            keytype.as_ptr(),
            openssl_sys::EVP_PKEY_KEYPAIR,
            ptr::null_mut(),
            ptr::null(),
        )
    };
    if ctx.is_null() {
        drop(ErrorStack::get());
        return None;
    }
    let (mut data, mut len) = (pem.as_ptr(), pem.len());
    // SAFETY: `ctx` is the live context made above; the callback is a plain
    // function that uses none of its arguments; `data`/`len` describe `pem`,
    // which outlives the call, and the decoder only advances them within it.
    let ok = unsafe {
        openssl_sys::OSSL_DECODER_CTX_set_passphrase_cb(ctx, Some(no_passphrase), ptr::null_mut())
            == 1
            && openssl_sys::OSSL_DECODER_from_data(ctx, &mut data, &mut len) == 1
    };
    // SAFETY: `ctx` is freed once, here; the key it decoded is owned by `pkey`.
    unsafe { openssl_sys::OSSL_DECODER_CTX_free(ctx) };
    if pkey.is_null() {
        drop(ErrorStack::get());
        return None;
    }
    // SAFETY: `pkey` is a key the decoder made for us, with one reference, which
    // `PKey` now owns (and frees).
    let key = unsafe { PKey::from_ptr(pkey) };
    if ok {
        Some(key)
    } else {
        drop(ErrorStack::get());
        None
    }
}
