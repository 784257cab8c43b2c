//! The server reloader: attached to the application's `SSL_CTX`, or installed
//! on one `SSL` from the application's own servername callback.

use std::ffi::{c_char, c_void};

use openssl_sys::{SSL, SSL_CTX};
use reload::{CertificateStatus, Reload, ReloadingAcceptor};
use tokio::sync::watch;

use crate::args::{arg, ctx_arg, ssl_arg};
use crate::boundary::{free, guard};
use crate::builder::{build, openssl_reload_server_builder};
use crate::error::openssl_reload_result;
use crate::status::{
    self, openssl_reload_change_callback, openssl_reload_status, to_json, Reporter, WatcherSlot,
};

/// A server reloader: polls the files on a thread of its own and keeps the
/// material that attached contexts serve. Made by
/// [`openssl_reload_server_builder_build`]; every function taking a `const`
/// one is thread-safe.
pub struct openssl_reload_server {
    acceptor: ReloadingAcceptor,
    watcher: WatcherSlot,
}

/// Loads and validates the files and starts polling them (unless
/// `_set_defer_polling` deferred it). The builder is freed, whatever the
/// result. On failure nothing is started and
/// [`openssl_reload_last_error`](crate::openssl_reload_last_error) names the
/// file and the reason.
///
/// # Safety
///
/// `builder` is a live builder, not used again; `out` is writable.
// SAFETY: unsafe because it trusts `builder` and `out`, raw pointers from C that Rust cannot check;
// the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_build(
    builder: *mut openssl_reload_server_builder,
    out: *mut *mut openssl_reload_server,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `build`'s.
    unsafe {
        build(builder, out, |builder| {
            Ok(openssl_reload_server {
                acceptor: builder.build()?,
                watcher: WatcherSlot::default(),
            })
        })
    }
}

/// Makes `ctx`, a context the application owns and configured, serve the
/// reloader's certificates; call it before the context's first `SSL_new` and
/// after its session id context is set (it is read here).
///
/// It sets three callbacks on `ctx`, replacing any the context had: the client
/// hello callback (binding sessions to the context's own session id context,
/// the verify mode, the CA bundle and CRLs, the site and the SNI name), the
/// certificate callback (installing the current certificate, chain and key of
/// the SNI-selected site, and with a client CA the CA store, names and verify
/// mode, and binding the session to this context), and the OCSP status
/// callback (stapling the reloaded staple, else calling the status callback
/// the context had). The application's options, protocol versions, verify
/// callback, ALPN and servername callbacks, session id context, session cache
/// and ticket keys stay in force. The context keeps the reloader alive: the
/// handle may be freed before it. `OPENSSL_RELOAD_ALREADY_ATTACHED` when a
/// reloader is attached to `ctx` already (nothing changes).
///
/// Thread-safe for `server`; `ctx` must not be in use by another thread.
///
/// # Safety
///
/// `server` is live; `ctx` is a live `SSL_CTX` of the process's libssl.
// SAFETY: unsafe because it trusts `server` and `ctx`, raw pointers from C that Rust cannot check;
// the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_attach(
    server: *const openssl_reload_server,
    ctx: *mut SSL_CTX,
) -> openssl_reload_result {
    guard(|| {
        // SAFETY: the caller keeps this function's contract, which is `arg`'s and `ctx_arg`'s.
        let (server, mut ctx) = unsafe { (arg(server, "server")?, ctx_arg(ctx)?) };
        server.acceptor.attach(&mut ctx)?;
        Ok(())
    })
}

/// Puts the reloader's current certificate, chain and key for the
/// connection's SNI name on `ssl` (replacing the ones it has), and with a
/// client CA the CA store, names and verify mode: for applications that switch
/// contexts in their own servername callback, called there after
/// `SSL_set_SSL_CTX`. On a full handshake the session is bound to this
/// reloader's trust and site, the verify mode and the SNI name.
/// `OPENSSL_RELOAD_SESSION_REFUSED` when OpenSSL resumed a session not made
/// under that binding, `OPENSSL_RELOAD_UNKNOWN_SITE` when strict SNI refuses
/// the name: answer both with `SSL_TLSEXT_ERR_ALERT_FATAL`.
///
/// Thread-safe for `server`; `ssl` is the caller's handshake.
///
/// # Safety
///
/// `server` is live; `ssl` is a live `SSL` of the process's libssl.
// SAFETY: unsafe because it trusts `server` and `ssl`, raw pointers from C that Rust cannot check;
// the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_install(
    server: *const openssl_reload_server,
    ssl: *mut SSL,
) -> openssl_reload_result {
    guard(|| {
        // SAFETY: the caller keeps this function's contract, which is `arg`'s and `ssl_arg`'s.
        let (server, ssl) = unsafe { (arg(server, "server")?, ssl_arg(ssl)?) };
        server.acceptor.install(ssl)?;
        Ok(())
    })
}

/// Starts the reloader's poller thread in the calling process: for a
/// reloader built with `_set_defer_polling`, in each child a forking server
/// makes (threads do not survive `fork`), after the fork and before serving.
/// `OPENSSL_RELOAD_OK` too when it already polls in this process (nothing
/// changes). `OPENSSL_RELOAD_FORKED` when it polls in the process this one
/// was forked from: it is not restarted, since its lock may have been held at
/// the fork; handshakes go on with the material in service at the fork and
/// never see a reload. Set a change callback after this call, in the same
/// process.
///
/// Thread-safe.
///
/// # Safety
///
/// `server` is live.
// SAFETY: unsafe because it trusts `server`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_start_polling(
    server: *const openssl_reload_server,
) -> openssl_reload_result {
    guard(|| {
        // SAFETY: the caller keeps this function's contract, which is `arg`'s.
        let server = unsafe { arg(server, "server") }?;
        server.acceptor.start_polling()?;
        Ok(())
    })
}

