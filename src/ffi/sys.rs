//! The OpenSSL functions and callback types that openssl-sys 0.9 does not
//! declare. The system's `libssl.so.3` and `libcrypto.so.3` export every one of
//! them (OpenSSL 3.0 and later). Only the safe wrappers beside this file and the
//! `extern "C"` callbacks' own modules call them.

#![allow(non_camel_case_types)] // OpenSSL's own type names.

use std::ffi::{c_char, c_int, c_uchar, c_uint, c_void};

use openssl_sys::{
    pem_password_cb, stack_st_X509_NAME, ENGINE, EVP_CIPHER_CTX, EVP_MAC_CTX, EVP_PKEY,
    OSSL_LIB_CTX, OSSL_PARAM, OSSL_PROVIDER, SSL, SSL_CTX, SSL_SESSION, X509_CRL, X509_STORE,
    X509_STORE_CTX,
};

/// An open `OSSL_STORE` channel (`OSSL_STORE_open(3)`).
pub(crate) enum OSSL_STORE_CTX {}
/// One object an `OSSL_STORE` channel yielded.
pub(crate) enum OSSL_STORE_INFO {}
/// A store loader: the provider's implementation of a URI scheme.
pub(crate) enum OSSL_STORE_LOADER {}
/// A user-interface method: how a loader asks for a PIN or passphrase.
pub(crate) enum UI_METHOD {}

/// One entry of a provider's function table (`OSSL_DISPATCH`); a zero
/// `function_id` ends the table.
#[repr(C)]
pub(crate) struct OSSL_DISPATCH {
    pub(crate) function_id: c_int,
    pub(crate) function: Option<unsafe extern "C" fn()>,
}

/// A provider module's entry point (`OSSL_provider_init_fn`).
// SAFETY: only the signature; OpenSSL calls it with the core's handle and
// function table and two places for the provider's table and context.
pub(crate) type ProviderInit = unsafe extern "C" fn(
    handle: *const c_void,
    input: *const OSSL_DISPATCH,
    out: *mut *const OSSL_DISPATCH,
    provctx: *mut *mut c_void,
) -> c_int;

/// `OSSL_STORE_INFO_get_type`'s value for a private key.
pub(crate) const OSSL_STORE_INFO_PKEY: c_int = 4;

/// The ticket key callback of `SSL_CTX_set_tlsext_ticket_key_evp_cb(3)`.
// SAFETY: only the signature; OpenSSL calls it with a live SSL, a 16-byte name
// buffer, a 16-byte IV buffer and initialised cipher and MAC contexts.
pub(crate) type TicketKeyEvpCallback = unsafe extern "C" fn(
    ssl: *mut SSL,
    key_name: *mut c_uchar,
    iv: *mut c_uchar,
    cipher: *mut EVP_CIPHER_CTX,
    mac: *mut EVP_MAC_CTX,
    enc: c_int,
) -> c_int;

/// A certificate store's verify callback (`X509_STORE_set_verify_cb(3)`).
// SAFETY: only the signature; OpenSSL calls it with the verdict so far and the
// live store context of the verification in progress.
pub(crate) type VerifyCallback = unsafe extern "C" fn(ok: c_int, ctx: *mut X509_STORE_CTX) -> c_int;

/// A connection's state-change callback (`SSL_set_info_callback(3)`).
// SAFETY: only the signature; OpenSSL calls it with the live SSL whose state changed.
pub(crate) type InfoCallback = unsafe extern "C" fn(ssl: *const SSL, kind: c_int, value: c_int);

/// A context's OCSP status callback (`SSL_CTX_set_tlsext_status_cb(3)`):
/// `SSL_TLSEXT_ERR_OK`, `_NOACK` or `_ALERT_FATAL`.
// SAFETY: only the signature; OpenSSL calls it with the live SSL of the
// handshake in progress and the context's status argument.
pub(crate) type StatusCallback = unsafe extern "C" fn(ssl: *mut SSL, arg: *mut c_void) -> c_int;

/// A certificate callback (`SSL_CTX_set_cert_cb(3)`): 1 to go on, 0 to fail the
/// handshake.
// SAFETY: only the signature; OpenSSL calls it with the live SSL of the handshake
// in progress and the argument given with the callback.
pub(crate) type CertCallback = unsafe extern "C" fn(ssl: *mut SSL, arg: *mut c_void) -> c_int;

