//! Binding each TLS session to what a full handshake would be checked against.
//!
//! The invariant: a session resumes only where a full handshake with the same
//! client certificate chain and the same SNI name, on the same application
//! context, would succeed at that moment. OpenSSL decides on resumption before
//! the servername and certificate callbacks run, and a resumed session skips
//! client-certificate verification, so whatever decides a full handshake must
//! be in the *session id context* (`sid_ctx`, up to 32 bytes) that sessions
//! carry. OpenSSL resumes a session (TLS 1.3 ticket, TLS 1.2 ticket or TLS 1.2
//! session-ID cache entry alike, in `ssl_get_prev_session` and
//! `tls_parse_ctos_psk`) only on a connection whose `sid_ctx` is the same;
//! otherwise it treats the session as unknown: a full handshake, and a fresh
//! ticket for a client that passes.
//!
//! A connection's `sid_ctx` is [`SESSION_ID_CONTEXT`] and 16 bytes of SHA-256
//! over:
//! - the application context's own session id context (the crate's acceptor:
//!   [`SESSION_ID_CONTEXT`]), so that two contexts the application keeps apart
//!   stay apart;
//! - the verify mode enforced on the connection, so that a context that demands
//!   a client certificate never resumes a session made without one;
//! - the CA bundle and CRLs in service ([`TrustId`]) and the sites that serve
//!   the name, by certificate path ([`SiteBinding`]), which cannot collide the
//!   way file stems do;
//! - on an attached context, the SNI name itself: the application's
//!   servername callback may switch a name to a context of its own, which no
//!   site table of ours describes.
//!
//! The client hello callback, which runs before the session is looked up, sets
//! it; a new session copies it when OpenSSL creates it, after the callback, so
//! it names what verified its client, whatever reload lands later. On an
//! attached context, the certificate callback, which runs after the
//! application's servername callback on full handshakes only, binds the
//! session again to the context the connection ended on. A reload that leaves
//! the bundle and the sites as they were (a certificate rotation) keeps every
//! session resumable. See `docs/design.md`, "Sessions, tickets and trust".

use std::io::{self, Read, Write};
use std::path::Path;

use openssl::error::ErrorStack;
use openssl::hash::{Hasher, MessageDigest};
use openssl::ssl::{Ssl, SslContextRef, SslMethod, SslRef, SslStream, SslVerifyMode};
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
/// Bytes of SHA-256 over the binding's fields after the prefix.
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

    /// What the sites serving a name are, under this trust: the certificate
    /// paths, in order.
    pub(crate) fn sites<'a>(
        self,
        paths: impl IntoIterator<Item = &'a Path>,
    ) -> Result<SiteBinding, ErrorStack> {
        let mut hasher = Hasher::new(MessageDigest::sha256())?;
        hasher.update(&self.0)?;
        for path in paths {
            field(&mut hasher, path.as_os_str().as_encoded_bytes())?;
        }
        let mut id = [0; BINDING_LEN];
        id.copy_from_slice(&hasher.finish()?[..BINDING_LEN]);
        Ok(SiteBinding(id))
    }
}

/// The trust in service and the sites that serve one name (see [`TrustId::sites`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SiteBinding([u8; BINDING_LEN]);

/// The session id context of a connection: sessions made on it carry it, and
/// only sessions that carry it resume on it.
///
/// `context` is the application context's own session id context, `verify` the
/// verify mode enforced on the connection, `sites` what serves the name, and
/// `name` the SNI name (lower case, no trailing dot) where the application may
/// switch contexts by name; `None` where the sites alone decide.
pub(crate) fn bind(
    context: &[u8],
    verify: SslVerifyMode,
    sites: &SiteBinding,
    name: Option<&str>,
) -> Result<SidCtx, ErrorStack> {
    let mut hasher = Hasher::new(MessageDigest::sha256())?;
    field(&mut hasher, context)?;
    hasher.update(&verify.bits().to_be_bytes())?;
    hasher.update(&sites.0)?;
    match name {
        None => hasher.update(&[0])?,
        Some(name) => {
            hasher.update(&[1])?;
            field(&mut hasher, name.as_bytes())?;
        }
    }
    let mut sid = [0; SID_CTX_LEN];
    sid[..SESSION_ID_CONTEXT.len()].copy_from_slice(SESSION_ID_CONTEXT);
    sid[SESSION_ID_CONTEXT.len()..].copy_from_slice(&hasher.finish()?[..BINDING_LEN]);
    Ok(sid)
}

