//! The builders: what to load and how, for a server and for a client.
//!
//! Every setter takes effect at `_build`; a setter that fails changes nothing
//! (see [`modify`]). A builder is not thread-safe (use it from one thread at a
//! time), and `_build` frees it.

use std::ffi::{c_char, c_int, c_void};
use std::time::Duration;

use reload::{Builder, ClientAuth, ClientSide, CrlCheck, Passphrase, ServerSide, ValidityPolicy};
use zeroize::Zeroizing;

use crate::args::{arg_mut, check_openssl_version, path_arg, string_arg};
use crate::boundary::{free, guard};
use crate::error::openssl_reload_result::{self, *};
use crate::error::Failure;

/// Settings for a server reloader; made by [`openssl_reload_server_builder_new`].
#[derive(Debug)]
pub struct openssl_reload_server_builder {
    inner: Option<Builder<ServerSide>>,
}

/// Settings for a client reloader; made by [`openssl_reload_client_builder_new`].
#[derive(Debug)]
pub struct openssl_reload_client_builder {
    inner: Option<Builder<ClientSide>>,
}

/// Whether a server requires client certificates once a client CA is set.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum openssl_reload_client_auth {
    /// A client must present a certificate that chains to the CA bundle.
    OPENSSL_RELOAD_CLIENT_AUTH_REQUIRED = 0,
    /// A client may present one; if it does, it must chain to the bundle.
    OPENSSL_RELOAD_CLIENT_AUTH_OPTIONAL = 1,
}

/// Which certificates a CRL is checked against.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum openssl_reload_crl_check {
    /// The peer's own certificate (the default).
    OPENSSL_RELOAD_CRL_CHECK_LEAF = 0,
    /// Every certificate of the peer's chain.
    OPENSSL_RELOAD_CRL_CHECK_CHAIN = 1,
}

/// What to do with a certificate outside its validity period.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum openssl_reload_validity {
    /// Refuse it (the default): the previous certificate stays in service.
    OPENSSL_RELOAD_VALIDITY_ENFORCE = 0,
    /// Serve it and log a warning.
    OPENSSL_RELOAD_VALIDITY_WARN = 1,
}

/// Produces a key's passphrase: writes it (no NUL needed) into `buf`, which has
/// room for `len` bytes, sets `*out_len` and returns 0; any other return value
/// is a failure. It runs on the library's poller thread at each load of an
/// encrypted key, never during a handshake, and must be thread-safe.
// SAFETY: only the signature; the library calls it with a buffer of `len`
// writable bytes and a writable `out_len`, and the caller's `userdata`.
pub type openssl_reload_passphrase_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        buf: *mut c_char,
        len: usize,
        out_len: *mut usize,
    ) -> c_int,
>;

/// The largest passphrase a callback may give.
const PASSPHRASE_MAX: usize = 1024;

/// The caller's userdata, which the header's contract makes usable from any thread.
struct UserData(*mut c_void);
// SAFETY: the callback's documented contract: thread-safe, userdata included, so
// the pointer may move to the poller thread.
unsafe impl Send for UserData {}
// SAFETY: the same contract: the callback may run on any thread, so shared
// references to the userdata may be used from several.
unsafe impl Sync for UserData {}

impl UserData {
    /// Through a method, so that closures capture the whole (Send) wrapper.
    fn get(&self) -> *mut c_void {
        self.0
    }
}

