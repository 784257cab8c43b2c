//! Where the crate calls OpenSSL directly: the declarations openssl-sys lacks
//! (`sys.rs`), and the safe wrappers of every raw call the rest of the crate
//! makes outside an `extern "C"` callback, grouped by topic: connections and
//! contexts (`ssl.rs`), sessions (`session.rs`), certificates, CRLs and stores
//! (`x509.rs`), key decoders (`decoder.rs`), key stores (`store.rs`), engines
//! (`engine.rs`) and providers (`provider.rs`).
//!
//! Each wrapper takes the openssl crate's safe types and returns a value or a
//! `Result<_, ErrorStack>`; its `// SAFETY:` note says why the call is sound.
//! Besides these files, only the modules that define an `extern "C"` callback
//! (and install it) allow unsafe code. `ci/valgrind.sh` runs this code under
//! memcheck.

#![allow(unsafe_code)] // The foreign declarations and the unsafe blocks of their safe wrappers.

pub(crate) mod decoder;
pub(crate) mod engine;
pub(crate) mod provider;
pub(crate) mod session;
pub(crate) mod slots;
pub(crate) mod ssl;
pub(crate) mod store;
pub(crate) mod sys;
pub(crate) mod x509;

use std::ffi::c_int;

use openssl::error::ErrorStack;

pub(crate) use self::sys::{StatusCallback, VerifyCallback};

/// An OpenSSL result where `1` (or more) is success and `0` or less a failure
/// with its reason on the error stack (rust-openssl's `cvt`).
fn cvt(ret: c_int) -> Result<c_int, ErrorStack> {
    if ret <= 0 {
        Err(ErrorStack::get())
    } else {
        Ok(ret)
    }
}

/// An OpenSSL pointer result where NULL is a failure with its reason on the
/// error stack (rust-openssl's `cvt_p`).
fn cvt_p<T>(ptr: *mut T) -> Result<*mut T, ErrorStack> {
    if ptr.is_null() {
        Err(ErrorStack::get())
    } else {
        Ok(ptr)
    }
}
