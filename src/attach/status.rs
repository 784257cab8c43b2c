//! The OCSP status callback an application had set on a context before
//! attach, called for the certificates the reloader has no staple for.

#![allow(unsafe_code)] // The application's callback and two ctrls, each with its SAFETY note.

use std::ffi::{c_int, c_void};

use foreign_types::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::ssl::{SslContextBuilder, SslRef};

use crate::ffi;

/// `SSL_CTX_get_tlsext_status_cb` and `_arg` are these ctrls (ssl.h).
const SSL_CTRL_GET_TLSEXT_STATUS_REQ_CB: c_int = 128;
const SSL_CTRL_GET_TLSEXT_STATUS_REQ_CB_ARG: c_int = 129;

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
        let mut callback: Option<ffi::StatusCallback> = None;
        let mut arg: *mut c_void = std::ptr::null_mut();
        // SAFETY: `ctx` is live; the two ctrls write the context's callback
        // pointer and its argument to the locations given, which have those types.
        unsafe {
            openssl_sys::SSL_CTX_ctrl(
                ctx.as_ptr(),
                SSL_CTRL_GET_TLSEXT_STATUS_REQ_CB,
                0,
                std::ptr::from_mut(&mut callback).cast(),
            );
            openssl_sys::SSL_CTX_ctrl(
                ctx.as_ptr(),
                SSL_CTRL_GET_TLSEXT_STATUS_REQ_CB_ARG,
                0,
                std::ptr::from_mut(&mut arg).cast(),
            );
        }
        callback.map(|callback| Self { callback, arg })
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