// SAFETY (of the parameter type): the header's contract for the callback, as
// for `openssl_reload_passphrase_callback`.
fn passphrase_from_callback(
    callback: unsafe extern "C" fn(*mut c_void, *mut c_char, usize, *mut usize) -> c_int,
    userdata: *mut c_void,
) -> Passphrase {
    let userdata = UserData(userdata);
    Passphrase::from_callback(move || {
        let mut buf = Zeroizing::new(vec![0u8; PASSPHRASE_MAX]);
        let mut len = 0usize;
        // SAFETY: the buffer has PASSPHRASE_MAX bytes, `len` is writable, and the
        // callback's contract covers `userdata`.
        let rc = unsafe { callback(userdata.get(), buf.as_mut_ptr().cast(), buf.len(), &mut len) };
        if rc != 0 {
            return Err(format!("the passphrase callback returned {rc}"));
        }
        if len > PASSPHRASE_MAX {
            return Err(format!(
                "the passphrase callback reported {len} bytes, more than the {PASSPHRASE_MAX} it was given"
            ));
        }
        Ok(buf[..len].to_vec())
    })
}

/// A builder handle of either side: its builder, until `_build` takes it.
pub(crate) trait BuilderHandle {
    type Side;
    fn slot(&mut self) -> &mut Option<Builder<Self::Side>>;
}

impl BuilderHandle for openssl_reload_server_builder {
    type Side = ServerSide;
    fn slot(&mut self) -> &mut Option<Builder<ServerSide>> {
        &mut self.inner
    }
}

impl BuilderHandle for openssl_reload_client_builder {
    type Side = ClientSide;
    fn slot(&mut self) -> &mut Option<Builder<ClientSide>> {
        &mut self.inner
    }
}

fn already_built() -> Failure {
    Failure::new(
        OPENSSL_RELOAD_INVALID_PARAMETER,
        "the builder was already built",
    )
}

/// Reads a setter's arguments with `args`, then applies them to the builder
/// behind `handle` with `change`. Every setter of both sides is this.
///
/// Everything that can fail (a NULL, empty or non-UTF-8 argument, an unknown
/// constant) is in `args`, which runs before the builder is touched; `change`
/// cannot fail. So a refused call leaves the builder as it was, and the
/// caller may correct the argument and go on.
///
/// # Safety
///
/// `handle` is NULL or a live builder handle, used by no other thread during
/// the call.
// SAFETY: unsafe because it moves the builder out of `*handle` and back, which is sound only if
// `handle` is live and no other thread uses it.
unsafe fn modify<H: BuilderHandle, A>(
    handle: *mut H,
    args: impl FnOnce() -> Result<A, Failure>,
    change: impl FnOnce(Builder<H::Side>, A) -> Builder<H::Side>,
) -> openssl_reload_result {
    guard(|| {
        // SAFETY: `handle` is NULL or a live builder handle, used by no other thread during the
        // call (this function's contract); that is what `arg_mut` requires.
        let slot = unsafe { arg_mut(handle, "builder") }?.slot();
        if slot.is_none() {
            return Err(already_built());
        }
        let args = args()?;
        let builder = slot.take().ok_or_else(already_built)?;
        *slot = Some(change(builder, args));
        Ok(())
    })
}

/// Takes the builder out of its handle and frees the handle.
///
/// # Safety
///
/// `handle` is NULL or came from `Box::into_raw` and is not used again.
// SAFETY: unsafe because it frees `handle` with `Box::from_raw`, which is sound only if the box
// came from us and is not used again.
pub(crate) unsafe fn take<H: BuilderHandle>(handle: *mut H) -> Result<Builder<H::Side>, Failure> {
    if handle.is_null() {
        return Err(Failure::null("builder"));
    }
    // SAFETY: per the contract, the box is ours now.
    let mut boxed = unsafe { Box::from_raw(handle) };
    boxed.slot().take().ok_or_else(already_built)
}

fn interval(ms: u64) -> Result<Duration, Failure> {
    if ms == 0 {
        return Err(Failure::new(
            OPENSSL_RELOAD_INVALID_PARAMETER,
            "ms: 0 is too short: the poll interval must be at least 1 ms",
        ));
    }
    Ok(Duration::from_millis(ms))
}

