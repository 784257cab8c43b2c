//! What a function did: the result codes, the failure a function body returns,
//! and the calling thread's last failure text (`openssl_reload_last_error`).

use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::boundary::{copy_out, guard};

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
    /// The reloader polls in another process, which this one was forked
    /// from: build it with `_set_defer_polling` before the fork and call
    /// `openssl_reload_server_start_polling` in each child.
    OPENSSL_RELOAD_FORKED = 13,
}

use openssl_reload_result::*;

const ALL: [openssl_reload_result; 14] = [
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
    OPENSSL_RELOAD_FORKED,
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
            OPENSSL_RELOAD_FORKED => "the reloader polls in the process this one was forked from",
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

    pub(crate) fn invalid(text: impl Into<String>) -> Self {
        Self::new(OPENSSL_RELOAD_INVALID_PARAMETER, text)
    }

    /// Keeps the text as the calling thread's last failure and gives the code.
    pub(crate) fn record(self) -> openssl_reload_result {
        // A thread being torn down has no thread-local storage: the text is
        // lost, the code is still returned.
        let _ = LAST_ERROR.try_with(|last| *last.borrow_mut() = self.text);
        self.code
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
            E::Forked { .. } => OPENSSL_RELOAD_FORKED,
            _ => OPENSSL_RELOAD_MATERIAL,
        };
        Self::new(code, error.report().to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
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
// SAFETY: unsafe because it trusts `buf` and `out_len`, raw pointers from C that Rust cannot check;
// the `# Safety` section says what they must be.
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
    // SAFETY: the caller keeps this function's contract, which is `copy_out`'s.
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
// SAFETY: unsafe because it trusts `buf` and `out_len`, raw pointers from C that Rust cannot check;
// the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_last_error(
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> openssl_reload_result {
    let text = LAST_ERROR.with(|last| last.borrow().clone());
    // Not through `guard`: a too-small buffer must not overwrite the text.
    match catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the caller keeps this function's contract, which is `copy_out`'s.
        unsafe { copy_out(&text, buf, len, out_len) }
    })) {
        Ok(Ok(())) => OPENSSL_RELOAD_OK,
        Ok(Err(failure)) => failure.code,
        Err(_) => OPENSSL_RELOAD_PANIC,
    }
}
