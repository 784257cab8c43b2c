//! The default library context's default properties (its `fips=yes` one,
//! which the openssl crate does not wrap: its `fips` module is OpenSSL 1.x's),
//! and a provider module's entry point, to start a fresh instance of it.

use std::ffi::{c_void, CStr};
use std::ptr;

use foreign_types::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::provider::ProviderRef;

use super::cvt;
use super::sys::ProviderInit;

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

/// The entry point (`OSSL_provider_init`) of the module `provider` was loaded
/// from, found by the address of the first function in its table; `Err` says
/// why there is none (a provider built into libcrypto has no module).
pub(crate) fn module_entry(provider: &ProviderRef) -> Result<ProviderInit, &'static str> {
    // SAFETY: `provider` is a live, loaded provider; the table is owned by it.
    let table = unsafe { super::sys::OSSL_PROVIDER_get0_dispatch(provider.as_ptr()) };
    if table.is_null() {
        return Err("the provider has no function table");
    }
    // SAFETY: a non-null table has at least its terminating entry.
    let Some(function) = (unsafe { (*table).function }) else {
        return Err("the provider's function table is empty");
    };
    // SAFETY: all-zero is a valid `Dl_info` (null pointers), filled by dladdr.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads which mapped object holds the address.
    if unsafe { libc::dladdr(function as *const c_void, &mut info) } == 0
        || info.dli_fname.is_null()
    {
        return Err("the provider's code is in no loaded module");
    }
    // SAFETY: `dli_fname` names an object mapped in this process; RTLD_NOLOAD
    // only takes one more reference to it, never released, so the entry point
    // stays mapped for the providers made from it.
    let module = unsafe { libc::dlopen(info.dli_fname, libc::RTLD_NOW | libc::RTLD_NOLOAD) };
    if module.is_null() {
        return Err("the provider's module cannot be opened again");
    }
    // SAFETY: `module` is a live handle; the name is NUL-terminated.
    let entry = unsafe { libc::dlsym(module, c"OSSL_provider_init".as_ptr()) };
    if entry.is_null() {
        return Err("the provider's module has no OSSL_provider_init (built into libcrypto)");
    }
    // SAFETY: a provider module's `OSSL_provider_init` has the type
    // `OSSL_provider_init_fn` (provider-base(7)).
    Ok(unsafe { std::mem::transmute::<*mut c_void, ProviderInit>(entry) })
}

/// Registers `init` under `name` in the default library context, to be
/// loaded by that name (`OSSL_PROVIDER_add_builtin`).
pub(crate) fn add_provider_entry(name: &CStr, init: ProviderInit) -> Result<(), ErrorStack> {
    // SAFETY: a null library context means the default one; `name` is
    // NUL-terminated and copied; `init` is a provider entry point that stays
    // mapped (`module_entry`).
    cvt(unsafe { super::sys::OSSL_PROVIDER_add_builtin(ptr::null_mut(), name.as_ptr(), init) })
        .map(drop)
}