// ---------------------------------------------------------------------------
// Server builder

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
// SAFETY: unsafe because it writes the new handle through `out`, which C hands over unchecked.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_new(
    out: *mut *mut openssl_reload_server_builder,
) -> openssl_reload_result {
    guard(|| {
        // SAFETY: `out` is writable (this function's contract); that is what `arg_mut` requires.
        let out = unsafe { arg_mut(out, "out") }?;
        check_openssl_version()?;
        let builder = openssl_reload_server_builder {
            inner: Some(reload::ReloadingAcceptor::builder()),
        };
        *out = Box::into_raw(Box::new(builder));
        Ok(())
    })
}

/// Frees a server builder that was not built; NULL is ignored.
///
/// # Safety
///
/// `builder` is NULL or a builder not freed or built before.
// SAFETY: unsafe because it frees `builder`, which only the caller knows was not freed or built
// before.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_free(
    builder: *mut openssl_reload_server_builder,
) {
    // SAFETY: the caller keeps this function's contract, which is `free`'s.
    unsafe { free(builder) };
}

/// The certificate chain (PEM: leaf first, then intermediates) and its key
/// (PEM or DER, PKCS#8, traditional or encrypted). The first certificate
/// configured (this, a PKCS#12 bundle or a site) is the default site.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `cert`
/// and `key` are NUL-terminated paths.
// SAFETY: unsafe because `modify` moves the builder out of `builder` and back, and `cert` and
// `key` are read up to their NUL; C hands over these pointers unchecked.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_identity(
    builder: *mut openssl_reload_server_builder,
    cert: *const c_char,
    key: *const c_char,
) -> openssl_reload_result {
    // SAFETY: `builder` is live and not used by another thread during the call; `cert` and `key`
    // are NUL-terminated paths (this function's contract); that is what `modify` and `path_arg`
    // require.
    unsafe {
        modify(
            builder,
            || Ok((path_arg(cert, "cert")?, path_arg(key, "key")?)),
            |b, (cert, key)| b.identity(cert, key),
        )
    }
}

/// A PKCS#12 bundle (certificate, chain and key) instead of PEM files.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `path` is
/// a NUL-terminated path.
// SAFETY: unsafe because `modify` moves the builder out of `builder` and back, and `path` is read
// up to its NUL; C hands over these pointers unchecked.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_pkcs12(
    builder: *mut openssl_reload_server_builder,
    path: *const c_char,
) -> openssl_reload_result {
    // SAFETY: `builder` is live and not used by another thread during the call; `path` is a
    // NUL-terminated path (this function's contract); that is what `modify` and `path_arg` require.
    unsafe { modify(builder, || path_arg(path, "path"), Builder::identity_pkcs12) }
}

