//! The client reloader: a client certificate, key and CA bundle for outgoing
//! connections the application makes with its own `SSL_CTX`.

use openssl_sys::{SSL, SSL_CTX};
use reload::{CertificateStatus, Reload, ReloadingConnector};
use std::ffi::{c_char, c_void};
use tokio::sync::watch;

use crate::args::{arg, ctx_arg, ssl_arg};
use crate::boundary::{free, guard};
use crate::builder::{build, openssl_reload_client_builder};
use crate::error::openssl_reload_result;
use crate::status::{
    self, openssl_reload_change_callback, openssl_reload_status, to_json, Reporter, WatcherSlot,
};

/// A client reloader; made by [`openssl_reload_client_builder_build`]. Every
/// function taking a `const` one is thread-safe.
pub struct openssl_reload_client {
    connector: ReloadingConnector,
    watcher: WatcherSlot,
}

/// Loads and validates the files and starts polling them. The builder is
/// freed, whatever the result.
///
/// # Safety
///
/// `builder` is a live builder, not used again; `out` is writable.
// SAFETY: unsafe because it trusts `builder` and `out`, raw pointers from C that Rust cannot check;
// the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_build(
    builder: *mut openssl_reload_client_builder,
    out: *mut *mut openssl_reload_client,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `build`'s.
    unsafe {
        build(builder, out, |builder| {
            Ok(openssl_reload_client {
                connector: builder.build()?,
                watcher: WatcherSlot::default(),
            })
        })
    }
}

/// Puts the current client certificate, chain and key on `ssl`, an outgoing
/// connection made from the application's context, before `SSL_connect`; with
/// a CA bundle, also its store and `SSL_VERIFY_PEER`. Host name checks stay
/// the application's (`SSL_set1_host`).
///
/// Thread-safe for `client`; `ssl` is the caller's.
///
/// # Safety
///
/// `client` is live; `ssl` is a live `SSL` of the process's libssl.
// SAFETY: unsafe because it trusts `client` and `ssl`, raw pointers from C that Rust cannot check;
// the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_configure_ssl(
    client: *const openssl_reload_client,
    ssl: *mut SSL,
) -> openssl_reload_result {
    guard(|| {
        // SAFETY: the caller keeps this function's contract, which is `arg`'s and `ssl_arg`'s.
        let (client, ssl) = unsafe { (arg(client, "client")?, ssl_arg(ssl)?) };
        client.connector.configure_ssl(ssl)?;
        Ok(())
    })
}

/// Like [`openssl_reload_client_configure_ssl`], once, on a context: the
/// connections made from it afterwards get the material in service now. Call
/// it again from the change callback to follow reloads.
///
/// Thread-safe for `client`; `ctx` must not be in use by another thread.
///
/// # Safety
///
/// `client` is live; `ctx` is a live `SSL_CTX` of the process's libssl.
// SAFETY: unsafe because it trusts `client` and `ctx`, raw pointers from C that Rust cannot check;
// the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_configure_ctx(
    client: *const openssl_reload_client,
    ctx: *mut SSL_CTX,
) -> openssl_reload_result {
    guard(|| {
        // SAFETY: the caller keeps this function's contract, which is `arg`'s and `ctx_arg`'s.
        let (client, mut ctx) = unsafe { (arg(client, "client")?, ctx_arg(ctx)?) };
        client.connector.configure_context(&mut ctx)?;
        Ok(())
    })
}

/// Reads the files now and publishes them if they changed (see the server's).
///
/// Thread-safe.
///
/// # Safety
///
/// `client` is live; `changed` is NULL or writable.
// SAFETY: unsafe because it trusts `client` and `changed`, raw pointers from C that Rust cannot
// check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_reload_now(
    client: *const openssl_reload_client,
    changed: *mut bool,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `reload_now`'s.
    unsafe { status::reload_now(client, changed) }
}

/// Fills `*out` with the client's status.
///
/// Thread-safe.
///
/// # Safety
///
/// `client` is live; `out` is writable.
// SAFETY: unsafe because it trusts `client` and `out`, raw pointers from C that Rust cannot check;
// the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_status(
    client: *const openssl_reload_client,
    out: *mut openssl_reload_status,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `status`'s.
    unsafe { status::status(client, out) }
}

/// Copies the text of the last failed reload into `buf` (see the server's).
///
/// Thread-safe.
///
/// # Safety
///
/// `client` is live; `buf` has room for `len` bytes (or is NULL); `out_len` is writable.
// SAFETY: unsafe because it trusts `client`, `buf` and `out_len`, raw pointers from C that Rust
// cannot check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_reload_error(
    client: *const openssl_reload_client,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `text`'s.
    unsafe { status::text(client, false, buf, len, out_len) }
}

/// Copies the client's status as JSON into `buf`.
///
/// Thread-safe.
///
/// # Safety
///
/// `client` is live; `buf` has room for `len` bytes (or is NULL); `out_len` is writable.
// SAFETY: unsafe because it trusts `client`, `buf` and `out_len`, raw pointers from C that Rust
// cannot check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_status_json(
    client: *const openssl_reload_client,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `text`'s.
    unsafe { status::text(client, true, buf, len, out_len) }
}

/// Sets the change callback (see the server's); NULL removes it.
///
/// Thread-safe; do not call it from the callback.
///
/// # Safety
///
/// `client` is live; `callback` and `userdata` follow
/// [`openssl_reload_change_callback`](crate::openssl_reload_change_callback)'s
/// rules until replaced or freed.
// SAFETY: unsafe because it trusts `client` and `userdata`, raw pointers from C that Rust cannot
// check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_set_change_callback(
    client: *const openssl_reload_client,
    callback: openssl_reload_change_callback,
    userdata: *mut c_void,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `set_change_callback`'s.
    unsafe { status::set_change_callback(client, callback, userdata) }
}

/// Frees the client and stops its poller and change callback; NULL is ignored.
///
/// Not thread-safe: no other call may use `client` during or after it.
///
/// # Safety
///
/// `client` is NULL or a live handle, not used again.
// SAFETY: unsafe because it trusts `client`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_free(client: *mut openssl_reload_client) {
    // SAFETY: the caller keeps this function's contract, which is `free`'s.
    unsafe { free(client) };
}

impl Reporter for openssl_reload_client {
    const NAME: &'static str = "client";

    fn status(&self) -> CertificateStatus {
        self.connector.status()
    }

    fn json(&self) -> String {
        to_json(&self.connector.status(), None)
    }

    fn reload_now(&self) -> Result<Reload, reload::Error> {
        self.connector.reload_now()
    }

    fn subscribe(&self) -> watch::Receiver<CertificateStatus> {
        self.connector.subscribe()
    }

    fn watcher(&self) -> &WatcherSlot {
        &self.watcher
    }
}

impl std::fmt::Debug for openssl_reload_client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("openssl_reload_client")
            .field("connector", &self.connector)
            .finish_non_exhaustive()
    }
}
