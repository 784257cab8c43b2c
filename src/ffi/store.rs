//! Private keys named by a URI through `OSSL_STORE` (a provider's store
//! loader, e.g. tpm2-openssl's `handle:`), with the PIN handed over by a UI
//! method that never prompts (also the engine's, `engine.rs`).

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr::{self, NonNull};

use foreign_types::ForeignType;
use openssl::error::ErrorStack;
use openssl::pkey::{PKey, Private};

use super::cvt_p;
use super::sys::{self, UI_METHOD};

/// The PIN a loader or engine asks for, and how often it asked.
struct PinData<'a> {
    pin: Option<&'a [u8]>,
    asked: u32,
}

/// Answers a PIN prompt with the configured PIN, once: a second prompt is a
/// retry after a refusal, and answering it again would only count one more
/// failed login against the token. Without a PIN it declines (never a
/// terminal prompt).
// SAFETY: the PEM passphrase callback signature; `u` is the `PinData` that
// `PinUi::with` passes as the UI's user data, alive for the whole load, and
// `buf` holds `size` bytes (OpenSSL's contract).
unsafe extern "C" fn answer_pin(
    buf: *mut c_char,
    size: c_int,
    _rwflag: c_int,
    u: *mut c_void,
) -> c_int {
    if u.is_null() || buf.is_null() {
        return -1;
    }
    // SAFETY: see above: `u` is a live, exclusively used `PinData`.
    let data = unsafe { &mut *u.cast::<PinData<'_>>() };
    data.asked += 1;
    let Some(pin) = data.pin.filter(|_| data.asked == 1) else {
        return -1;
    };
    let Ok(len) = c_int::try_from(pin.len()) else {
        return -1;
    };
    if len >= size {
        return -1;
    }
    // SAFETY: `buf` holds `size` > `len` bytes, and `pin` does not overlap it.
    unsafe { ptr::copy_nonoverlapping(pin.as_ptr(), buf.cast::<u8>(), pin.len()) };
    len
}

/// A UI method over [`answer_pin`], freed on drop.
pub(super) struct PinUi(NonNull<UI_METHOD>);

impl PinUi {
    fn new() -> Result<Self, ErrorStack> {
        // SAFETY: wraps a plain function; the method is owned by `PinUi`.
        let method = cvt_p(unsafe { sys::UI_UTIL_wrap_read_pem_callback(Some(answer_pin), 0) })?;
        Ok(Self(NonNull::new(method).ok_or_else(ErrorStack::get)?))
    }

    /// Runs `load` with the method and the user data that answers with `pin`.
    pub(super) fn with<T>(
        pin: Option<&[u8]>,
        load: impl FnOnce(*mut UI_METHOD, *mut c_void) -> T,
    ) -> Result<T, ErrorStack> {
        let ui = Self::new()?;
        let mut data = PinData { pin, asked: 0 };
        Ok(load(ui.0.as_ptr(), ptr::from_mut(&mut data).cast()))
    }
}

impl Drop for PinUi {
    fn drop(&mut self) {
        // SAFETY: made by UI_UTIL_wrap_read_pem_callback, freed once, here.
        unsafe { sys::UI_destroy_method(self.0.as_ptr()) };
    }
}

/// The first private key `uri` yields through `OSSL_STORE` in the default
/// library context; `None` when the channel holds none.
pub(crate) fn store_private_key(
    uri: &CStr,
    pin: Option<&[u8]>,
) -> Result<Option<PKey<Private>>, ErrorStack> {
    PinUi::with(pin, |ui, data| {
        // SAFETY: `uri` is NUL-terminated; NULL library context, properties,
        // parameters and post-processing mean the defaults; `ui`/`data` live
        // until `with` returns, after the channel is closed below.
        let ctx = cvt_p(unsafe {
            sys::OSSL_STORE_open_ex(
                uri.as_ptr(),
                ptr::null_mut(),
                ptr::null(),
                ui,
                data,
                ptr::null(),
                ptr::null(),
                ptr::null_mut(),
            )
        })?;
        // SAFETY: `ctx` is the live channel opened above; it is closed once, last.
        let key = unsafe { first_private_key(ctx) };
        // SAFETY: as above.
        unsafe { sys::OSSL_STORE_close(ctx) };
        key
    })?
}

/// Loads from an open channel until a private key or the end.
///
/// # Safety
///
/// `ctx` must be a live channel that no other thread uses.
unsafe fn first_private_key(
    ctx: *mut sys::OSSL_STORE_CTX,
) -> Result<Option<PKey<Private>>, ErrorStack> {
    // SAFETY: the caller's contract; a loader that cannot filter ignores this.
    let _ = unsafe { sys::OSSL_STORE_expect(ctx, sys::OSSL_STORE_INFO_PKEY) };
    // SAFETY: the caller's contract.
    while unsafe { sys::OSSL_STORE_eof(ctx) } == 0 {
        // SAFETY: the caller's contract; the info is ours and freed below.
        let info = unsafe { sys::OSSL_STORE_load(ctx) };
        if info.is_null() {
            // SAFETY: the caller's contract.
            if unsafe { sys::OSSL_STORE_eof(ctx) } != 0 {
                break;
            }
            return Err(ErrorStack::get());
        }
        // SAFETY: `info` is live; get1 hands us a reference of our own.
        let pkey = unsafe {
            (sys::OSSL_STORE_INFO_get_type(info) == sys::OSSL_STORE_INFO_PKEY)
                .then(|| sys::OSSL_STORE_INFO_get1_PKEY(info))
        };
        // SAFETY: freed once; the key keeps its own reference.
        unsafe { sys::OSSL_STORE_INFO_free(info) };
        if let Some(pkey) = pkey {
            // SAFETY: a key with one reference of ours, which `PKey` now owns.
            return cvt_p(pkey).map(|p| Some(unsafe { PKey::from_ptr(p) }));
        }
    }
    Ok(None)
}

/// The name of the provider whose store loader serves `scheme` URIs in the
/// default library context, if a loaded one does.
pub(crate) fn store_provider(scheme: &CStr) -> Option<String> {
    // SAFETY: `scheme` is NUL-terminated; NULL means the default context and
    // properties. The loader is freed below.
    let loader =
        unsafe { sys::OSSL_STORE_LOADER_fetch(ptr::null_mut(), scheme.as_ptr(), ptr::null()) };
    if loader.is_null() {
        // A failed fetch leaves "unsupported" on the error stack: not ours to report.
        let _ = ErrorStack::get();
        return None;
    }
    // SAFETY: the provider and its name are owned by the context and outlive
    // the copy made here; the loader is live until freed below.
    let name = unsafe {
        let provider = sys::OSSL_STORE_LOADER_get0_provider(loader);
        let name = if provider.is_null() {
            ptr::null()
        } else {
            sys::OSSL_PROVIDER_get0_name(provider)
        };
        (!name.is_null()).then(|| CStr::from_ptr(name).to_string_lossy().into_owned())
    };
    // SAFETY: fetched above, freed once.
    unsafe { sys::OSSL_STORE_LOADER_free(loader) };
    name
}
