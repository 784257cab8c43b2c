//! The default library context's `fips=yes` default property, which the
//! openssl crate does not wrap (its `fips` module is OpenSSL 1.x's).

use std::ptr;

#[cfg(feature = "fips")]
use openssl::error::ErrorStack;

#[cfg(feature = "fips")]
use super::cvt;

/// Makes the default library context fetch with `fips=yes`
/// (`EVP_default_properties_enable_fips`).
#[cfg(feature = "fips")]
pub(crate) fn enable_fips_properties() -> Result<(), ErrorStack> {
    // SAFETY: a null library context means the default one; the call only sets
    // its default property query.
    cvt(unsafe { openssl_sys::EVP_default_properties_enable_fips(ptr::null_mut(), 1) }).map(drop)
}

/// Whether the default library context fetches with `fips=yes`
/// (`EVP_default_properties_is_fips_enabled`).
pub(crate) fn fips_properties_enabled() -> bool {
    // SAFETY: a null library context means the default one; the call only reads.
    unsafe { openssl_sys::EVP_default_properties_is_fips_enabled(ptr::null_mut()) == 1 }
}
