//! The ticket key callback that OpenSSL calls for every ticket it encrypts or
//! decrypts, and the ex_data slot through which it finds the keys.

#![allow(unsafe_code)] // An `extern "C"` callback, the EVP calls it makes on OpenSSL's raw contexts, and its installation.

use std::ffi::{c_char, c_int, c_uchar, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};

use foreign_types::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::{SslContext, SslContextBuilder, SslRef};

use super::{TicketKey, TicketKeys, NAME_LEN};

pub(super) fn ex_index() -> Result<Index<SslContext, Arc<TicketKeys>>, ErrorStack> {
    static INDEX: OnceLock<Index<SslContext, Arc<TicketKeys>>> = OnceLock::new();
    if let Some(index) = INDEX.get() {
        return Ok(*index);
    }
    let index = SslContext::new_ex_index()?;
    Ok(*INDEX.get_or_init(|| index))
}

/// Installs [`ticket_key_callback`] on the front context
/// (`SSL_CTX_set_tlsext_ticket_key_evp_cb`).
pub(super) fn set_ticket_key_callback(front: &mut SslContextBuilder) -> Result<(), ErrorStack> {
    // SAFETY: `front` is a live SSL_CTX being configured on this thread; the
    // callback is a plain function that finds its state through ex_data (and
    // fails the ticket when it is not there), valid for ever.
    let ok = unsafe {
        crate::ffi::sys::SSL_CTX_set_tlsext_ticket_key_evp_cb(
            front.as_ptr(),
            Some(ticket_key_callback),
        )
    };
    if ok == 1 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}

/// `SSL_CTX_set_tlsext_ticket_key_evp_cb`'s callback: 1 = use this key, 2 = key
/// found but old (accept and issue a new ticket), 0 = unknown key (full handshake),
/// -1 = error.
///
/// # Safety
///
/// `ssl` is the live SSL of the handshake in progress, `key_name` a 16-byte
/// buffer, `iv` an IV buffer of 16 bytes, `cipher` and `mac` live contexts.
// SAFETY: installed only through SSL_CTX_set_tlsext_ticket_key_evp_cb, so OpenSSL
// is the only caller and passes what its documentation promises (see below).
unsafe extern "C" fn ticket_key_callback(
    ssl: *mut openssl_sys::SSL,
    key_name: *mut c_uchar,
    iv: *mut c_uchar,
    cipher: *mut openssl_sys::EVP_CIPHER_CTX,
    mac: *mut openssl_sys::EVP_MAC_CTX,
    enc: c_int,
) -> c_int {
    // No panic may unwind into OpenSSL.
    panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: OpenSSL passes the live SSL of the handshake in progress.
        let ssl = unsafe { SslRef::from_ptr(ssl) };
        let Some(keys) = ex_index().ok().and_then(|i| ssl.ssl_context().ex_data(i)) else {
            return -1;
        };
        let ring = keys.ring.load();
        // SAFETY: OpenSSL passes a 16-byte key name buffer, an IV buffer of
        // EVP_MAX_IV_LENGTH (16) bytes, and initialised cipher and MAC contexts.
        unsafe {
            if enc == 1 {
                let key = &ring.keys[0];
                std::ptr::copy_nonoverlapping(key.name().as_ptr(), key_name, NAME_LEN);
                if openssl_sys::RAND_bytes(iv, 16) != 1 || !init(key, iv, cipher, mac, true) {
                    return -1;
                }
                1
            } else {
                let name = std::slice::from_raw_parts(key_name, NAME_LEN);
                let Some(position) = ring.keys.iter().position(|k| k.name() == name) else {
                    return 0;
                };
                if !init(&ring.keys[position], iv, cipher, mac, false) {
                    return -1;
                }
                if position == 0 {
                    1
                } else {
                    2
                }
            }
        }
    }))
    .unwrap_or(-1)
}

/// Keys AES-256-CBC and HMAC-SHA256 with `key`, as OpenSSL's own ticket code does.
///
/// # Safety
///
/// `iv` points to 16 readable bytes; `cipher` and `mac` are live contexts.
// SAFETY: the caller's contract is in `# Safety` above; the body only reads `key`.
unsafe fn init(
    key: &TicketKey,
    iv: *const c_uchar,
    cipher: *mut openssl_sys::EVP_CIPHER_CTX,
    mac: *mut openssl_sys::EVP_MAC_CTX,
    encrypt: bool,
) -> bool {
    let mut digest = *b"SHA256\0";
    // SAFETY: the parameters point into `key` and `digest`, which outlive the
    // call; EVP_MAC_CTX_set_params only reads them (the `*mut` is the OSSL_PARAM
    // field's type, not a licence to write).
    unsafe {
        let params = [
            openssl_sys::OSSL_PARAM_construct_octet_string(
                c"key".as_ptr(),
                key.hmac_key().as_ptr() as *mut c_void,
                key.hmac_key().len(),
            ),
            crate::ffi::sys::OSSL_PARAM_construct_utf8_string(
                c"digest".as_ptr(),
                digest.as_mut_ptr().cast::<c_char>(),
                0,
            ),
            openssl_sys::OSSL_PARAM_construct_end(),
        ];
        if openssl_sys::EVP_MAC_CTX_set_params(mac, params.as_ptr()) != 1 {
            return false;
        }
        let aes = openssl_sys::EVP_aes_256_cbc();
        let ok = if encrypt {
            openssl_sys::EVP_EncryptInit_ex(
                cipher,
                aes,
                std::ptr::null_mut(),
                key.aes_key().as_ptr(),
                iv,
            )
        } else {
            openssl_sys::EVP_DecryptInit_ex(
                cipher,
                aes,
                std::ptr::null_mut(),
                key.aes_key().as_ptr(),
                iv,
            )
        };
        ok == 1
    }
}