extern "C" {
    /// Sets the callback that a server runs once it has processed the client hello,
    /// before it chooses a certificate; `arg` is passed to it unchanged.
    pub(crate) fn SSL_CTX_set_cert_cb(
        ctx: *mut SSL_CTX,
        callback: Option<CertCallback>,
        arg: *mut c_void,
    );

    /// Removes every certificate, chain and key from one connection.
    pub(crate) fn SSL_certs_clear(ssl: *mut SSL);

    /// The CA names a context sends in its CertificateRequest (owned by the context).
    pub(crate) fn SSL_CTX_get_client_CA_list(ctx: *const SSL_CTX) -> *mut stack_st_X509_NAME;

    /// Makes `store` the context's certificate store, taking a reference of
    /// its own (`X509_STORE_up_ref`); the store may be shared by contexts.
    pub(crate) fn SSL_CTX_set1_cert_store(ctx: *mut SSL_CTX, store: *mut X509_STORE);

    /// A deep copy of a list of CA names, owned by the caller.
    pub(crate) fn SSL_dup_CA_list(list: *const stack_st_X509_NAME) -> *mut stack_st_X509_NAME;

    /// Adds a CRL to a store; the store takes its own reference (`X509_CRL_up_ref`),
    /// the caller keeps its own.
    pub(crate) fn X509_STORE_add_crl(store: *mut X509_STORE, crl: *mut X509_CRL) -> c_int;

    /// Sets the callback that every verification against this store starts with
    /// (a connection's own verify callback, if any, replaces it).
    pub(crate) fn X509_STORE_set_verify_cb(
        store: *mut X509_STORE,
        callback: Option<VerifyCallback>,
    );

    /// Sets the session id context of one connection (at most 32 bytes); sessions
    /// created on it carry it, and only sessions carrying the same one resume on it.
    pub(crate) fn SSL_set_session_id_context(
        ssl: *mut SSL,
        sid_ctx: *const c_uchar,
        sid_ctx_len: c_uint,
    ) -> c_int;

    /// The session id context a session was made under (owned by the session).
    pub(crate) fn SSL_SESSION_get0_id_context(
        session: *const SSL_SESSION,
        len: *mut c_uint,
    ) -> *const c_uchar;

    /// Sets the session id context of a session (at most 32 bytes, copied).
    pub(crate) fn SSL_SESSION_set1_id_context(
        session: *mut SSL_SESSION,
        sid_ctx: *const c_uchar,
        sid_ctx_len: c_uint,
    ) -> c_int;

    /// The verify callback a store starts each verification with, if any.
    pub(crate) fn X509_STORE_get_verify_cb(store: *const X509_STORE) -> Option<VerifyCallback>;

    /// A connection's own verify callback, which OpenSSL runs instead of its
    /// store's; copied from its context at `SSL_new`.
    pub(crate) fn SSL_get_verify_callback(ssl: *const SSL) -> Option<VerifyCallback>;

    /// Sets one connection's state-change callback, which then runs instead of
    /// its context's.
    pub(crate) fn SSL_set_info_callback(ssl: *mut SSL, callback: Option<InfoCallback>);

    /// Installs the callback that names, encrypts and authenticates session tickets.
    pub(crate) fn SSL_CTX_set_tlsext_ticket_key_evp_cb(
        ctx: *mut SSL_CTX,
        callback: Option<TicketKeyEvpCallback>,
    ) -> c_int;

    /// A parameter holding a NUL-terminated string; `bsize` 0 means "its length".
    pub(crate) fn OSSL_PARAM_construct_utf8_string(
        key: *const c_char,
        buf: *mut c_char,
        bsize: usize,
    ) -> OSSL_PARAM;

    /// Opens a store channel for `uri` with the loader of its scheme; `ui_method`
    /// with `ui_data` is how the loader asks for a PIN or passphrase.
    pub(crate) fn OSSL_STORE_open_ex(
        uri: *const c_char,
        libctx: *mut OSSL_LIB_CTX,
        propq: *const c_char,
        ui_method: *const UI_METHOD,
        ui_data: *mut c_void,
        params: *const OSSL_PARAM,
        post_process: *const c_void,
        post_process_data: *mut c_void,
    ) -> *mut OSSL_STORE_CTX;

    /// Tells the loader which kind of object is wanted (before the first load).
    pub(crate) fn OSSL_STORE_expect(ctx: *mut OSSL_STORE_CTX, expected_type: c_int) -> c_int;

    /// The next object of the channel, owned by the caller; NULL at the end or
    /// on an error (`OSSL_STORE_eof` tells which).
    pub(crate) fn OSSL_STORE_load(ctx: *mut OSSL_STORE_CTX) -> *mut OSSL_STORE_INFO;

    /// 1 when the channel has no more objects.
    pub(crate) fn OSSL_STORE_eof(ctx: *mut OSSL_STORE_CTX) -> c_int;

    /// Closes and frees a channel.
    pub(crate) fn OSSL_STORE_close(ctx: *mut OSSL_STORE_CTX) -> c_int;

    /// What kind of object an info holds (`OSSL_STORE_INFO_PKEY`, ...).
    pub(crate) fn OSSL_STORE_INFO_get_type(info: *const OSSL_STORE_INFO) -> c_int;

    /// The private key an info holds, with a new reference for the caller.
    pub(crate) fn OSSL_STORE_INFO_get1_PKEY(info: *const OSSL_STORE_INFO) -> *mut EVP_PKEY;

    /// Frees an info.
    pub(crate) fn OSSL_STORE_INFO_free(info: *mut OSSL_STORE_INFO);

    /// The loader that serves `scheme` URIs in a library context, if a loaded
    /// provider has one; the caller frees it.
    pub(crate) fn OSSL_STORE_LOADER_fetch(
        libctx: *mut OSSL_LIB_CTX,
        scheme: *const c_char,
        properties: *const c_char,
    ) -> *mut OSSL_STORE_LOADER;

    /// Frees a fetched loader.
    pub(crate) fn OSSL_STORE_LOADER_free(loader: *mut OSSL_STORE_LOADER);

    /// The provider a loader comes from (owned by the library context).
    pub(crate) fn OSSL_STORE_LOADER_get0_provider(
        loader: *const OSSL_STORE_LOADER,
    ) -> *const OSSL_PROVIDER;

    /// Registers `init_fn` as the entry point of a provider named `name`, to
    /// be loaded by that name (`OSSL_PROVIDER_add_builtin(3)`).
    pub(crate) fn OSSL_PROVIDER_add_builtin(
        libctx: *mut OSSL_LIB_CTX,
        name: *const c_char,
        init_fn: ProviderInit,
    ) -> c_int;

    /// The function table a provider's entry point returned (owned by the
    /// provider).
    pub(crate) fn OSSL_PROVIDER_get0_dispatch(prov: *const OSSL_PROVIDER) -> *const OSSL_DISPATCH;

    /// A provider's name, e.g. "tpm2" (owned by the provider).
    pub(crate) fn OSSL_PROVIDER_get0_name(prov: *const OSSL_PROVIDER) -> *const c_char;

    /// A UI method that answers every prompt through a PEM passphrase callback,
    /// which gets the UI's user data; freed with `UI_destroy_method`.
    pub(crate) fn UI_UTIL_wrap_read_pem_callback(
        cb: pem_password_cb,
        rwflag: c_int,
    ) -> *mut UI_METHOD;

    /// Frees a UI method made by `UI_UTIL_wrap_read_pem_callback`.
    pub(crate) fn UI_destroy_method(method: *mut UI_METHOD);

    /// A structural reference to the engine `id`, loading it from the engines
    /// directory if it is not built in; NULL if there is none.
    pub(crate) fn ENGINE_by_id(id: *const c_char) -> *mut ENGINE;

    /// Sends a named control command (`MODULE_PATH`) to an engine.
    pub(crate) fn ENGINE_ctrl_cmd_string(
        e: *mut ENGINE,
        cmd_name: *const c_char,
        arg: *const c_char,
        cmd_optional: c_int,
    ) -> c_int;

    /// Initialises an engine, taking a functional reference.
    pub(crate) fn ENGINE_init(e: *mut ENGINE) -> c_int;

    /// Releases a functional reference.
    pub(crate) fn ENGINE_finish(e: *mut ENGINE) -> c_int;

    /// Releases a structural reference.
    pub(crate) fn ENGINE_free(e: *mut ENGINE) -> c_int;

    /// The engine's private-key loader, an address in the engine's library
    /// (`ENGINE_LOAD_KEY_PTR`, declared here as a plain function pointer:
    /// only its address is used).
    pub(crate) fn ENGINE_get_load_privkey_function(
        e: *const ENGINE,
    ) -> Option<unsafe extern "C" fn()>;

    /// Loads the private key `key_id` from an initialised engine; `ui_method`
    /// with `callback_data` is how the engine asks for a PIN.
    pub(crate) fn ENGINE_load_private_key(
        e: *mut ENGINE,
        key_id: *const c_char,
        ui_method: *mut UI_METHOD,
        callback_data: *mut c_void,
    ) -> *mut EVP_PKEY;

    /// Sets the default property query of a library context: every fetch
    /// without a query of its own uses it (`EVP_set_default_properties(3)`).
    pub(crate) fn EVP_set_default_properties(
        libctx: *mut OSSL_LIB_CTX,
        propq: *const c_char,
    ) -> c_int;
}
