//! The C interface of openssl-reload: `libopenssl_reload.so`, `openssl_reload.h`.
//!
//! Conventions (after rustls-ffi; `docs/c-api.md` is the reference for callers):
//!
//! - Opaque handles, created by a `_new` or `_build` function and released by
//!   its `_free`; `_free(NULL)` does nothing.
//! - Every other function returns an [`openssl_reload_result`], checks each
//!   pointer for NULL, and writes its outputs only on success.
//! - On failure the error's full text (the file and every reason down to
//!   OpenSSL's) is kept per thread for [`openssl_reload_last_error`].
//! - No panic crosses the boundary: each function runs under `catch_unwind`,
//!   and a panic becomes `OPENSSL_RELOAD_PANIC`.
//! - Callbacks take a `void *userdata` that is passed back unchanged.

#![allow(unsafe_code)] // The whole crate is the foreign interface.
#![allow(non_camel_case_types)] // C names for C callers.

mod builder;
mod client;
mod server;
mod status;
#[cfg(test)]
mod test_support;

use std::cell::RefCell;
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

pub use crate::builder::*;
pub use crate::client::*;
pub use crate::server::*;
pub use crate::status::*;

/// The C ABI version, which the SONAME carries (`libopenssl_reload.so.0`).
/// Keep equal to `ABI` in build.rs.
pub const OPENSSL_RELOAD_ABI_VERSION: u32 = 0;

/// What a function did. `OPENSSL_RELOAD_OK` is 0; every other value is a
/// failure whose text [`openssl_reload_last_error`] gives.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum openssl_reload_result {
    /// Success.
    OPENSSL_RELOAD_OK = 0,
    /// A required pointer argument was NULL.
    OPENSSL_RELOAD_NULL_PARAMETER = 1,
    /// An argument was not acceptable: a string that is not UTF-8, a zero
    /// interval, a handle used after it was consumed.
    OPENSSL_RELOAD_INVALID_PARAMETER = 2,
    /// The caller's buffer is too small; nothing was written but the needed size.
    OPENSSL_RELOAD_INSUFFICIENT_SIZE = 3,
    /// Certificate material could not be loaded or was refused (unreadable,
    /// unparsable, mismatched, expired, untrusted, a bad CRL): the text names the
    /// file and the reason. At start-up nothing is built; on a reload the
    /// previous material stays in service.
    OPENSSL_RELOAD_MATERIAL = 4,
    /// No certificate was configured for a server.
    OPENSSL_RELOAD_NO_IDENTITY = 5,
    /// Strict SNI refused the connection's name.
    OPENSSL_RELOAD_UNKNOWN_SITE = 6,
    /// An OpenSSL call failed outside any file (building a context, installing
    /// a callback, configuring a connection).
    OPENSSL_RELOAD_OPENSSL = 7,
    /// The process's libssl is not the major.minor version the library was
    /// built against.
    OPENSSL_RELOAD_VERSION_MISMATCH = 8,
    /// A thread could not be started.
    OPENSSL_RELOAD_THREAD = 9,
    /// The library panicked; the call had no effect. A bug: please report it.
    OPENSSL_RELOAD_PANIC = 10,
    /// A reloader is attached to the context already; the first attachment
    /// stays.
    OPENSSL_RELOAD_ALREADY_ATTACHED = 11,
    /// The session OpenSSL resumed was not made for the connection's name
    /// under the trust, site and context in service: answer with
    /// `SSL_TLSEXT_ERR_ALERT_FATAL`.
    OPENSSL_RELOAD_SESSION_REFUSED = 12,
}

use openssl_reload_result::*;

const ALL: [openssl_reload_result; 13] = [
    OPENSSL_RELOAD_OK,
    OPENSSL_RELOAD_NULL_PARAMETER,
    OPENSSL_RELOAD_INVALID_PARAMETER,
    OPENSSL_RELOAD_INSUFFICIENT_SIZE,
    OPENSSL_RELOAD_MATERIAL,
    OPENSSL_RELOAD_NO_IDENTITY,
    OPENSSL_RELOAD_UNKNOWN_SITE,
    OPENSSL_RELOAD_OPENSSL,
    OPENSSL_RELOAD_VERSION_MISMATCH,
    OPENSSL_RELOAD_THREAD,
    OPENSSL_RELOAD_PANIC,
    OPENSSL_RELOAD_ALREADY_ATTACHED,
    OPENSSL_RELOAD_SESSION_REFUSED,
];

