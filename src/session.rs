//! Binding each TLS session to the CA bundle that verified its client.
//!
//! OpenSSL decides on resumption in the front context, before the servername
//! callback runs, and a resumed session skips client-certificate verification. So
//! a change of trust must be enforced on the sessions themselves. Every session
//! records a *session id context* (`sid_ctx`, up to 32 bytes), and OpenSSL resumes
//! a session (TLS 1.3 ticket, TLS 1.2 ticket or TLS 1.2 session-ID cache entry
//! alike, in `ssl_get_prev_session` and `tls_parse_ctos_psk`) only on a connection
//! whose `sid_ctx` is the same; otherwise it treats the session as unknown: a full
//! handshake that verifies the client against the bundle in service, and a fresh
//! ticket. With client authentication the crate therefore sets
//!
//! - on each connection, from the client hello callback (which runs before the
//!   session is looked up), the `sid_ctx` of the bundle in service;
//! - on each new session, from the servername callback (which installs the context
//!   that will verify the client), the `sid_ctx` of that context's bundle.
//!
//! A session thus names the bundle that verified its client, not a time: a
//! handshake that straddles a reload is stamped with the bundle it was verified
//! against and stops resuming once that bundle leaves service. A reload that
//! leaves the bundle's certificates as they were (a server certificate rotation,
//! a rewrite with the same content) keeps every session resumable. See
//! `docs/design.md`, "Sessions, tickets and trust".

#![allow(unsafe_code)] // Two calls through crate::ffi, each with its SAFETY note.

use std::ffi::c_uint;

use foreign_types::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::hash::{Hasher, MessageDigest};
use openssl::ssl::SslRef;
use openssl::x509::X509;

use crate::ffi;

/// The session id context prefix set on every server context the crate builds.
///
/// TLS 1.3 tickets and session ids are bound to a session id context, and OpenSSL
/// refuses to resume a session of a client that sent a certificate when it is
/// empty. The same on the front and every reloaded context, so `SSL_set_SSL_CTX`
/// keeps it; with client authentication 16 bytes that identify the client CA
/// bundle follow it.
pub const SESSION_ID_CONTEXT: &[u8] = b"openssl-reload";

const TRUST_ID_LEN: usize = 16;
const SID_CTX_LEN: usize = SESSION_ID_CONTEXT.len() + TRUST_ID_LEN;
// OpenSSL's SSL_MAX_SID_CTX_LENGTH.
const _: () = assert!(SID_CTX_LEN <= 32);

/// The identity of a CA bundle: the first 16 bytes of SHA-256 over the DER of its
/// certificates, in a canonical (sorted) order, so that re-encoding or reordering
/// the file does not count as a change of trust.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TrustId([u8; TRUST_ID_LEN]);

impl TrustId {
    /// No CA bundle (yet): what a server started with `allow_missing_at_start` has.
    pub(crate) const NONE: Self = Self([0; TRUST_ID_LEN]);

    pub(crate) fn of(certs: &[X509]) -> Result<Self, ErrorStack> {
        let mut digests = certs
            .iter()
            .map(|cert| cert.digest(MessageDigest::sha256()))
            .collect::<Result<Vec<_>, _>>()?;
        digests.sort_by(|a, b| a[..].cmp(&b[..]));
        let mut hasher = Hasher::new(MessageDigest::sha256())?;
        for digest in &digests {
            hasher.update(digest)?;
        }
        let mut id = [0; TRUST_ID_LEN];
        id.copy_from_slice(&hasher.finish()?[..TRUST_ID_LEN]);
        Ok(Self(id))
    }

    fn session_id_context(self) -> [u8; SID_CTX_LEN] {
        let mut sid = [0; SID_CTX_LEN];
        sid[..SESSION_ID_CONTEXT.len()].copy_from_slice(SESSION_ID_CONTEXT);
        sid[SESSION_ID_CONTEXT.len()..].copy_from_slice(&self.0);
        sid
    }
}

/// From the client hello callback: only sessions verified by `trust` (the bundle
/// in service) may resume on this connection.
pub(crate) fn admit_sessions_of(ssl: &mut SslRef, trust: TrustId) -> Result<(), ErrorStack> {
    let sid = trust.session_id_context();
    // SAFETY: `ssl` is a live SSL owned by the handshake in progress; OpenSSL copies
    // the bytes (at most 32, checked by the length constant's type and value) and
    // keeps no pointer to `sid`.
    let ok = unsafe {
        ffi::SSL_set_session_id_context(ssl.as_ptr(), sid.as_ptr(), SID_CTX_LEN as c_uint)
    };
    if ok == 1 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}

/// From the servername callback of a full handshake, after the context that will
/// verify the client is installed: the new session records `trust`. Free unless a
/// reload landed between the client hello and this callback.
pub(crate) fn stamp_new_session(ssl: &mut SslRef, trust: TrustId) -> Result<(), ErrorStack> {
    let sid = trust.session_id_context();
    let Some(session) = ssl.session() else {
        return Ok(());
    };
    let session = session.as_ptr();
    let mut len: c_uint = 0;
    // SAFETY: `session` is the connection's current session, alive for the whole
    // callback; the returned pointer is owned by it and read only within `len`
    // bytes before anything can change it (the callback runs on this thread).
    let current = unsafe {
        let ptr = ffi::SSL_SESSION_get0_id_context(session, &mut len);
        if ptr.is_null() {
            &[][..]
        } else {
            std::slice::from_raw_parts(ptr, len as usize)
        }
    };
    if current == sid {
        return Ok(());
    }
    admit_sessions_of(ssl, trust)?;
    // SAFETY: as above; OpenSSL copies the 30 bytes into the session.
    let ok =
        unsafe { ffi::SSL_SESSION_set1_id_context(session, sid.as_ptr(), SID_CTX_LEN as c_uint) };
    if ok == 1 {
        Ok(())
    } else {
        Err(ErrorStack::get())
    }
}
