//! Connections and contexts: the ctrl calls and getters the openssl crate does
//! not wrap, or wraps in a way that does not fit (a panic, a copy where sharing
//! is meant).

use std::ffi::{c_int, c_uint, c_void};

use foreign_types::{ForeignType, ForeignTypeRef};
use openssl::error::ErrorStack;
use openssl::ssl::{SslContextBuilder, SslContextRef, SslRef};
use openssl::stack::{Stack, StackRef};
use openssl::x509::{X509Name, X509};

use super::sys::{self, StatusCallback, VerifyCallback};
use super::{cvt, cvt_p};

/// `SSL_CTX_clear_extra_chain_certs` is this ctrl (ssl.h); openssl-sys lacks the constant.
const SSL_CTRL_CLEAR_EXTRA_CHAIN_CERTS: c_int = 83;
/// `SSL_CTX_get_tlsext_status_cb` and `_arg` are these ctrls (ssl.h).
const SSL_CTRL_GET_TLSEXT_STATUS_REQ_CB: c_int = 128;
const SSL_CTRL_GET_TLSEXT_STATUS_REQ_CB_ARG: c_int = 129;

/// The context a builder is building, to read it with `SslContextRef`'s getters.
pub(crate) fn context_of(builder: &SslContextBuilder) -> &SslContextRef {
    // SAFETY: the builder owns a live SSL_CTX for at least the borrow, and
    // `SslContextRef` is the openssl crate's shared view of one.
    unsafe { SslContextRef::from_ptr(builder.as_ptr()) }
}

/// Makes `from`'s certificate store verify the peer of `ssl`, shared, instead
/// of the store of the context `ssl` is on (`SSL_set1_verify_cert_store`).
pub(crate) fn share_verify_store(ssl: &mut SslRef, from: &SslContextRef) -> Result<(), ErrorStack> {
    let store = from.cert_store().as_ptr();
    // SAFETY: both are live for the call; the ctrl with larg 1 takes its own
    // reference to the store, which stays `from`'s too.
    let ret = unsafe {
        openssl_sys::SSL_ctrl(
            ssl.as_ptr(),
            openssl_sys::SSL_CTRL_SET_VERIFY_CERT_STORE,
            1,
            store.cast(),
        )
    };
    cvt(ret as c_int).map(drop)
}

/// The same for every connection of a context (`SSL_CTX_set1_verify_cert_store`).
pub(crate) fn share_verify_store_ctx(
    ctx: &mut SslContextBuilder,
    from: &SslContextRef,
) -> Result<(), ErrorStack> {
    let store = from.cert_store().as_ptr();
    // SAFETY: both are live for the call; the ctrl with larg 1 takes its own
    // reference to the store.
    let ret = unsafe {
        openssl_sys::SSL_CTX_ctrl(
            ctx.as_ptr(),
            openssl_sys::SSL_CTRL_SET_VERIFY_CERT_STORE,
            1,
            store.cast(),
        )
    };
    cvt(ret as c_int).map(drop)
}

/// Makes `from`'s certificate store the context's own, shared (`SSL_CTX_set1_cert_store`).
pub(crate) fn share_cert_store(ctx: &mut SslContextBuilder, from: &SslContextRef) {
    let store = from.cert_store().as_ptr();
    // SAFETY: both are live; `set1` takes its own reference to the store.
    unsafe { sys::SSL_CTX_set1_cert_store(ctx.as_ptr(), store) };
}

/// A copy of the CA names `from` sends in its CertificateRequest, if it has any.
pub(crate) fn client_ca_names(from: &SslContextRef) -> Result<Option<Stack<X509Name>>, ErrorStack> {
    // SAFETY: the list belongs to `from` and is only read.
    let names = unsafe { sys::SSL_CTX_get_client_CA_list(from.as_ptr()) };
    if names.is_null() {
        return Ok(None);
    }
    // SAFETY: `names` is a live list; the deep copy is the caller's.
    let copy = cvt_p(unsafe { sys::SSL_dup_CA_list(names) })?;
    // SAFETY: `copy` is a fresh stack of owned names, freed with the `Stack`.
    Ok(Some(unsafe { Stack::from_ptr(copy) }))
}