/// A length-prefixed field, so that no two lists of fields hash alike.
fn field(hasher: &mut Hasher, bytes: &[u8]) -> Result<(), ErrorStack> {
    hasher.update(&(bytes.len() as u64).to_be_bytes())?;
    hasher.update(bytes)
}

/// From the client hello callback: sessions made on this connection from now on
/// carry `sid`, and only sessions that carry it may resume on it.
pub(crate) fn set_session_id_context(ssl: &mut SslRef, sid: &SidCtx) -> Result<(), ErrorStack> {
    ffi::session::set_sid_ctx(ssl, sid)
}

/// From the certificate callback, once the application's servername callback
/// has chosen the context: binds the connection and the session being made on
/// it (created before that callback ran, with the `sid_ctx` of the context the
/// connection started on) to `sid`.
pub(crate) fn rebind(ssl: &mut SslRef, sid: &SidCtx) -> Result<(), ErrorStack> {
    set_session_id_context(ssl, sid)?;
    ffi::session::set_session_sid_ctx(ssl, sid)
}

/// Whether the session a connection resumed carries `sid`.
pub(crate) fn resumed_with(ssl: &SslRef, sid: &SidCtx) -> bool {
    ssl.session()
        .is_some_and(|session| ffi::session::session_sid_ctx(session) == sid)
}

/// The session id context a context gives its connections.
///
/// OpenSSL has no getter for it, so a connection is made from `ctx` and starts
/// a client handshake into a buffer: OpenSSL copies the connection's `sid_ctx`
/// into the session it creates before it writes the ClientHello. Nothing goes
/// on a wire, and the connection's info callback is a no-op so that the
/// application's, which may expect one of its own server connections, is not
/// run.
pub(crate) fn context_session_id(ctx: &SslContextRef) -> Result<Vec<u8>, ErrorStack> {
    let mut ssl = Ssl::new(ctx)?;
    // Both methods are version-flexible, so OpenSSL only swaps them.
    ssl.set_method(SslMethod::tls_client())?;
    ffi::session::quiet_info_callback(&mut ssl);
    ssl.set_connect_state();
    let mut stream = SslStream::new(ssl, Sink)?;
    // It stops when it reads for the server's answer, which never comes; the
    // session exists from the first step on, whatever the outcome.
    let _ = stream.connect();
    let session = stream.ssl().session().ok_or_else(ErrorStack::get)?;
    Ok(ffi::session::session_sid_ctx(session).to_vec())
}

/// A peer that takes every byte and never answers.
struct Sink;

impl Read for Sink {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use openssl::ssl::{SslAcceptor, SslContext, SslMethod, SslVerifyMode};

    use super::{bind, context_session_id, TrustId, SESSION_ID_CONTEXT};

    #[test]
    fn a_contexts_session_id_context_is_read_back() {
        let mut app = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
        app.set_session_id_context(b"internal").unwrap();
        let app = app.build().into_context();
        assert_eq!(context_session_id(&app).unwrap(), b"internal");
        let plain = SslContext::builder(SslMethod::tls_server())
            .unwrap()
            .build();
        assert_eq!(context_session_id(&plain).unwrap(), b"");
    }

    #[test]
    fn every_field_changes_the_binding() {
        let required = SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT;
        let none = TrustId::NONE;
        let sid = |ctx: &[u8], mode, trust: TrustId, path: &str, name| {
            let sites = trust.sites([Path::new(path)]).unwrap();
            bind(ctx, mode, &sites, name).unwrap()
        };
        let base = sid(b"app", required, none, "/a/www.pem", Some("a.example"));
        assert!(base.starts_with(SESSION_ID_CONTEXT));
        let variants = [
            sid(b"other", required, none, "/a/www.pem", Some("a.example")),
            sid(
                b"app",
                SslVerifyMode::NONE,
                none,
                "/a/www.pem",
                Some("a.example"),
            ),
            sid(
                b"app",
                required,
                TrustId([7; 16]),
                "/a/www.pem",
                Some("a.example"),
            ),
            sid(b"app", required, none, "/a/www/tls.crt", Some("a.example")),
            sid(b"app", required, none, "/a/www.pem", Some("b.example")),
            sid(b"app", required, none, "/a/www.pem", None),
        ];
        for (i, variant) in variants.into_iter().enumerate() {
            assert_ne!(variant, base, "field {i} did not change the binding");
        }
        let again = sid(b"app", required, none, "/a/www.pem", Some("a.example"));
        assert_eq!(again, base, "the binding is a function of its fields");
    }
}
