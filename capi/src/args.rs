//! The arguments C passes, read once: pointers checked for NULL and made
//! references, strings and paths copied, OpenSSL objects of the process's own
//! libssl. Each reader fails with a [`Failure`] that names the argument.

use std::ffi::{c_char, CStr, OsStr};
use std::mem::ManuallyDrop;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use foreign_types::ForeignTypeRef;
use openssl::ssl::{SslContextBuilder, SslRef};
use openssl_sys::{SSL, SSL_CTX};

use crate::error::openssl_reload_result::*;
use crate::error::Failure;

/// A required pointer argument as a reference.
///
/// # Safety
///
/// `ptr` is NULL or points to a live `T` for the call's duration.
// SAFETY: unsafe because it trusts `ptr`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
pub(crate) unsafe fn arg<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, Failure> {
    // SAFETY: `ptr` is NULL or points to a live `T` for the call's duration
    // (the contract), which is what `as_ref` requires.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null(what))
}

/// A required mutable pointer argument as a reference.
///
/// # Safety
///
/// `ptr` is NULL or points to a live `T` not used elsewhere during the call.
// SAFETY: unsafe because it trusts `ptr`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
pub(crate) unsafe fn arg_mut<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: `ptr` is NULL or points to a live `T` not used elsewhere during
    // the call (the contract), which is what `as_mut` requires.
    unsafe { ptr.as_mut() }.ok_or_else(|| Failure::null(what))
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
///
/// `ptr` is NULL or a NUL-terminated string live for the call's duration.
// SAFETY: unsafe because it trusts `ptr`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
pub(crate) unsafe fn string_arg(ptr: *const c_char, what: &str) -> Result<String, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: not NULL, so by the contract a NUL-terminated string live for
    // the call, as `from_ptr` requires.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes
        .to_str()
        .map(str::to_owned)
        .map_err(|_| Failure::invalid(format!("{what} is not UTF-8")))
}

/// A path argument (any bytes but NUL: paths need not be UTF-8).
///
/// # Safety
///
/// `ptr` is NULL or a NUL-terminated string live for the call's duration.
// SAFETY: unsafe because it trusts `ptr`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
pub(crate) unsafe fn path_arg(ptr: *const c_char, what: &str) -> Result<PathBuf, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: not NULL, so by the contract a NUL-terminated string live for
    // the call, as `from_ptr` requires.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    if bytes.is_empty() {
        return Err(Failure::invalid(format!("{what} is empty")));
    }
    Ok(PathBuf::from(OsStr::from_bytes(bytes)))
}

/// An `SSL_CTX*` argument as the openssl crate's builder, which is only a view:
/// `ManuallyDrop` keeps the caller's reference from being freed.
///
/// # Safety
///
/// `ctx` is NULL or a live `SSL_CTX` of the process's libssl, not used by
/// another thread during the call.
// SAFETY: unsafe because it trusts `ctx`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
pub(crate) unsafe fn ctx_arg(
    ctx: *mut SSL_CTX,
) -> Result<ManuallyDrop<SslContextBuilder>, Failure> {
    if ctx.is_null() {
        return Err(Failure::null("ctx"));
    }
    check_openssl_version()?;
    // SAFETY: `ctx` is live per the contract; the builder is never dropped.
    Ok(ManuallyDrop::new(unsafe {
        SslContextBuilder::from_ptr(ctx)
    }))
}

/// An `SSL*` argument as a reference.
///
/// # Safety
///
/// `ssl` is NULL or a live `SSL` of the process's libssl, the caller's
/// handshake, not aliased during the call.
// SAFETY: unsafe because it trusts `ssl`, a raw pointer from C that Rust cannot check; the
// `# Safety` section says what it must be.
pub(crate) unsafe fn ssl_arg<'a>(ssl: *mut SSL) -> Result<&'a mut SslRef, Failure> {
    if ssl.is_null() {
        return Err(Failure::null("ssl"));
    }
    check_openssl_version()?;
    // SAFETY: not NULL, so by the contract a live `SSL` of the process's
    // libssl, not aliased during the call: what a `&mut SslRef` needs.
    Ok(unsafe { SslRef::from_ptr_mut(ssl) })
}

/// Fails unless the process's OpenSSL has the major.minor version the library
/// was built against: an `SSL_CTX*` of another OpenSSL is not ours to touch.
pub(crate) fn check_openssl_version() -> Result<(), Failure> {
    // Once per process: install() runs it on the handshake path.
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    CHECKED
        .get_or_init(compare_openssl_versions)
        .clone()
        .map_err(|text| Failure::new(OPENSSL_RELOAD_VERSION_MISMATCH, text))
}

fn compare_openssl_versions() -> Result<(), String> {
    let built = u64::from_str_radix(env!("OPENSSL_RELOAD_BUILT_OPENSSL"), 16).unwrap_or(0);
    #[allow(clippy::useless_conversion)] // c_ulong is u32 on some targets.
    // SAFETY: OpenSSL_version_num has no preconditions.
    let running = u64::from(unsafe { openssl_sys::OpenSSL_version_num() });
    // 0xMNN00PP0 (OpenSSL 3): major and minor in the top 12 bits.
    let major_minor = |v: u64| (v >> 28, (v >> 20) & 0xff);
    if built == 0 || major_minor(built) == major_minor(running) {
        return Ok(());
    }
    let ((bm, bn), (rm, rn)) = (major_minor(built), major_minor(running));
    Err(format!(
        "libopenssl_reload was built against OpenSSL {bm}.{bn}, \
         but this process runs OpenSSL {rm}.{rn} ({})",
        openssl::version::version()
    ))
}
