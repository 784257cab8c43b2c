//! What both builders do, written once over [`BuilderHandle`]: making,
//! changing and building a builder, and the setters both sides have. Each
//! side's exported `_set_*` function is one call to the function of the same
//! name here, whose contract is the export's.
//!
//! A setter reads its arguments before it touches the builder (see
//! [`modify`]), so a refused call leaves the builder as it was.

use std::ffi::{c_char, c_void};
use std::path::PathBuf;
use std::time::Duration;

use reload::{Builder, KeyUri, Passphrase};

use super::constants::{openssl_reload_crl_check, openssl_reload_validity, UnknownConstant};
use super::passphrase::{self, openssl_reload_passphrase_callback};
use crate::args::{arg_mut, check_openssl_version, path_arg, string_arg};
use crate::boundary::guard;
use crate::error::openssl_reload_result;
use crate::error::Failure;

/// A builder handle of either side: its builder, until `_build` takes it.
pub(crate) trait BuilderHandle {
    type Side;
    /// A handle with a new builder of its side.
    fn new() -> Self;
    fn slot(&mut self) -> &mut Option<Builder<Self::Side>>;
}

fn already_built() -> Failure {
    Failure::invalid("the builder was already built")
}

/// `_builder_new`.
///
/// # Safety
///
/// `out` is NULL or writable.
// SAFETY: unsafe because it trusts `out`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
pub(crate) unsafe fn new<H: BuilderHandle>(out: *mut *mut H) -> openssl_reload_result {
    guard(|| {
        // SAFETY: `out` is NULL or writable (the contract), as `arg_mut` requires.
        let out = unsafe { arg_mut(out, "out") }?;
        check_openssl_version()?;
        *out = Box::into_raw(Box::new(H::new()));
        Ok(())
    })
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
// SAFETY: unsafe because it trusts `handle`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
pub(crate) unsafe fn modify<H: BuilderHandle, A>(
    handle: *mut H,
    args: impl FnOnce() -> Result<A, Failure>,
    change: impl FnOnce(Builder<H::Side>, A) -> Builder<H::Side>,
) -> openssl_reload_result {
    guard(|| {
        // SAFETY: `handle` is NULL or a live builder handle, used by no other
        // thread during the call (the contract), as `arg_mut` requires.
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

/// `_builder_build`: takes the builder out of its handle, frees the handle
/// (whatever the result), and writes what `make` builds to `*out`.
///
/// # Safety
///
/// `handle` is NULL or a live builder handle, not used again; `out` is NULL
/// or writable.
// SAFETY: unsafe because it trusts `handle` and `out`, raw pointers from C that Rust cannot check;
// the `# Safety` section says what they must be.
pub(crate) unsafe fn build<H: BuilderHandle, R>(
    handle: *mut H,
    out: *mut *mut R,
    make: impl FnOnce(Builder<H::Side>) -> Result<R, reload::Error>,
) -> openssl_reload_result {
    guard(|| {
        if handle.is_null() {
            return Err(Failure::null("builder"));
        }
        // SAFETY: not NULL, so by the contract a box of ours that is not used
        // again; it is consumed even if `out` turns out to be NULL.
        let builder = unsafe { Box::from_raw(handle) }.slot().take();
        let builder = builder.ok_or_else(already_built)?;
        // SAFETY: `out` is NULL or writable (the contract), as `arg_mut` requires.
        let out = unsafe { arg_mut(out, "out") }?;
        *out = Box::into_raw(Box::new(make(builder)?));
        Ok(())
    })
}

/// `_set_identity`.
///
/// # Safety
///
/// The builder setters' contract; `cert` and `key` are NULL or NUL-terminated.
// SAFETY: unsafe because it trusts `handle`, `cert` and `key`, raw pointers from C that Rust cannot
// check; the `# Safety` section says what they must be.
pub(crate) unsafe fn set_identity<H: BuilderHandle>(
    handle: *mut H,
    cert: *const c_char,
    key: *const c_char,
) -> openssl_reload_result {
    // SAFETY: the caller keeps the contract of `modify` and `path_arg`.
    unsafe {
        modify(
            handle,
            || Ok((path_arg(cert, "cert")?, key_arg(key)?)),
            |b, (cert, key)| match key {
                Ok(uri) => b.identity_uri(cert, uri),
                Err(path) => b.identity(cert, path),
            },
        )
    }
}

/// A key argument: a `pkcs11:` or `store:` URI (`Ok`), else a file (`Err`).
///
/// # Safety
///
/// `key` is NULL or NUL-terminated.
// SAFETY: unsafe because it trusts `key`, a raw pointer from C that Rust cannot check.
pub(crate) unsafe fn key_arg(key: *const c_char) -> Result<Result<KeyUri, PathBuf>, Failure> {
    // SAFETY: the caller's contract, which is `path_arg`'s.
    let path = unsafe { path_arg(key, "key") }?;
    match path
        .to_str()
        .map(KeyUri::from_key_arg)
        .transpose()?
        .flatten()
    {
        Some(uri) => Ok(Ok(uri)),
        None => Ok(Err(path)),
    }
}

/// `_set_pkcs12`.
///
/// # Safety
///
/// The builder setters' contract; `path` is NULL or NUL-terminated.
// SAFETY: unsafe because it trusts `handle` and `path`, raw pointers from C that Rust cannot check;
// the `# Safety` section says what they must be.
pub(crate) unsafe fn set_pkcs12<H: BuilderHandle>(
    handle: *mut H,
    path: *const c_char,
) -> openssl_reload_result {
    // SAFETY: the caller keeps the contract of `modify` and `path_arg`.
    unsafe { modify(handle, || path_arg(path, "path"), Builder::identity_pkcs12) }
}

/// `_set_crl`.
///
/// # Safety
///
/// The builder setters' contract; `path` is NULL or NUL-terminated.
// SAFETY: unsafe because it trusts `handle` and `path`, raw pointers from C that Rust cannot check;
// the `# Safety` section says what they must be.
pub(crate) unsafe fn set_crl<H: BuilderHandle>(
    handle: *mut H,
    path: *const c_char,
    check: u32,
) -> openssl_reload_result {
    // SAFETY: the caller keeps the contract of `modify` and `path_and_constant`.
    unsafe {
        modify(
            handle,
            || path_and_constant(path, check, "check"),
            |b, (path, check): (_, openssl_reload_crl_check)| b.crl(path).crl_check(check.into()),
        )
    }
}

/// `_set_poll_interval_ms`.
///
/// # Safety
///
/// The builder setters' contract.
// SAFETY: unsafe because it trusts `handle`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
pub(crate) unsafe fn set_poll_interval_ms<H: BuilderHandle>(
    handle: *mut H,
    ms: u64,
) -> openssl_reload_result {
    let interval = || match ms {
        0 => Err(Failure::invalid(
            "ms: 0 is too short: the poll interval must be at least 1 ms",
        )),
        ms => Ok(Duration::from_millis(ms)),
    };
    // SAFETY: the caller keeps the contract of `modify`.
    unsafe { modify(handle, interval, Builder::poll_interval) }
}

/// `_set_validity`.
///
/// # Safety
///
/// The builder setters' contract.
// SAFETY: unsafe because it trusts `handle`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
pub(crate) unsafe fn set_validity<H: BuilderHandle>(
    handle: *mut H,
    policy: u32,
) -> openssl_reload_result {
    let policy = || openssl_reload_validity::try_from(policy).map_err(|e| e.of("policy"));
    // SAFETY: the caller keeps the contract of `modify`.
    unsafe { modify(handle, policy, |b, policy| b.validity(policy.into())) }
}

/// Sets the passphrase source that `source` reads from the arguments.
///
/// # Safety
///
/// The builder setters' contract.
// SAFETY: unsafe because it trusts `handle`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
unsafe fn set_passphrase<H: BuilderHandle>(
    handle: *mut H,
    source: impl FnOnce() -> Result<Passphrase, Failure>,
) -> openssl_reload_result {
    // SAFETY: the caller keeps the contract of `modify`.
    unsafe { modify(handle, source, Builder::passphrase) }
}

/// `_set_passphrase_file`.
///
/// # Safety
///
/// The builder setters' contract; `path` is NULL or NUL-terminated.
// SAFETY: unsafe because it trusts `handle` and `path`, raw pointers from C that Rust cannot check;
// the `# Safety` section says what they must be.
pub(crate) unsafe fn set_passphrase_file<H: BuilderHandle>(
    handle: *mut H,
    path: *const c_char,
) -> openssl_reload_result {
    // SAFETY: the caller keeps the contract of `set_passphrase` and `path_arg`.
    unsafe {
        set_passphrase(handle, || {
            Ok(Passphrase::from_file(path_arg(path, "path")?))
        })
    }
}

/// `_set_passphrase_env`.
///
/// # Safety
///
/// The builder setters' contract; `name` is NULL or NUL-terminated.
// SAFETY: unsafe because it trusts `handle` and `name`, raw pointers from C that Rust cannot check;
// the `# Safety` section says what they must be.
pub(crate) unsafe fn set_passphrase_env<H: BuilderHandle>(
    handle: *mut H,
    name: *const c_char,
) -> openssl_reload_result {
    // SAFETY: the caller keeps the contract of `set_passphrase` and `string_arg`.
    unsafe {
        set_passphrase(handle, || {
            Ok(Passphrase::from_env(string_arg(name, "name")?))
        })
    }
}

/// `_set_passphrase_callback`.
///
/// # Safety
///
/// The builder setters' contract; `callback` and `userdata` stay valid as
/// long as the reloader runs.
// SAFETY: unsafe because it trusts `handle` and `userdata`, raw pointers from C that Rust cannot
// check; the `# Safety` section says what they must be.
pub(crate) unsafe fn set_passphrase_callback<H: BuilderHandle>(
    handle: *mut H,
    callback: openssl_reload_passphrase_callback,
    userdata: *mut c_void,
) -> openssl_reload_result {
    let source = || {
        let callback = callback.ok_or_else(|| Failure::null("callback"))?;
        Ok(passphrase::from_callback(callback, userdata))
    };
    // SAFETY: the caller keeps the contract of `set_passphrase`, and keeps
    // `callback` and `userdata` valid for the loader that will call them.
    unsafe { set_passphrase(handle, source) }
}

/// A path argument and a C constant argument, read in that order, the
/// constant's error naming `argument`.
///
/// # Safety
///
/// `path` is NULL or NUL-terminated.
// SAFETY: unsafe because it trusts `path`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
pub(crate) unsafe fn path_and_constant<C: TryFrom<u32, Error = UnknownConstant>>(
    path: *const c_char,
    value: u32,
    argument: &str,
) -> Result<(PathBuf, C), Failure> {
    let constant = C::try_from(value).map_err(|e| e.of(argument));
    // SAFETY: `path` is NULL or NUL-terminated (the contract), as `path_arg` requires.
    Ok((unsafe { path_arg(path, "path") }?, constant?))
}