/// One more site: a chain and key chosen by the client's SNI name for the
/// certificate's DNS names. Each site reloads on its own.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `cert` and
/// `key` are NUL-terminated paths.
// SAFETY: unsafe because `modify` moves the builder out of `builder` and back, and `cert` and
// `key` are read up to their NUL; C hands over these pointers unchecked.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_add_site(
    builder: *mut openssl_reload_server_builder,
    cert: *const c_char,
    key: *const c_char,
) -> openssl_reload_result {
    // SAFETY: `builder` is live and not used by another thread during the call; `cert` and `key`
    // are NUL-terminated paths (this function's contract); that is what `modify` and `path_arg`
    // require.
    unsafe {
        modify(
            builder,
            || Ok((path_arg(cert, "cert")?, path_arg(key, "key")?)),
            |b, (cert, key)| b.site(cert, key),
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
// SAFETY: unsafe because `modify` moves the builder out of `builder` and back, and `dir` is read
// up to its NUL; C hands over these pointers unchecked.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_add_site_dir(
    builder: *mut openssl_reload_server_builder,
    dir: *const c_char,
) -> openssl_reload_result {
    // SAFETY: `builder` is live and not used by another thread during the call; `dir` is a
    // NUL-terminated path (this function's contract); that is what `modify` and `path_arg` require.
    unsafe { modify(builder, || path_arg(dir, "dir"), Builder::site_dir) }
}

/// Refuses handshakes whose SNI name no site has (and those without SNI)
/// instead of answering with the default site.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call.
// SAFETY: unsafe because `modify` moves the builder out of `builder` and back, a raw pointer C
// hands over unchecked.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_strict_sni(
    builder: *mut openssl_reload_server_builder,
    strict: bool,
) -> openssl_reload_result {
    // SAFETY: `builder` is live and not used by another thread during the call (this function's
    // contract); that is what `modify` requires.
    unsafe { modify(builder, || Ok(strict), Builder::strict_sni) }
}

/// A client CA bundle (PEM), reloaded like the certificates: attached
/// contexts then verify clients against it, with `auth`.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `path` is
/// a NUL-terminated path.
// SAFETY: unsafe because `modify` moves the builder out of `builder` and back, and `path` is read
// up to its NUL; C hands over these pointers unchecked.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_client_ca(
    builder: *mut openssl_reload_server_builder,
    path: *const c_char,
    auth: u32,
) -> openssl_reload_result {
    // SAFETY: `builder` is live and not used by another thread during the call; `path` is a
    // NUL-terminated path (this function's contract); that is what `modify` requires.
    unsafe {
        modify(
            builder,
            || Ok((path_arg(path, "path")?, client_auth(auth)?)),
            |b, (path, auth)| b.ca(path).client_auth(auth),
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
// SAFETY: unsafe because `modify` moves the builder out of `builder` and back, and `path` is read
// up to its NUL; C hands over these pointers unchecked.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_crl(
    builder: *mut openssl_reload_server_builder,
    path: *const c_char,
    check: u32,
) -> openssl_reload_result {
    // SAFETY: `builder` is live and not used by another thread during the call; `path` is a
    // NUL-terminated path (this function's contract); that is what `modify` and `path_arg` require.
    unsafe {
        modify(
            builder,
            || Ok((path_arg(path, "path")?, crl_check(check)?)),
            |b, (path, check)| b.crl(path).crl_check(check),
        )
    }
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
// SAFETY: unsafe because `modify` moves the builder out of `builder` and back, and `path` is read
// up to its NUL; C hands over these pointers unchecked.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_ocsp_staple(
    builder: *mut openssl_reload_server_builder,
    path: *const c_char,
) -> openssl_reload_result {
    // SAFETY: `builder` is live and not used by another thread during the call; `path` is a
    // NUL-terminated path (this function's contract); that is what `modify` and `path_arg` require.
    unsafe { modify(builder, || path_arg(path, "path"), Builder::ocsp_staple) }
}

/// How often the files are checked, in milliseconds (default 1000).
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call.
// SAFETY: unsafe because `modify` moves the builder out of `builder` and back, a raw pointer C
// hands over unchecked.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_poll_interval_ms(
    builder: *mut openssl_reload_server_builder,
    ms: u64,
) -> openssl_reload_result {
    // SAFETY: `builder` is live and not used by another thread during the call (this function's
    // contract); that is what `modify` requires.
    unsafe { modify(builder, || interval(ms), Builder::poll_interval) }
}

/// What to do with a certificate outside its validity period.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call.
// SAFETY: unsafe because `modify` moves the builder out of `builder` and back, a raw pointer C
// hands over unchecked.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_validity(
    builder: *mut openssl_reload_server_builder,
    policy: u32,
) -> openssl_reload_result {
    // SAFETY: `builder` is live and not used by another thread during the call (this function's
    // contract); that is what `modify` requires.
    unsafe { modify(builder, || validity(policy), Builder::validity) }
}

/// The passphrase of an encrypted key or PKCS#12 bundle: the first line of a
/// file, read at each load (and watched).
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `path` is
/// a NUL-terminated path.
// SAFETY: unsafe because `modify` moves the builder out of `builder` and back, and `path` is read
// up to its NUL; C hands over these pointers unchecked.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_passphrase_file(
    builder: *mut openssl_reload_server_builder,
    path: *const c_char,
) -> openssl_reload_result {
    // SAFETY: `builder` is live and not used by another thread during the call; `path` is a
    // NUL-terminated path (this function's contract); that is what `modify` and `path_arg` require.
    unsafe {
        modify(
            builder,
            || Ok(Passphrase::from_file(path_arg(path, "path")?)),
            Builder::passphrase,
        )
    }
}