impl openssl_reload_result {
    fn message(self) -> &'static str {
        match self {
            OPENSSL_RELOAD_OK => "success",
            OPENSSL_RELOAD_NULL_PARAMETER => "a required pointer argument was NULL",
            OPENSSL_RELOAD_INVALID_PARAMETER => "an argument was not acceptable",
            OPENSSL_RELOAD_INSUFFICIENT_SIZE => "the buffer is too small",
            OPENSSL_RELOAD_MATERIAL => "certificate material could not be loaded or was refused",
            OPENSSL_RELOAD_NO_IDENTITY => "no certificate is configured",
            OPENSSL_RELOAD_UNKNOWN_SITE => "no site answers for the connection's name",
            OPENSSL_RELOAD_OPENSSL => "an OpenSSL call failed",
            OPENSSL_RELOAD_VERSION_MISMATCH => {
                "the process's OpenSSL is not the version the library was built against"
            }
            OPENSSL_RELOAD_THREAD => "a thread could not be started",
            OPENSSL_RELOAD_PANIC => "the library panicked (a bug)",
            OPENSSL_RELOAD_ALREADY_ATTACHED => "a reloader is attached to the context already",
            OPENSSL_RELOAD_SESSION_REFUSED => {
                "the resumed session was not made under the binding in service"
            }
        }
    }
}

/// A failure inside a function: its code and its full text.
pub(crate) struct Failure {
    code: openssl_reload_result,
    text: String,
}

impl Failure {
    pub(crate) fn new(code: openssl_reload_result, text: impl Into<String>) -> Self {
        Self {
            code,
            text: text.into(),
        }
    }

    pub(crate) fn null(what: &str) -> Self {
        Self::new(OPENSSL_RELOAD_NULL_PARAMETER, format!("{what} is NULL"))
    }
}

impl From<reload::Error> for Failure {
    fn from(error: reload::Error) -> Self {
        use reload::Error as E;
        let code = match &error {
            E::NoIdentity | E::NoSites { .. } => OPENSSL_RELOAD_NO_IDENTITY,
            E::UnknownSite { .. } => OPENSSL_RELOAD_UNKNOWN_SITE,
            E::AlreadyAttached => OPENSSL_RELOAD_ALREADY_ATTACHED,
            E::ResumedElsewhere { .. } => OPENSSL_RELOAD_SESSION_REFUSED,
            E::OpenSsl { .. } => OPENSSL_RELOAD_OPENSSL,
            E::Thread { .. } => OPENSSL_RELOAD_THREAD,
            _ => OPENSSL_RELOAD_MATERIAL,
        };
        Self::new(code, error.report().to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs one function's body: its panics caught, its failure recorded.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Failure>) -> openssl_reload_result {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return OPENSSL_RELOAD_OK,
        Ok(Err(failure)) => failure,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Failure::new(
                OPENSSL_RELOAD_PANIC,
                format!("the library panicked: {what}"),
            )
        }
    };
    let code = failure.code;
    // A thread being torn down has no thread-local storage: the text is lost,
    // the code is still returned.
    let _ = LAST_ERROR.try_with(|last| *last.borrow_mut() = failure.text);
    code
}

/// Runs a function that returns nothing (the `_free`s): a panic is swallowed.
pub(crate) fn guard_void(body: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(body));
}

/// A required pointer argument as a reference.
///
/// # Safety
///
/// `ptr` is NULL or points to a live `T` for the call's duration.
// SAFETY: unsafe because `as_ref` gives a reference whose lifetime the caller picks; only the
// caller knows `ptr` is live that long.
pub(crate) unsafe fn arg<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, Failure> {
    // SAFETY: `ptr` is NULL or points to a live `T` for the call's duration (this function's
    // contract); that is what `as_ref` requires.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null(what))
}

