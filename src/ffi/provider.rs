//! The default library context's `fips=yes` default property, which the
//! openssl crate does not wrap (its `fips` module is OpenSSL 1.x's).

use std::ffi::CStr;
use std::ptr;

use openssl::error::ErrorStack;

use super::cvt;

/// Makes the default library context fetch with `fips=yes`
/// (`EVP_default_properties_enable_fips`).
#[cfg(feature = "fips")]
pub(crate) fn enable_fips_properties() -> Result<(), ErrorStack> {
    // SAFETY: a null library context means the default one; the call only sets
    // its default property query.
    cvt(unsafe { openssl_sys::EVP_default_properties_enable_fips(ptr::null_mut(), 1) }).map(drop)
}

/// Makes `propq` the default library context's default property query
/// (`EVP_set_default_properties`), replacing the one it had.
pub(crate) fn set_default_properties(propq: &CStr) -> Result<(), ErrorStack> {
    // SAFETY: a null library context means the default one; `propq` is
    // NUL-terminated and copied by OpenSSL.
    cvt(unsafe { super::sys::EVP_set_default_properties(ptr::null_mut(), propq.as_ptr()) })
        .map(drop)
}

/// Whether the default library context fetches with `fips=yes`
/// (`EVP_default_properties_is_fips_enabled`).
pub(crate) fn fips_properties_enabled() -> bool {
    // SAFETY: a null library context means the default one; the call only reads.
    unsafe { openssl_sys::EVP_default_properties_is_fips_enabled(ptr::null_mut()) == 1 }
}