/// The passphrase from an environment variable, read at each load.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `name` is
/// a NUL-terminated string.
// SAFETY: unsafe because `modify` moves the builder out of `builder` and back, and `name` is read
// up to its NUL; C hands over these pointers unchecked.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_passphrase_env(
    builder: *mut openssl_reload_server_builder,
    name: *const c_char,
) -> openssl_reload_result {
    // SAFETY: `builder` is live and not used by another thread during the call; `name` is a
    // NUL-terminated string (this function's contract); that is what `modify` and `string_arg`
    // require.
    unsafe {
        modify(
            builder,
            || Ok(Passphrase::from_env(string_arg(name, "name")?)),
            Builder::passphrase,
        )
    }
}

/// The passphrase from `callback`, called with `userdata` at each load.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call;
/// `callback` and `userdata` stay valid as long as the reloader runs.
// SAFETY: unsafe because `modify` moves the builder out of `builder` and back, and the loader will
// call `callback` with `userdata` on the poller thread; only the caller can keep those valid.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_server_builder_set_passphrase_callback(
    builder: *mut openssl_reload_server_builder,
    callback: openssl_reload_passphrase_callback,
    userdata: *mut c_void,
) -> openssl_reload_result {
    // SAFETY: `builder` is live and not used by another thread during the call, as `modify`
    // requires; `callback` and `userdata` stay valid as long as the reloader runs, so it may call
    // them at each load (this function's contract).
    unsafe {
        modify(
            builder,
            || callback.ok_or_else(|| Failure::null("callback")),
            |b, callback| b.passphrase(passphrase_from_callback(callback, userdata)),
        )
    }
}

// ---------------------------------------------------------------------------
// Client builder

/// Makes a client builder in `*out`: without an identity or a CA it is a
/// plain client of the system's CAs. As on the server's, a setter that fails
/// leaves the builder as it was.
///
/// Thread-safe.
///
/// # Safety
///
/// `out` is writable.
// SAFETY: unsafe because it writes the new handle through `out`, which C hands over unchecked.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_new(
    out: *mut *mut openssl_reload_client_builder,
) -> openssl_reload_result {
    guard(|| {
        // SAFETY: `out` is writable (this function's contract); that is what `arg_mut` requires.
        let out = unsafe { arg_mut(out, "out") }?;
        check_openssl_version()?;
        let builder = openssl_reload_client_builder {
            inner: Some(reload::ReloadingConnector::builder()),
        };
        *out = Box::into_raw(Box::new(builder));
        Ok(())
    })
}

/// Frees a client builder that was not built; NULL is ignored.
///
/// # Safety
///
/// `builder` is NULL or a builder not freed or built before.
// SAFETY: unsafe because it frees `builder`, which only the caller knows was not freed or built
// before.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_free(
    builder: *mut openssl_reload_client_builder,
) {
    // SAFETY: the caller keeps this function's contract, which is `free`'s.
    unsafe { free(builder) };
}

/// The client certificate chain and key presented to servers.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `cert`
/// and `key` are NUL-terminated paths.
// SAFETY: unsafe because `modify` moves the builder out of `builder` and back, and `cert` and
// `key` are read up to their NUL; C hands over these pointers unchecked.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_set_identity(
    builder: *mut openssl_reload_client_builder,
    cert: *const c_char,
    key: *const c_char,
) -> openssl_reload_result {
    // SAFETY: `builder` is live and not used by another thread during the call; `cert` and `key`
    // are NUL-terminated paths (this function's contract); that is what `modify` and `path_arg`
    // require.
    unsafe {
        modify(
            builder,
            || Ok((path_arg(cert, "cert")?, path_arg(key, "key")?)),
            |b, (cert, key)| b.identity(cert, key),
        )
    }
}