/// Runs one poller tick on the calling thread, for a server that polls from
/// its own event loop every poll interval instead of running the poller
/// thread (an nginx worker's timer): build with `_set_defer_polling` and do
/// not call `_start_polling`. It `stat`s the files, reloads what changed (a
/// reload reads and parses here) and rotates in-memory ticket keys when due.
/// `OPENSSL_RELOAD_FORKED` in a process forked from one where the poller
/// thread runs.
///
/// Thread-safe.
///
/// # Safety
///
/// `server` is live.
// SAFETY: unsafe because it trusts `server`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_poll(
    server: *const openssl_reload_server,
) -> openssl_reload_result {
    guard(|| {
        // SAFETY: the caller keeps this function's contract, which is `arg`'s.
        let server = unsafe { arg(server, "server") }?;
        server.acceptor.poll()?;
        Ok(())
    })
}

/// Reads the files now, on the calling thread (for a SIGHUP handler's thread,
/// not the handler itself), and publishes them if they changed. `*changed`
/// (if not NULL) says whether anything new was published. On failure the
/// previous material stays in service. `OPENSSL_RELOAD_FORKED` in a process
/// forked from one where the reloader polls.
///
/// Thread-safe.
///
/// # Safety
///
/// `server` is live; `changed` is NULL or writable.
// SAFETY: unsafe because it trusts `server` and `changed`, raw pointers from C that Rust cannot
// check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_reload_now(
    server: *const openssl_reload_server,
    changed: *mut bool,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `reload_now`'s.
    unsafe { status::reload_now(server, changed) }
}

/// Fills `*out` with the status of the default site's certificate and the
/// counts summed over every site.
///
/// Thread-safe.
///
/// # Safety
///
/// `server` is live; `out` is writable.
// SAFETY: unsafe because it trusts `server` and `out`, raw pointers from C that Rust cannot check;
// the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_status(
    server: *const openssl_reload_server,
    out: *mut openssl_reload_status,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `status`'s.
    unsafe { status::status(server, out) }
}

/// Copies the full text of the last failed reload (the file and the reason)
/// into `buf`; empty when none has failed. It is kept after a later success.
///
/// Thread-safe.
///
/// # Safety
///
/// `server` is live; `buf` has room for `len` bytes (or is NULL); `out_len` is writable.
// SAFETY: unsafe because it trusts `server`, `buf` and `out_len`, raw pointers from C that Rust
// cannot check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_reload_error(
    server: *const openssl_reload_server,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `text`'s.
    unsafe { status::text(server, false, buf, len, out_len) }
}

/// Copies the whole status as JSON (every site, the CA bundle, the CRLs, the
/// last error) into `buf`. The schema is the C interface's own, with times in
/// Unix seconds (`not_after_unix`), not the demo server's `/status`.
///
/// Thread-safe.
///
/// # Safety
///
/// `server` is live; `buf` has room for `len` bytes (or is NULL); `out_len` is writable.
// SAFETY: unsafe because it trusts `server`, `buf` and `out_len`, raw pointers from C that Rust
// cannot check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_status_json(
    server: *const openssl_reload_server,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `text`'s.
    unsafe { status::text(server, true, buf, len, out_len) }
}

/// Calls `callback(userdata, generation)` after each change of the status
/// (a publish or a failed attempt), on a thread of the library, until the
/// handle is freed or another callback is set; NULL removes it.
///
/// Thread-safe; it waits for a running callback to return (do not call it from
/// the callback).
///
/// # Safety
///
/// `server` is live; `callback` and `userdata` follow
/// [`openssl_reload_change_callback`]'s rules until replaced or freed.
// SAFETY: unsafe because it trusts `server` and `userdata`, raw pointers from C that Rust cannot
// check; the `# Safety` section says what they must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_set_change_callback(
    server: *const openssl_reload_server,
    callback: openssl_reload_change_callback,
    userdata: *mut c_void,
) -> openssl_reload_result {
    // SAFETY: the caller keeps this function's contract, which is `set_change_callback`'s.
    unsafe { status::set_change_callback(server, callback, userdata) }
}

/// Frees the handle, stopping its change callback; NULL is ignored. The
/// reloader goes on polling as long as a context it is attached to lives.
///
/// Not thread-safe: no other call may use `server` during or after it.
///
/// # Safety
///
/// `server` is NULL or a live handle, not used again.
// SAFETY: unsafe because it trusts `server`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_free(server: *mut openssl_reload_server) {
    // SAFETY: the caller keeps this function's contract, which is `free`'s.
    unsafe { free(server) };
}

impl Reporter for openssl_reload_server {
    const NAME: &'static str = "server";

    fn status(&self) -> CertificateStatus {
        self.acceptor.status()
    }

    fn json(&self) -> String {
        to_json(&self.acceptor.status(), Some(&self.acceptor.sites()))
    }

    fn reload_now(&self) -> Result<Reload, reload::Error> {
        self.acceptor.reload_now()
    }

    fn subscribe(&self) -> watch::Receiver<CertificateStatus> {
        self.acceptor.subscribe()
    }

    fn watcher(&self) -> &WatcherSlot {
        &self.watcher
    }
}

impl std::fmt::Debug for openssl_reload_server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("openssl_reload_server")
            .field("acceptor", &self.acceptor)
            .finish_non_exhaustive()
    }
}
