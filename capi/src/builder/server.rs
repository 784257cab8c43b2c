//! The server builder: its handle and its exported functions. The setters
//! the client builder has too are one call each to `setters.rs`.

use std::ffi::{c_char, c_void};

use reload::{Builder, ServerSide};

use super::constants::openssl_reload_client_auth;
use super::passphrase::openssl_reload_passphrase_callback;
use super::setters::*;
use crate::args::path_arg;
use crate::boundary::free;
use crate::error::openssl_reload_result;

/// Settings for a server reloader; made by [`openssl_reload_server_builder_new`].
#[derive(Debug)]
pub struct openssl_reload_server_builder {
    inner: Option<Builder<ServerSide>>,
}

impl BuilderHandle for openssl_reload_server_builder {
    type Side = ServerSide;

    fn new() -> Self {
        Self {
            inner: Some(reload::ReloadingAcceptor::builder()),
        }
    }

    fn slot(&mut self) -> &mut Option<Builder<ServerSide>> {
        &mut self.inner
    }
}

/// Makes a server builder in `*out`. Free it with
/// [`openssl_reload_server_builder_free`], or let `_build` consume it. A
/// setter that fails leaves the builder as it was, every earlier setting
/// kept; [`openssl_reload_last_error`](crate::openssl_reload_last_error)
/// names the argument.
///
/// Thread-safe.
///
/// # Safety
///
/// `out` is writable.
// SAFETY: unsafe because it trusts `out`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_new(
    out: *mut *mut openssl_reload_server_builder,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `new`'s.
    unsafe { new(out) }
}

/// Frees a server builder that was not built; NULL is ignored.
///
/// # Safety
///
/// `builder` is NULL or a builder not freed or built before.
// SAFETY: unsafe because it trusts `builder`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_free(
    builder: *mut openssl_reload_server_builder,
) {
    // SAFETY: the caller keeps this function's contract, which is `free`'s.
    unsafe { free(builder) }
}

/// The certificate chain (PEM: leaf first, then intermediates) and its key
/// (PEM or DER, PKCS#8, traditional or encrypted). The first certificate
/// configured (this, a PKCS#12 bundle or a site) is the default site.
/// A `key` starting with `pkcs11:` or `store:` names a key that stays in
/// hardware (docs/hardware-keys.md); the passphrase is then its PIN.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `cert`
/// and `key` are NUL-terminated paths.
// SAFETY: unsafe because it trusts `builder`, `cert` and `key`, raw pointers from C that Rust
// cannot check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_identity(
    builder: *mut openssl_reload_server_builder,
    cert: *const c_char,
    key: *const c_char,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `set_identity`'s.
    unsafe { set_identity(builder, cert, key) }
}

/// A PKCS#12 bundle (certificate, chain and key) instead of PEM files.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `path` is
/// a NUL-terminated path.
// SAFETY: unsafe because it trusts `builder` and `path`, raw pointers from C that Rust cannot
// check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_pkcs12(
    builder: *mut openssl_reload_server_builder,
    path: *const c_char,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `set_pkcs12`'s.
    unsafe { set_pkcs12(builder, path) }
}

/// One more site: a chain and key chosen by the client's SNI name for the
/// certificate's DNS names. Each site reloads on its own. `key` is a file, or
/// a key in hardware named by a `pkcs11:` or `store:` URI, as for
/// `_set_identity`.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `cert` and
/// `key` are NUL-terminated.
// SAFETY: unsafe because it trusts `builder`, `cert` and `key`, raw pointers from C that Rust
// cannot check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_add_site(
    builder: *mut openssl_reload_server_builder,
    cert: *const c_char,
    key: *const c_char,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `modify`'s and `path_arg`'s.
    unsafe {
        modify(
            builder,
            || Ok((path_arg(cert, "cert")?, key_arg(key)?)),
            |b, (cert, key)| match key {
                Ok(uri) => b.site_uri(cert, uri),
                Err(path) => b.site(cert, path),
            },
        )
    }
}

/// Every site in a directory (`NAME.crt` + `NAME.key`, `NAME.pem`, `NAME.p12`,
/// `NAME/tls.crt` + `NAME/tls.key`), watched for sites added and removed.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `dir` is a
/// NUL-terminated path.
// SAFETY: unsafe because it trusts `builder` and `dir`, raw pointers from C that Rust cannot check;
// the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_add_site_dir(
    builder: *mut openssl_reload_server_builder,
    dir: *const c_char,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `modify`'s and `path_arg`'s.
    unsafe { modify(builder, || path_arg(dir, "dir"), Builder::site_dir) }
}

/// Refuses handshakes whose SNI name no site has (and those without SNI)
/// instead of answering with the default site.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call.
// SAFETY: unsafe because it trusts `builder`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_strict_sni(
    builder: *mut openssl_reload_server_builder,
    strict: bool,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `modify`'s.
    unsafe { modify(builder, || Ok(strict), Builder::strict_sni) }
}