/// A required mutable pointer argument as a reference.
///
/// # Safety
///
/// `ptr` is NULL or points to a live `T` not used elsewhere during the call.
// SAFETY: unsafe because `as_mut` gives a unique reference whose lifetime the caller picks; only
// the caller knows `ptr` is live and unshared that long.
pub(crate) unsafe fn arg_mut<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: `ptr` is NULL or points to a live `T` not used elsewhere during the call (this
    // function's contract); that is what `as_mut` requires.
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::null(what))
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
///
/// `ptr` is NULL or a NUL-terminated string live for the call's duration.
// SAFETY: unsafe because `CStr::from_ptr` reads from `ptr` up to a NUL that only the caller can
// promise is there.
pub(crate) unsafe fn string_arg(ptr: *const c_char, what: &str) -> Result<String, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: `ptr` is not NULL here, so by this function's contract it is a NUL-terminated
    // string live for the call's duration, as `from_ptr` requires.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes.to_str().map(str::to_owned).map_err(|_| {
        Failure::new(
            OPENSSL_RELOAD_INVALID_PARAMETER,
            format!("{what} is not UTF-8"),
        )
    })
}

/// A path argument (any bytes but NUL: paths need not be UTF-8).
///
/// # Safety
///
/// `ptr` is NULL or a NUL-terminated string live for the call's duration.
// SAFETY: unsafe because `CStr::from_ptr` reads from `ptr` up to a NUL that only the caller can
// promise is there.
pub(crate) unsafe fn path_arg(ptr: *const c_char, what: &str) -> Result<PathBuf, Failure> {
    use std::os::unix::ffi::OsStrExt;
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: `ptr` is not NULL here, so by this function's contract it is a NUL-terminated
    // string live for the call's duration, as `from_ptr` requires.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    if bytes.is_empty() {
        return Err(Failure::new(
            OPENSSL_RELOAD_INVALID_PARAMETER,
            format!("{what} is empty"),
        ));
    }
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
}

/// An `SSL_CTX*` argument as the openssl crate's builder, which is only a view:
/// `ManuallyDrop` keeps the caller's reference from being freed.
///
/// # Safety
///
/// `ctx` is NULL or a live `SSL_CTX` of the process's libssl, not used by
/// another thread during the call.
// SAFETY: unsafe because the returned builder writes to the caller's `SSL_CTX`, which only the
// caller knows is live and not in use on another thread.
pub(crate) unsafe fn ctx_arg(
    ctx: *mut openssl_sys::SSL_CTX,
) -> Result<std::mem::ManuallyDrop<openssl::ssl::SslContextBuilder>, Failure> {
    if ctx.is_null() {
        return Err(Failure::null("ctx"));
    }
    check_openssl_version()?;
    // SAFETY: `ctx` is live per the contract; the builder is never dropped.
    Ok(std::mem::ManuallyDrop::new(unsafe {
        openssl::ssl::SslContextBuilder::from_ptr(ctx)
    }))
}

/// An `SSL*` argument as a reference.
///
/// # Safety
///
/// `ssl` is NULL or a live `SSL` of the process's libssl, the caller's
/// handshake, not aliased during the call.
// SAFETY: unsafe because the returned `&mut SslRef` aliases the caller's `SSL`, which only the
// caller knows is live and not used elsewhere meanwhile.
pub(crate) unsafe fn ssl_arg<'a>(
    ssl: *mut openssl_sys::SSL,
) -> Result<&'a mut openssl::ssl::SslRef, Failure> {
    use foreign_types::ForeignTypeRef;
    if ssl.is_null() {
        return Err(Failure::null("ssl"));
    }
    check_openssl_version()?;
    // SAFETY: `ssl` is not NULL here, so by this function's contract it is a live `SSL` of the
    // process's libssl, not aliased during the call: what a `&mut SslRef` from `from_ptr_mut` needs.
    Ok(unsafe { openssl::ssl::SslRef::from_ptr_mut(ssl) })
}

/// Copies `text` and a NUL into the caller's buffer and writes its length
/// (without the NUL) to `out_len`. A buffer too small gets nothing, and
/// `out_len` the size needed (with the NUL).
///
/// # Safety
///
/// `buf` is NULL or has room for `len` bytes; `out_len` is NULL or writable.
// SAFETY: unsafe because it writes up to `len` bytes to `buf` and a `usize` to `out_len`, sizes
// only the caller knows.
pub(crate) unsafe fn copy_out(
    text: &str,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> Result<(), Failure> {
    if out_len.is_null() {
        return Err(Failure::null("out_len"));
    }
    let needed = text.len() + 1;
    if buf.is_null() || len < needed {
        // SAFETY: `out_len` is writable per the contract.
        unsafe { *out_len = needed };
        return Err(Failure::new(
            OPENSSL_RELOAD_INSUFFICIENT_SIZE,
            format!("the buffer needs {needed} bytes, it has {len}"),
        ));
    }
    // SAFETY: `buf` has room for `needed <= len` bytes; the regions are distinct.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        *buf.add(text.len()) = 0;
        *out_len = text.len();
    }
    Ok(())
}

