//! The boundary every function crosses: no panic gets out, a failure is
//! recorded as the thread's last error, and a text goes out through the
//! caller's buffer.

use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::openssl_reload_result::{self, *};
use crate::error::Failure;

/// Runs one function's body: its panics caught, its failure recorded.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Failure>) -> openssl_reload_result {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return OPENSSL_RELOAD_OK,
        Ok(Err(failure)) => failure,
        Err(payload) => {
            let what = reload::__private::panic_message(&*payload);
            Failure::new(
                OPENSSL_RELOAD_PANIC,
                format!("the library panicked: {what}"),
            )
        }
    };
    failure.record()
}

/// Runs a function that returns nothing (the `_free`s): a panic is swallowed.
pub(crate) fn guard_void(body: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(body));
}

/// Frees a handle that `Box::into_raw` made; NULL is ignored. Every `_free`
/// is this.
///
/// # Safety
///
/// `handle` is NULL or came from `Box::into_raw` and is not used again.
// SAFETY: unsafe because it trusts `handle`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
pub(crate) unsafe fn free<T>(handle: *mut T) {
    guard_void(|| {
        if !handle.is_null() {
            // SAFETY: not NULL, so by the contract a box of ours that nothing
            // uses again.
            drop(unsafe { Box::from_raw(handle) });
        }
    });
}

/// Copies `text` and a NUL into the caller's buffer and writes its length
/// (without the NUL) to `out_len`. A buffer too small gets nothing, and
/// `out_len` the size needed (with the NUL).
///
/// # Safety
///
/// `buf` is NULL or has room for `len` bytes; `out_len` is NULL or writable.
// SAFETY: unsafe because it trusts `buf` and `out_len`, raw pointers from C that Rust cannot check;
// the `# Safety` section says what they must be.
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
        // SAFETY: `out_len` is not NULL, so writable per the contract.
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

/// A callback's `userdata`, which the library hands back unchanged from its
/// own threads (the poller's, the change callback's).
pub(crate) struct UserData(*mut c_void);

// SAFETY: every callback's documented contract: it is thread-safe, userdata
// included, so the pointer may move to the library's threads.
unsafe impl Send for UserData {}
// SAFETY: the same contract: the callback may run on any thread, so shared
// references to the userdata may be used from several.
unsafe impl Sync for UserData {}

impl UserData {
    pub(crate) fn new(userdata: *mut c_void) -> Self {
        Self(userdata)
    }

    /// Through a method, so that closures capture the whole (Send) wrapper.
    pub(crate) fn get(&self) -> *mut c_void {
        self.0
    }
}
