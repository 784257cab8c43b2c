//! Session id contexts (on a connection, and on the session being made on it),
//! and a connection whose state changes call no info callback.

use std::ffi::{c_int, c_uint};

use foreign_types::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::ssl::{SslRef, SslSessionRef};

use super::cvt;
use super::sys;

/// A length OpenSSL checks against `SSL_MAX_SID_CTX_LENGTH` (32) before it
/// reads anything: one that does not fit a `c_uint` is refused as too long.
fn sid_len(sid: &[u8]) -> c_uint {
    c_uint::try_from(sid.len()).unwrap_or(c_uint::MAX)
}

/// Sets a connection's session id context (`SSL_set_session_id_context`, at
/// most 32 bytes): sessions made on it from now on carry it, and only
/// sessions that carry it resume on it.
pub(crate) fn set_sid_ctx(ssl: &mut SslRef, sid: &[u8]) -> Result<(), ErrorStack> {
    // SAFETY: `ssl` is live and borrowed mutably; OpenSSL refuses a length over
    // 32, otherwise copies that many bytes of `sid`, and keeps no pointer to it.
    cvt(unsafe { sys::SSL_set_session_id_context(ssl.as_ptr(), sid.as_ptr(), sid_len(sid)) })
        .map(drop)
}

/// Sets the session id context of the session being made on `ssl`, if it
/// has one (`SSL_SESSION_set1_id_context`, at most 32 bytes). Nothing on a
/// resumed handshake, whose session may be shared with the session cache.
pub(crate) fn set_session_sid_ctx(ssl: &mut SslRef, sid: &[u8]) -> Result<(), ErrorStack> {
    if ssl.session_reused() {
        return Ok(());
    }
    let Some(session) = ssl.session() else {
        return Ok(());
    };
    // SAFETY: the session of a full handshake in progress is the connection's
    // own, which is borrowed mutably, so nothing else reads it meanwhile;
    // OpenSSL refuses a length over 32, otherwise copies the bytes, and keeps
    // no pointer to `sid`.
    cvt(unsafe { sys::SSL_SESSION_set1_id_context(session.as_ptr(), sid.as_ptr(), sid_len(sid)) })
        .map(drop)
}

/// The session id context a session carries (`SSL_SESSION_get0_id_context`).
pub(crate) fn session_sid_ctx(session: &SslSessionRef) -> &[u8] {
    let mut len: c_uint = 0;
    // SAFETY: `session` is live for the borrow; OpenSSL returns a pointer into
    // it (its fixed 32-byte array) and the length in use.
    let ptr = unsafe { sys::SSL_SESSION_get0_id_context(session.as_ptr(), &mut len) };
    if ptr.is_null() {
        return &[];
    }
    // SAFETY: `ptr` and `len` describe bytes of `session`, which the slice, tied
    // to its borrow, does not outlive.
    unsafe { std::slice::from_raw_parts(ptr, len as usize) }
}

/// Gives one connection an info callback that does nothing
/// (`SSL_set_info_callback`), so that its context's is not run for it.
pub(crate) fn quiet_info_callback(ssl: &mut SslRef) {
    /// Does nothing.
    ///
    /// # Safety
    ///
    /// None beyond OpenSSL's calling convention: no argument is read.
    // SAFETY: only the signature OpenSSL calls; it does nothing.
    unsafe extern "C" fn quiet(_: *const openssl_sys::SSL, _: c_int, _: c_int) {}

    // SAFETY: `ssl` is live; the callback is a function with static lifetime.
    unsafe { sys::SSL_set_info_callback(ssl.as_ptr(), Some(quiet)) };
}