/// Frees the chain certificates the context holds (`SSL_CTX_clear_extra_chain_certs`).
pub(crate) fn clear_extra_chain_certs(ctx: &mut SslContextBuilder) {
    // SAFETY: `ctx` is live and borrowed mutably; the ctrl frees the chain it
    // holds, none of which is borrowed here.
    unsafe {
        openssl_sys::SSL_CTX_ctrl(
            ctx.as_ptr(),
            SSL_CTRL_CLEAR_EXTRA_CHAIN_CERTS,
            0,
            std::ptr::null_mut(),
        );
    }
}

/// The chain certificates a context holds, if any. `extra_chain_certs()` of
/// the openssl crate panics when OpenSSL has none to return (a leaf-only
/// certificate file); this reads NULL as `None`.
pub(crate) fn extra_chain_certs(ctx: &SslContextRef) -> Option<&StackRef<X509>> {
    let mut stack = std::ptr::null_mut();
    // SAFETY: `ctx` is live; the ctrl writes the context's own stack (or NULL)
    // to `stack` and takes no reference.
    unsafe { openssl_sys::SSL_CTX_get_extra_chain_certs(ctx.as_ptr(), &mut stack) };
    // SAFETY: a non-NULL stack belongs to `ctx`, which outlives the borrow.
    (!stack.is_null()).then(|| unsafe { StackRef::from_ptr(stack) })
}

/// Removes every certificate, chain and key from one connection (`SSL_certs_clear`).
pub(crate) fn certs_clear(ssl: &mut SslRef) {
    // SAFETY: `ssl` is live and borrowed mutably for the call; nothing of what
    // it frees is borrowed.
    unsafe { sys::SSL_certs_clear(ssl.as_ptr()) };
}

/// The body of extension `kind` in the client hello being processed
/// (`SSL_client_hello_get0_ext`): `None` when it has none, or when no client
/// hello is being processed (outside the client hello callback).
pub(crate) fn client_hello_ext(ssl: &SslRef, kind: c_uint) -> Option<&[u8]> {
    let mut data: *const u8 = std::ptr::null();
    let mut len: usize = 0;
    // SAFETY: `ssl` is live; OpenSSL answers 0 when it holds no parsed client
    // hello, and otherwise points `data` into it.
    let found =
        unsafe { openssl_sys::SSL_client_hello_get0_ext(ssl.as_ptr(), kind, &mut data, &mut len) };
    if found != 1 || data.is_null() {
        return None;
    }
    // SAFETY: `data` and `len` describe bytes of the client hello `ssl` holds
    // until its handshake moves on, which needs `ssl` borrowed mutably: the
    // slice, tied to this shared borrow, cannot outlive them (as the openssl
    // crate's `client_hello_ciphers`).
    Some(unsafe { std::slice::from_raw_parts(data, len) })
}

/// A connection's own verify callback (`SSL_get_verify_callback`), which
/// OpenSSL runs instead of its store's; copied from its context at `SSL_new`.
pub(crate) fn verify_callback(ssl: &SslRef) -> Option<VerifyCallback> {
    // SAFETY: `ssl` is live and borrowed for the call; the getter only reads.
    unsafe { sys::SSL_get_verify_callback(ssl.as_ptr()) }
}

/// The OCSP status callback and its argument set on a context, if any
/// (`SSL_CTX_get_tlsext_status_cb` and `_arg`).
pub(crate) fn status_callback(ctx: &SslContextBuilder) -> Option<(StatusCallback, *mut c_void)> {
    let mut callback: Option<StatusCallback> = None;
    let mut arg: *mut c_void = std::ptr::null_mut();
    // SAFETY: `ctx` is live; the two ctrls write the context's callback
    // pointer and its argument to the locations given, which have those types.
    unsafe {
        openssl_sys::SSL_CTX_ctrl(
            ctx.as_ptr(),
            SSL_CTRL_GET_TLSEXT_STATUS_REQ_CB,
            0,
            std::ptr::from_mut(&mut callback).cast(),
        );
        openssl_sys::SSL_CTX_ctrl(
            ctx.as_ptr(),
            SSL_CTRL_GET_TLSEXT_STATUS_REQ_CB_ARG,
            0,
            std::ptr::from_mut(&mut arg).cast(),
        );
    }
    callback.map(|callback| (callback, arg))
}