/// Fails unless the process's OpenSSL has the major.minor version the library
/// was built against: an `SSL_CTX*` of another OpenSSL is not ours to touch.
pub(crate) fn check_openssl_version() -> Result<(), Failure> {
    // Once per process: install() runs it on the handshake path.
    static CHECKED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    CHECKED
        .get_or_init(compare_openssl_versions)
        .clone()
        .map_err(|text| Failure::new(OPENSSL_RELOAD_VERSION_MISMATCH, text))
}

fn compare_openssl_versions() -> Result<(), String> {
    let built = u64::from_str_radix(env!("OPENSSL_RELOAD_BUILT_OPENSSL"), 16).unwrap_or(0);
    #[allow(clippy::useless_conversion)] // c_ulong is u32 on some targets.
    // SAFETY: OpenSSL_version_num has no preconditions.
    let running = u64::from(unsafe { openssl_sys::OpenSSL_version_num() });
    // 0xMNN00PP0 (OpenSSL 3): major and minor in the top 12 bits.
    let major_minor = |v: u64| (v >> 28, (v >> 20) & 0xff);
    if built == 0 || major_minor(built) == major_minor(running) {
        return Ok(());
    }
    let ((bm, bn), (rm, rn)) = (major_minor(built), major_minor(running));
    Err(format!(
        "libopenssl_reload was built against OpenSSL {bm}.{bn}, \
         but this process runs OpenSSL {rm}.{rn} ({})",
        openssl::version::version()
    ))
}

/// The library's version, e.g. `"0.2.0"`: a static string, never freed.
///
/// Thread-safe.
#[no_mangle]
pub extern "C" fn openssl_reload_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Copies a short description of `result` (an `openssl_reload_result`; not of
/// any one failure) into `buf`.
///
/// Thread-safe. `out_len` receives the text's length without its NUL, or, with
/// `OPENSSL_RELOAD_INSUFFICIENT_SIZE`, the size needed.
///
/// # Safety
///
/// `buf` has room for `len` bytes (or is NULL); `out_len` is writable.
// SAFETY: unsafe because `copy_out` writes into the caller's `buf` and `out_len`, whose sizes Rust
// cannot check.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_result_message(
    result: u32,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> openssl_reload_result {
    let text = ALL
        .iter()
        .find(|r| **r as u32 == result)
        .map_or("an unknown result code", |r| r.message());
    // SAFETY: `buf` has room for `len` bytes (or is NULL); `out_len` is writable (this function's
    // contract); that is what `copy_out` requires.
    guard(|| unsafe { copy_out(text, buf, len, out_len) })
}

/// Copies the full text of the last failure of a function called on this
/// thread (the file and every reason, e.g. `cannot read /etc/tls/tls.crt: No
/// such file or directory (os error 2)`) into `buf`; empty if none failed.
/// A call that fails for lack of room does not replace it.
///
/// Thread-safe: each thread has its own.
///
/// # Safety
///
/// `buf` has room for `len` bytes (or is NULL); `out_len` is writable.
// SAFETY: unsafe because `copy_out` writes into the caller's `buf` and `out_len`, whose sizes Rust
// cannot check.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_last_error(
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> openssl_reload_result {
    let text = LAST_ERROR.with(|last| last.borrow().clone());
    // Not through `guard`: a too-small buffer must not overwrite the text.
    match catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `buf` has room for `len` bytes (or is NULL); `out_len` is writable (this
        // function's contract); that is what `copy_out` requires.
        unsafe { copy_out(&text, buf, len, out_len) }
    })) {
        Ok(Ok(())) => OPENSSL_RELOAD_OK,
        Ok(Err(failure)) => failure.code,
        Err(_) => OPENSSL_RELOAD_PANIC,
    }
}
