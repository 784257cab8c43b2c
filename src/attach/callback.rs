//! The certificate callback of an attached context (`SSL_CTX_set_cert_cb`),
//! and the context's ex_data slot in which it finds what was attached.

#![allow(unsafe_code)] // `cert_cb` is `extern "C"`: OpenSSL calls it with raw pointers, and installing it hands OpenSSL one.

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use foreign_types::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::ex_data::Index;
use openssl::ssl::{SslContext, SslContextBuilder, SslContextRef, SslRef};

use super::modes::install;
use super::Attached;
use crate::ffi;

/// The slot of a context's `Attached`: only [`set_cert_callback`] writes it.
fn index() -> Result<Index<SslContext, Attached>, ErrorStack> {
    static INDEX: OnceLock<Index<SslContext, Attached>> = OnceLock::new();
    if let Some(index) = INDEX.get() {
        return Ok(*index);
    }
    let index = SslContext::new_ex_index()?;
    // A racing thread may have made another index; either is valid, one is used.
    Ok(*INDEX.get_or_init(|| index))
}

/// What a reloader attached to `ctx`, if one is.
pub(super) fn attached(ctx: &SslContextRef) -> Result<Option<&Attached>, ErrorStack> {
    Ok(ctx.ex_data(index()?))
}

/// Keeps `attached` in `ctx`'s ex_data (freed with the context) and installs
/// the certificate callback, which finds it there.
pub(super) fn set_cert_callback(
    ctx: &mut SslContextBuilder,
    attached: Attached,
) -> Result<(), ErrorStack> {
    let index = index()?;
    ctx.set_ex_data(index, attached);
    // SAFETY: `ctx` is live; the ex_data at `index` is the box set above.
    let arg = unsafe { openssl_sys::SSL_CTX_get_ex_data(ctx.as_ptr(), index.as_raw()) };
    // SAFETY: `ctx` is a live context; `arg` points into the box the context's
    // ex_data owns until the context is freed. Only this function writes that
    // slot, and it installs the callback again with the box it finds there, so
    // `arg` is valid whenever OpenSSL calls `cert_cb` for a connection of this
    // context.
    unsafe { ffi::sys::SSL_CTX_set_cert_cb(ctx.as_ptr(), Some(cert_cb), arg) };
    Ok(())
}

/// The certificate callback of an attached context.
///
/// # Safety
///
/// OpenSSL calls it with a live `SSL` and the `arg` given in
/// [`set_cert_callback`]: a pointer to that context's `Attached`.
// SAFETY: unsafe because OpenSSL is its only caller (installed by `set_cert_callback` with
// `SSL_CTX_set_cert_cb`), and the body trusts `ssl` and `arg` as the contract above says.
unsafe extern "C" fn cert_cb(ssl: *mut openssl_sys::SSL, arg: *mut c_void) -> c_int {
    // No panic may unwind into OpenSSL; a panic fails this handshake only.
    let done = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: see the function's contract; the context, and so its ex_data,
        // outlives every handshake of its connections.
        let attached = unsafe { &*arg.cast::<Attached>() };
        // SAFETY: `ssl` is the handshake's live SSL, not aliased during the call.
        let ssl = unsafe { SslRef::from_ptr_mut(ssl) };
        install(&attached.acceptor, ssl, &attached.session_id).is_ok()
    }));
    c_int::from(matches!(done, Ok(true)))
}
