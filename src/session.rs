//! Binding each TLS session to the CA bundle that verified its client and to
//! the site it was made for.
//!
//! OpenSSL decides on resumption in the front context, before the servername
//! callback runs, and a resumed session skips client-certificate verification. So
//! a change of trust must be enforced on the sessions themselves, and so must the
//! site: a session made for one name must not resume under another, whose client
//! CA or certificate may differ (the nginx CVE-2025-23419 class). Every session
//! records a *session id context* (`sid_ctx`, up to 32 bytes), and OpenSSL resumes
//! a session (TLS 1.3 ticket, TLS 1.2 ticket or TLS 1.2 session-ID cache entry
//! alike, in `ssl_get_prev_session` and `tls_parse_ctos_psk`) only on a connection
//! whose `sid_ctx` is the same; otherwise it treats the session as unknown: a full
//! handshake that verifies the client against the bundle in service, and a fresh
//! ticket.
//!
//! The client hello callback, which runs before the session is looked up, loads
//! one snapshot and from it switches the connection to the context in service
//! (the one that will verify the client), installs the certificates for the SNI
//! name, and sets the connection's `sid_ctx`: [`SESSION_ID_CONTEXT`] and 16 bytes
//! over the bundle and the name's sites. A new session copies the connection's
//! `sid_ctx` when OpenSSL creates it, after the callback, so it names the bundle
//! that verified its client and the sites it was made for, whatever reload lands
//! later. A reload that leaves the bundle's certificates and the sites as they
//! were (a certificate rotation, a rewrite with the same content) keeps every
//! session resumable. See `docs/design.md`, "Sessions, tickets and trust".

#![allow(unsafe_code)] // One call through crate::ffi, with its SAFETY note.

use std::ffi::c_uint;

use foreign_types::ForeignTypeRef;
use openssl::error::ErrorStack;
use openssl::hash::{Hasher, MessageDigest};
use openssl::ssl::SslRef;
use openssl::x509::{X509Crl, X509};

use crate::ffi;

/// The session id context prefix set on every server context the crate builds.
///
/// TLS 1.3 tickets and session ids are bound to a session id context, and OpenSSL
/// refuses to resume a session of a client that sent a certificate when it is
/// empty. The same on the front and every reloaded context, so `SSL_set_SSL_CTX`
/// keeps it; on each connection 16 bytes that identify the client CA bundle and
/// the site follow it.
pub const SESSION_ID_CONTEXT: &[u8] = b"openssl-reload";

const TRUST_ID_LEN: usize = 16;
/// Bytes of SHA-256 over the trust and the sites after the prefix.
const BINDING_LEN: usize = 16;
const SID_CTX_LEN: usize = SESSION_ID_CONTEXT.len() + BINDING_LEN;
// OpenSSL's SSL_MAX_SID_CTX_LENGTH.
const _: () = assert!(SID_CTX_LEN <= 32);

/// The session id context of a connection: the prefix and the binding.
pub(crate) type SidCtx = [u8; SID_CTX_LEN];

/// The identity of a CA bundle and its CRLs: the first 16 bytes of SHA-256 over
/// the DER of its certificates, then of its CRLs, each in a canonical (sorted)
/// order, so that re-encoding or reordering a file does not count as a change of
/// trust, and a changed CRL does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TrustId([u8; TRUST_ID_LEN]);

impl TrustId {
    /// No CA bundle (yet): what a server started with `allow_missing_at_start` has.
    pub(crate) const NONE: Self = Self([0; TRUST_ID_LEN]);

    pub(crate) fn of(certs: &[X509], crls: &[X509Crl]) -> Result<Self, ErrorStack> {
        let mut digests = certs
            .iter()
            .map(|cert| cert.digest(MessageDigest::sha256()))
            .collect::<Result<Vec<_>, _>>()?;
        digests.sort_by(|a, b| a[..].cmp(&b[..]));
        let mut crl_digests = crls
            .iter()
            .map(|crl| Ok(openssl::hash::hash(MessageDigest::sha256(), &crl.to_der()?)?.to_vec()))
            .collect::<Result<Vec<_>, ErrorStack>>()?;
        crl_digests.sort();
        let mut hasher = Hasher::new(MessageDigest::sha256())?;
        for digest in &digests {
            hasher.update(digest)?;
        }
        // A bundle without CRLs keeps the identity it had before CRLs existed.
        if !crl_digests.is_empty() {
            hasher.update(b"crls")?;
            for digest in &crl_digests {
                hasher.update(digest)?;
            }
        }
        let mut id = [0; TRUST_ID_LEN];
        id.copy_from_slice(&hasher.finish()?[..TRUST_ID_LEN]);
        Ok(Self(id))
    }

    /// The session id context of a connection served `sites` under this trust.
    pub(crate) fn bind(self, sites: &[&str]) -> Result<SidCtx, ErrorStack> {
        let mut hasher = Hasher::new(MessageDigest::sha256())?;
        hasher.update(&self.0)?;
        for site in sites {
            hasher.update(&(site.len() as u64).to_be_bytes())?;
            hasher.update(site.as_bytes())?;
        }
        let mut sid = [0; SID_CTX_LEN];
        sid[..SESSION_ID_CONTEXT.len()].copy_from_slice(SESSION_ID_CONTEXT);
        sid[SESSION_ID_CONTEXT.len()..].copy_from_slice(&hasher.finish()?[..BINDING_LEN]);
        Ok(sid)
    }
}

/// From the client hello callback: sessions made on this connection carry `sid`,
/// and only sessions that carry it may resume on it.
pub(crate) fn set_session_id_context(ssl: &mut SslRef, sid: &SidCtx) -> Result<(), ErrorStack> {
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