/// A PKCS#12 bundle as the client identity.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `path` is
/// a NUL-terminated path.
// SAFETY: unsafe because `modify` moves the builder out of `builder` and back, and `path` is read
// up to its NUL; C hands over these pointers unchecked.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_set_pkcs12(
    builder: *mut openssl_reload_client_builder,
    path: *const c_char,
) -> openssl_reload_result {
    // SAFETY: `builder` is live and not used by another thread during the call; `path` is a
    // NUL-terminated path (this function's contract); that is what `modify` and `path_arg` require.
    unsafe { modify(builder, || path_arg(path, "path"), Builder::identity_pkcs12) }
}

/// The CA bundle servers are verified against (instead of the system's).
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `path` is
/// a NUL-terminated path.
// SAFETY: unsafe because `modify` moves the builder out of `builder` and back, and `path` is read
// up to its NUL; C hands over these pointers unchecked.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_set_ca(
    builder: *mut openssl_reload_client_builder,
    path: *const c_char,
) -> openssl_reload_result {
    // SAFETY: `builder` is live and not used by another thread during the call; `path` is a
    // NUL-terminated path (this function's contract); that is what `modify` and `path_arg` require.
    unsafe { modify(builder, || path_arg(path, "path"), Builder::ca) }
}

/// A CRL file for the CA bundle (see the server's).
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `path` is
/// a NUL-terminated path.
// SAFETY: unsafe because `modify` moves the builder out of `builder` and back, and `path` is read
// up to its NUL; C hands over these pointers unchecked.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_set_crl(
    builder: *mut openssl_reload_client_builder,
    path: *const c_char,
    check: u32,
) -> openssl_reload_result {
    // SAFETY: `builder` is live and not used by another thread during the call; `path` is a
    // NUL-terminated path (this function's contract); that is what `modify` and `path_arg` require.
    unsafe {
        modify(
            builder,
            || Ok((path_arg(path, "path")?, crl_check(check)?)),
            |b, (path, check)| b.crl(path).crl_check(check),
        )
    }
}

/// How often the files are checked, in milliseconds (default 1000).
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call.
// SAFETY: unsafe because `modify` moves the builder out of `builder` and back, a raw pointer C
// hands over unchecked.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_set_poll_interval_ms(
    builder: *mut openssl_reload_client_builder,
    ms: u64,
) -> openssl_reload_result {
    // SAFETY: `builder` is live and not used by another thread during the call (this function's
    // contract); that is what `modify` requires.
    unsafe { modify(builder, || interval(ms), Builder::poll_interval) }
}

/// What to do with a certificate outside its validity period.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call.
// SAFETY: unsafe because `modify` moves the builder out of `builder` and back, a raw pointer C
// hands over unchecked.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_set_validity(
    builder: *mut openssl_reload_client_builder,
    policy: u32,
) -> openssl_reload_result {
    // SAFETY: `builder` is live and not used by another thread during the call (this function's
    // contract); that is what `modify` requires.
    unsafe { modify(builder, || validity(policy), Builder::validity) }
}

/// The key's passphrase from a file (see the server's).
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `path` is
/// a NUL-terminated path.
// SAFETY: unsafe because `modify` moves the builder out of `builder` and back, and `path` is read
// up to its NUL; C hands over these pointers unchecked.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_set_passphrase_file(
    builder: *mut openssl_reload_client_builder,
    path: *const c_char,
) -> openssl_reload_result {
    // SAFETY: `builder` is live and not used by another thread during the call; `path` is a
    // NUL-terminated path (this function's contract); that is what `modify` and `path_arg` require.
    unsafe {
        modify(
            builder,
            || Ok(Passphrase::from_file(path_arg(path, "path")?)),
            Builder::passphrase,
        )
    }
}

