//! What a reloader reports to C: a status struct, the status as JSON, and a
//! change callback run on a thread of the library. The server's and the
//! client's status functions are the functions here under two names each.

mod json;
mod watcher;

use std::ffi::{c_char, c_void};

use reload::{CertificateStatus, Reload};
use tokio::sync::watch;

pub(crate) use self::json::to_json;
pub use self::watcher::openssl_reload_change_callback;
use self::watcher::Watcher;
pub(crate) use self::watcher::WatcherSlot;
use crate::args::{arg, arg_mut};
use crate::boundary::{copy_out, guard};
use crate::error::openssl_reload_result;

/// Length of [`openssl_reload_status::serial`]: a serial of up to 20 bytes in
/// hex, its NUL, and room to spare.
pub const OPENSSL_RELOAD_SERIAL_LEN: usize = 64;

/// A reloader's status at one moment, filled by `_status`.
#[repr(C)]
#[derive(Debug)]
pub struct openssl_reload_status {
    /// Moves on every publish; 1 for the material loaded at start-up.
    pub generation: u64,
    /// Successful reloads since start-up.
    pub reloads: u64,
    /// Failed reload attempts since start-up.
    pub failures: u64,
    /// Failed attempts since the last success: 0 when the files on disk are in service.
    pub consecutive_failures: u64,
    /// The certificate in service's notAfter, in seconds since the Unix epoch
    /// (0 without a certificate).
    pub not_after: i64,
    /// The CA certificates of the trust bundle in service (0 without one).
    pub ca_certificates: u64,
    /// The certificate in service's serial number, upper-case hex, NUL-terminated
    /// (empty without a certificate).
    pub serial: [c_char; OPENSSL_RELOAD_SERIAL_LEN],
}

pub(crate) fn fill(status: &CertificateStatus, out: &mut openssl_reload_status) {
    out.generation = status.generation;
    out.reloads = status.reloads;
    out.failures = status.failures;
    out.consecutive_failures = status.consecutive_failures;
    out.ca_certificates = status.ca_certificates as u64;
    out.serial = [0; OPENSSL_RELOAD_SERIAL_LEN];
    out.not_after = 0;
    if let Some(cert) = &status.certificate {
        out.not_after = cert.not_after_unix;
        for (slot, byte) in out
            .serial
            .iter_mut()
            .zip(cert.serial.bytes().take(OPENSSL_RELOAD_SERIAL_LEN - 1))
        {
            *slot = byte as c_char;
        }
    }
}

/// The last failure's text, or "" when nothing has failed.
pub(crate) fn last_error(status: &CertificateStatus) -> String {
    status
        .last_error
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_default()
}

/// A reloader handle of either side, as the status calls see it: the server's
/// and the client's `_status`, `_reload_error`, `_status_json`, `_reload_now`
/// and `_set_change_callback` are these functions under two names each.
pub(crate) trait Reporter {
    /// `"server"` or `"client"`, for the NULL argument's error.
    const NAME: &'static str;
    fn status(&self) -> CertificateStatus;
    fn json(&self) -> String;
    fn reload_now(&self) -> Result<Reload, reload::Error>;
    fn subscribe(&self) -> watch::Receiver<CertificateStatus>;
    fn watcher(&self) -> &WatcherSlot;
}

/// `_reload_now`.
///
/// # Safety
///
/// `handle` is live; `changed` is NULL or writable.
// SAFETY: unsafe because it trusts `handle` and `changed`, raw pointers from C that Rust cannot
// check; the `# Safety` section says what they must be.
pub(crate) unsafe fn reload_now<R: Reporter>(
    handle: *const R,
    changed: *mut bool,
) -> openssl_reload_result {
    guard(|| {
        // SAFETY: `handle` is live (this function's contract), as `arg` requires.
        let handle = unsafe { arg(handle, R::NAME) }?;
        let reload = handle.reload_now()?;
        if !changed.is_null() {
            // SAFETY: `changed` is not NULL here, so by this function's contract it is writable.
            unsafe { *changed = matches!(reload, Reload::Published(_)) };
        }
        Ok(())
    })
}

/// `_status`.
///
/// # Safety
///
/// `handle` is live; `out` is writable.
// SAFETY: unsafe because it trusts `handle` and `out`, raw pointers from C that Rust cannot check;
// the `# Safety` section says what they must be.
pub(crate) unsafe fn status<R: Reporter>(
    handle: *const R,
    out: *mut openssl_reload_status,
) -> openssl_reload_result {
    guard(|| {
        // SAFETY: `handle` is live; `out` is writable (this function's contract); that is what
        // `arg` and `arg_mut` require.
        let (handle, out) = unsafe { (arg(handle, R::NAME)?, arg_mut(out, "out")?) };
        fill(&handle.status(), out);
        Ok(())
    })
}

/// `_reload_error` (`json` false) and `_status_json` (`json` true).
///
/// # Safety
///
/// `handle` is live; `buf` has room for `len` bytes (or is NULL); `out_len`
/// is writable.
// SAFETY: unsafe because it trusts `handle`, `buf` and `out_len`, raw pointers from C that Rust
// cannot check; the `# Safety` section says what they must be.
pub(crate) unsafe fn text<R: Reporter>(
    handle: *const R,
    json: bool,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> openssl_reload_result {
    guard(|| {
        // SAFETY: `handle` is live (this function's contract), as `arg` requires.
        let handle = unsafe { arg(handle, R::NAME) }?;
        let text = if json {
            handle.json()
        } else {
            last_error(&handle.status())
        };
        // SAFETY: `buf` has room for `len` bytes (or is NULL) and `out_len` is writable (this
        // function's contract), as `copy_out` requires.
        unsafe { copy_out(&text, buf, len, out_len) }
    })
}

/// `_set_change_callback`.
///
/// # Safety
///
/// `handle` is live; `callback` and `userdata` follow
/// [`openssl_reload_change_callback`]'s rules until replaced or freed.
// SAFETY: unsafe because it trusts `handle` and `userdata`, raw pointers from C that Rust cannot
// check; the `# Safety` section says what they must be.
pub(crate) unsafe fn set_change_callback<R: Reporter>(
    handle: *const R,
    callback: openssl_reload_change_callback,
    userdata: *mut c_void,
) -> openssl_reload_result {
    guard(|| {
        // SAFETY: `handle` is live (this function's contract), as `arg` requires; `callback` and
        // `userdata` are only stored here, for `Watcher::start`.
        let handle = unsafe { arg(handle, R::NAME) }?;
        let mut slot = handle.watcher().lock().unwrap_or_else(|e| e.into_inner());
        slot.take();
        if let Some(callback) = callback {
            *slot = Some(Watcher::start(handle.subscribe(), callback, userdata)?);
        }
        Ok(())
    })
}
