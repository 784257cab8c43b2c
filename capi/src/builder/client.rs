//! The client builder: its handle and its exported functions. The setters
//! the server builder has too are one call each to `setters.rs`.

use std::ffi::{c_char, c_void};

use reload::{Builder, ClientSide};

use super::passphrase::openssl_reload_passphrase_callback;
use super::setters::*;
use crate::args::path_arg;
use crate::boundary::free;
use crate::error::openssl_reload_result;

/// Settings for a client reloader; made by [`openssl_reload_client_builder_new`].
#[derive(Debug)]
pub struct openssl_reload_client_builder {
    inner: Option<Builder<ClientSide>>,
}

impl BuilderHandle for openssl_reload_client_builder {
    type Side = ClientSide;

    fn new() -> Self {
        Self {
            inner: Some(reload::ReloadingConnector::builder()),
        }
    }

    fn slot(&mut self) -> &mut Option<Builder<ClientSide>> {
        &mut self.inner
    }
}

/// Makes a client builder in `*out`: without an identity or a CA it is a
/// plain client of the system's CAs. As on the server's, a setter that fails
/// leaves the builder as it was.
///
/// Thread-safe.
///
/// # Safety
///
/// `out` is writable.
// SAFETY: unsafe because it trusts `out`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_new(
    out: *mut *mut openssl_reload_client_builder,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `new`'s.
    unsafe { new(out) }
}

/// Frees a client builder that was not built; NULL is ignored.
///
/// # Safety
///
/// `builder` is NULL or a builder not freed or built before.
// SAFETY: unsafe because it trusts `builder`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_free(
    builder: *mut openssl_reload_client_builder,
) {
    // SAFETY: the caller keeps this function's contract, which is `free`'s.
    unsafe { free(builder) }
}

/// The client certificate chain and key presented to servers. A `key`
/// starting with `pkcs11:` or `store:` names a key that stays in hardware
/// (docs/hardware-keys.md); the passphrase is then its PIN.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `cert`
/// and `key` are NUL-terminated paths.
// SAFETY: unsafe because it trusts `builder`, `cert` and `key`, raw pointers from C that Rust
// cannot check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_set_identity(
    builder: *mut openssl_reload_client_builder,
    cert: *const c_char,
    key: *const c_char,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `set_identity`'s.
    unsafe { set_identity(builder, cert, key) }
}

/// A PKCS#12 bundle as the client identity.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `path` is
/// a NUL-terminated path.
// SAFETY: unsafe because it trusts `builder` and `path`, raw pointers from C that Rust cannot
// check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_set_pkcs12(
    builder: *mut openssl_reload_client_builder,
    path: *const c_char,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `set_pkcs12`'s.
    unsafe { set_pkcs12(builder, path) }
}

/// The CA bundle servers are verified against (instead of the system's).
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `path` is
/// a NUL-terminated path.
// SAFETY: unsafe because it trusts `builder` and `path`, raw pointers from C that Rust cannot
// check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_set_ca(
    builder: *mut openssl_reload_client_builder,
    path: *const c_char,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `modify`'s and `path_arg`'s.
    unsafe { modify(builder, || path_arg(path, "path"), Builder::ca) }
}

/// A CRL file for the CA bundle (see the server's).
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `path` is
/// a NUL-terminated path.
// SAFETY: unsafe because it trusts `builder` and `path`, raw pointers from C that Rust cannot
// check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_set_crl(
    builder: *mut openssl_reload_client_builder,
    path: *const c_char,
    check: u32,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `set_crl`'s.
    unsafe { set_crl(builder, path, check) }
}

/// How often the files are checked, in milliseconds (default 1000).
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call.
// SAFETY: unsafe because it trusts `builder`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_set_poll_interval_ms(
    builder: *mut openssl_reload_client_builder,
    ms: u64,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `set_poll_interval_ms`'s.
    unsafe { set_poll_interval_ms(builder, ms) }
}

/// What to do with a certificate outside its validity period.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call.
// SAFETY: unsafe because it trusts `builder`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_set_validity(
    builder: *mut openssl_reload_client_builder,
    policy: u32,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `set_validity`'s.
    unsafe { set_validity(builder, policy) }
}

/// The key's passphrase from a file (see the server's).
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `path` is
/// a NUL-terminated path.
// SAFETY: unsafe because it trusts `builder` and `path`, raw pointers from C that Rust cannot
// check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_set_passphrase_file(
    builder: *mut openssl_reload_client_builder,
    path: *const c_char,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `set_passphrase_file`'s.
    unsafe { set_passphrase_file(builder, path) }
}

/// The key's passphrase from an environment variable.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `name` is
/// a NUL-terminated string.
// SAFETY: unsafe because it trusts `builder` and `name`, raw pointers from C that Rust cannot
// check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_set_passphrase_env(
    builder: *mut openssl_reload_client_builder,
    name: *const c_char,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `set_passphrase_env`'s.
    unsafe { set_passphrase_env(builder, name) }
}

/// The key's passphrase from a callback (see the server's).
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call;
/// `callback` and `userdata` stay valid as long as the reloader runs.
// SAFETY: unsafe because it trusts `builder` and `userdata`, raw pointers from C that Rust cannot
// check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_set_passphrase_callback(
    builder: *mut openssl_reload_client_builder,
    callback: openssl_reload_passphrase_callback,
    userdata: *mut c_void,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `set_passphrase_callback`'s.
    unsafe { set_passphrase_callback(builder, callback, userdata) }
}