/// The key's passphrase from an environment variable.
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call; `name` is
/// a NUL-terminated string.
// SAFETY: unsafe because `modify` moves the builder out of `builder` and back, and `name` is read
// up to its NUL; C hands over these pointers unchecked.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_set_passphrase_env(
    builder: *mut openssl_reload_client_builder,
    name: *const c_char,
) -> openssl_reload_result {
    // SAFETY: `builder` is live and not used by another thread during the call; `name` is a
    // NUL-terminated string (this function's contract); that is what `modify` and `string_arg`
    // require.
    unsafe {
        modify(
            builder,
            || Ok(Passphrase::from_env(string_arg(name, "name")?)),
            Builder::passphrase,
        )
    }
}

/// The key's passphrase from a callback (see the server's).
///
/// # Safety
///
/// `builder` is live and not used by another thread during the call;
/// `callback` and `userdata` stay valid as long as the reloader runs.
// SAFETY: unsafe because `modify` moves the builder out of `builder` and back, and the loader will
// call `callback` with `userdata` on the poller thread; only the caller can keep those valid.
#[no_mangle]
pub unsafe extern "C" fn openssl_reload_client_builder_set_passphrase_callback(
    builder: *mut openssl_reload_client_builder,
    callback: openssl_reload_passphrase_callback,
    userdata: *mut c_void,
) -> openssl_reload_result {
    // SAFETY: `builder` is live and not used by another thread during the call, as `modify`
    // requires; `callback` and `userdata` stay valid as long as the reloader runs, so it may call
    // them at each load (this function's contract).
    unsafe {
        modify(
            builder,
            || callback.ok_or_else(|| Failure::null("callback")),
            |b, callback| b.passphrase(passphrase_from_callback(callback, userdata)),
        )
    }
}

// Enumerations arrive as integers: a value C passes that no variant has
// would be undefined behaviour in a Rust enum parameter.

fn client_auth(auth: u32) -> Result<ClientAuth, Failure> {
    match auth {
        x if x == openssl_reload_client_auth::OPENSSL_RELOAD_CLIENT_AUTH_REQUIRED as u32 => {
            Ok(ClientAuth::Required)
        }
        x if x == openssl_reload_client_auth::OPENSSL_RELOAD_CLIENT_AUTH_OPTIONAL as u32 => {
            Ok(ClientAuth::Optional)
        }
        _ => Err(invalid("auth", auth, "a client authentication mode")),
    }
}

fn crl_check(check: u32) -> Result<CrlCheck, Failure> {
    match check {
        x if x == openssl_reload_crl_check::OPENSSL_RELOAD_CRL_CHECK_LEAF as u32 => {
            Ok(CrlCheck::Leaf)
        }
        x if x == openssl_reload_crl_check::OPENSSL_RELOAD_CRL_CHECK_CHAIN as u32 => {
            Ok(CrlCheck::Chain)
        }
        _ => Err(invalid("check", check, "a CRL check")),
    }
}

fn validity(policy: u32) -> Result<ValidityPolicy, Failure> {
    match policy {
        x if x == openssl_reload_validity::OPENSSL_RELOAD_VALIDITY_ENFORCE as u32 => {
            Ok(ValidityPolicy::Enforce)
        }
        x if x == openssl_reload_validity::OPENSSL_RELOAD_VALIDITY_WARN as u32 => {
            Ok(ValidityPolicy::Warn)
        }
        _ => Err(invalid("policy", policy, "a validity policy")),
    }
}

/// `argument: value is not a <kind>`, e.g. "auth: 7 is not a client
/// authentication mode".
fn invalid(argument: &str, value: u32, kind: &str) -> Failure {
    Failure::new(
        OPENSSL_RELOAD_INVALID_PARAMETER,
        format!("{argument}: {value} is not {kind}"),
    )
}

#[cfg(test)]
#[path = "builder_tests.rs"]
mod tests;
