//! The OpenSSL functions and callback types that openssl-sys 0.9 does not
//! declare. The system's `libssl.so.3` and `libcrypto.so.3` export every one of
//! them (OpenSSL 3.0 and later). Only the safe wrappers beside this file and the
//! `extern "C"` callbacks' own modules call them.

use std::ffi::{c_char, c_int, c_uchar, c_uint, c_void};

use openssl_sys::{
    stack_st_X509_NAME, EVP_CIPHER_CTX, EVP_MAC_CTX, OSSL_PARAM, SSL, SSL_CTX, SSL_SESSION,
    X509_CRL, X509_STORE, X509_STORE_CTX,
};

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
}