/// A client CA bundle (PEM), reloaded like the certificates: attached
/// contexts then verify clients against it, with `auth`.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `path` is
/// a NUL-terminated path.
// SAFETY: unsafe because it trusts `builder` and `path`, raw pointers from C that Rust cannot
// check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_client_ca(
    builder: *mut openssl_reload_server_builder,
    path: *const c_char,
    auth: u32,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `modify`'s and
    // `path_and_constant`'s.
    unsafe {
        modify(
            builder,
            || path_and_constant(path, auth, "auth"),
            |b, (path, auth): (_, openssl_reload_client_auth)| b.ca(path).client_auth(auth.into()),
        )
    }
}

/// A CRL file (PEM with one or more complete CRLs, or DER; a delta CRL is
/// refused) for the client CA bundle, reloaded with it; `check` says which
/// certificates are checked.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `path` is
/// a NUL-terminated path.
// SAFETY: unsafe because it trusts `builder` and `path`, raw pointers from C that Rust cannot
// check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_crl(
    builder: *mut openssl_reload_server_builder,
    path: *const c_char,
    check: u32,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `set_crl`'s.
    unsafe { set_crl(builder, path, check) }
}

/// The OCSP staple (a DER OCSP response, as `openssl ocsp -respout` writes
/// it) of the first certificate configured, reloaded with it. Without it, each
/// certificate's staple is `<certificate file>.ocsp` when that file exists. A
/// staple is sent to clients that ask only while it is valid for the
/// certificate in service and current (before its nextUpdate or, without one,
/// at most seven days after its thisUpdate); a must-staple certificate is
/// refused without one.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `path` is
/// a NUL-terminated path.
// SAFETY: unsafe because it trusts `builder` and `path`, raw pointers from C that Rust cannot
// check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_ocsp_staple(
    builder: *mut openssl_reload_server_builder,
    path: *const c_char,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `modify`'s and `path_arg`'s.
    unsafe { modify(builder, || path_arg(path, "path"), Builder::ocsp_staple) }
}

/// How often the files are checked, in milliseconds (default 1000).
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call.
// SAFETY: unsafe because it trusts `builder`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_poll_interval_ms(
    builder: *mut openssl_reload_server_builder,
    ms: u64,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `set_poll_interval_ms`'s.
    unsafe { set_poll_interval_ms(builder, ms) }
}

/// Whether `_build` leaves the poller unstarted (default false), for servers
/// that fork after reading their configuration: `_build` in the parent loads
/// and checks the files (a bad one fails there, naming it) and the reloader
/// serves and attaches, but nothing reads the files again until
/// [`openssl_reload_server_start_polling`](crate::openssl_reload_server_start_polling)
/// is called, in each child after the fork. See docs/c-api.md, "Forking
/// servers".
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call.
// SAFETY: unsafe because it trusts `builder`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_defer_polling(
    builder: *mut openssl_reload_server_builder,
    defer: bool,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `modify`'s.
    unsafe { modify(builder, || Ok(defer), Builder::defer_polling) }
}

/// Whether attached contexts' own certificates follow the reloads (default
/// false): `_attach` puts the default site's certificates on the context, and
/// after a publish the first full handshake on it puts the new ones there, so
/// that later connections start with them and the certificate callback has
/// nothing to install. Only for contexts whose connections are all made and
/// handshaken on one thread at a time, as in an nginx worker.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call.
// SAFETY: unsafe because it trusts `builder`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_update_attached_contexts(
    builder: *mut openssl_reload_server_builder,
    update: bool,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `modify`'s.
    unsafe { modify(builder, || Ok(update), Builder::update_attached_contexts) }
}

/// What to do with a certificate outside its validity period.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call.
// SAFETY: unsafe because it trusts `builder`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_validity(
    builder: *mut openssl_reload_server_builder,
    policy: u32,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `set_validity`'s.
    unsafe { set_validity(builder, policy) }
}

/// The passphrase of an encrypted key or PKCS#12 bundle: the first line of a
/// file, read at each load (and watched).
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `path` is
/// a NUL-terminated path.
// SAFETY: unsafe because it trusts `builder` and `path`, raw pointers from C that Rust cannot
// check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_passphrase_file(
    builder: *mut openssl_reload_server_builder,
    path: *const c_char,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `set_passphrase_file`'s.
    unsafe { set_passphrase_file(builder, path) }
}

/// The passphrase from an environment variable, read at each load.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `name` is
/// a NUL-terminated string.
// SAFETY: unsafe because it trusts `builder` and `name`, raw pointers from C that Rust cannot
// check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_passphrase_env(
    builder: *mut openssl_reload_server_builder,
    name: *const c_char,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `set_passphrase_env`'s.
    unsafe { set_passphrase_env(builder, name) }
}

/// The passphrase from `callback`, called with `userdata` at each load.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call;
/// `callback` and `userdata` stay valid as long as the reloader runs.
// SAFETY: unsafe because it trusts `builder` and `userdata`, raw pointers from C that Rust cannot
// check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_passphrase_callback(
    builder: *mut openssl_reload_server_builder,
    callback: openssl_reload_passphrase_callback,
    userdata: *mut c_void,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `set_passphrase_callback`'s.
    unsafe { set_passphrase_callback(builder, callback, userdata) }
}
