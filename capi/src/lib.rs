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
//!
//! Layout: `error.rs` (result codes, the thread's last error), `boundary.rs`
//! (the panic guard, copy-out, `_free`), `args.rs` (reading C's arguments),
//! `builder/` (both builders, their shared setters and C enumerations),
//! `server.rs` and `client.rs` (the reloader handles), `status/` (status
//! struct, JSON, change callback).

#![warn(clippy::too_many_lines)]
#![allow(unsafe_code)] // The whole crate is the foreign interface.
#![allow(non_camel_case_types)] // C names for C callers.

// First: cbindgen writes the functions in the order it reads them.
mod error;

mod args;
mod boundary;
mod builder;
mod client;
mod server;
mod status;
#[cfg(test)]
mod test_support;

use std::ffi::c_char;

pub use crate::builder::*;
pub use crate::client::*;
pub use crate::error::*;
pub use crate::server::*;
pub use crate::status::*;

/// The C ABI version, which the SONAME carries (`libopenssl_reload.so.0`).
/// Keep equal to `ABI` in build.rs.
pub const OPENSSL_RELOAD_ABI_VERSION: u32 = 0;

/// The library's version, e.g. `"0.2.0"`: a static string, never freed.
///
/// Thread-safe.
#[no_mangle]
pub extern "C" fn openssl_reload_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
