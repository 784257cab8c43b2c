//! The OCSP status callback an application had set on a context before
//! attach, called for the certificates the reloader has no staple for.

#![allow(unsafe_code)] // Calls the application's `extern "C"` callback, whose argument is a raw pointer.

use std::ffi::c_void;

use foreign_types::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::ssl::{SslContextBuilder, SslRef};

use crate::ffi;

/// The status callback and argument an application had set on its context,
/// called when the reloader has no staple for the certificate.
#[derive(Clone, Copy)]
pub(super) struct AppStatus {
    callback: ffi::StatusCallback,
    arg: *mut c_void,
}

// SAFETY: `arg` is handed back to the application's own callback, which OpenSSL
// would call with it from any handshake thread as well.
unsafe impl Send for AppStatus {}
// SAFETY: as for Send: the pointer is only passed on, never dereferenced here.
unsafe impl Sync for AppStatus {}

impl AppStatus {
    /// The callback on `ctx`, if any.
    pub(super) fn of(ctx: &SslContextBuilder) -> Option<Self> {
        ffi::ssl::status_callback(ctx).map(|(callback, arg)| Self { callback, arg })
    }

    pub(super) fn call(self, ssl: &mut SslRef) -> Result<bool, ErrorStack> {
        // SAFETY: the application installed `callback` for connections of this
        // context with `arg`; `ssl` is the live handshake OpenSSL called us for.
        match unsafe { (self.callback)(ssl.as_ptr(), self.arg) } {
            openssl_sys::SSL_TLSEXT_ERR_OK => Ok(true),
            openssl_sys::SSL_TLSEXT_ERR_NOACK => Ok(false),
            _ => Err(ErrorStack::get()),
        }
    }
}
