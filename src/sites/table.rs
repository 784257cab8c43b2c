//! The immutable lookup the client hello callback reads: SNI name -> the
//! certificates to install and the session id context to bind the session to.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use openssl::error::ErrorStack;
use openssl::ssl::{SslContext, SslContextBuilder, SslContextRef, SslRef, SslVerifyMode};

use super::SiteCert;
use crate::ffi::{self, slots::Slot};
use crate::material::Identity;
use crate::session::{self, SidCtx, SiteBinding, TrustId};

/// What a handshake switches to: the context with the policy and the client CA
/// bundle, and the sites.
pub(crate) struct Snapshot {
    pub(crate) ctx: SslContext,
    pub(crate) table: SiteTable,
    /// Each site's certificate in this snapshot, by certificate path: what
    /// `sites()` reports, so that a status that shows a certificate is never
    /// ahead of the handshakes.
    pub(crate) certs: HashMap<PathBuf, Arc<SiteCert>>,
    /// The default site's certificate already in a context of its own, for
    /// the handshakes that select it (one-site servers: all of them).
    pub(crate) fast: Option<FastPath>,
}

/// A context holding one name's certificate, chain and key with the trust
/// context's policy, store, CA names and callbacks: switching to it installs
/// the certificate with the context (`SSL_set_SSL_CTX` copies the
/// certificate slots by reference), instead of `SSL_use_certificate` and
/// `SSL_use_PrivateKey` on every connection, which check the key against the
/// certificate each time.
pub(crate) struct FastPath {
    pub(crate) served: Arc<Served>,
    pub(crate) ctx: SslContext,
}

/// Gives `builder` the trust context's certificate store (shared: the same
/// CA bundle, CRLs and verify callback) and a copy of its client CA names.
pub(crate) fn share_trust(
    builder: &mut SslContextBuilder,
    trust: &SslContextRef,
) -> Result<(), ErrorStack> {
    ffi::ssl::share_cert_store(builder, trust);
    if let Some(names) = ffi::ssl::client_ca_names(trust)? {
        builder.set_client_ca_list(names);
    }
    Ok(())
}

impl Snapshot {
    /// Switches `ssl` to the context for `served` and installs its
    /// certificates: from the client hello callback.
    pub(crate) fn switch(&self, ssl: &mut SslRef, served: &Arc<Served>) -> Result<(), ErrorStack> {
        match &self.fast {
            Some(fast) if Arc::ptr_eq(&fast.served, served) => {
                ssl.set_ssl_context(&fast.ctx)?;
                served.bind(ssl)
            }
            _ => {
                ssl.set_ssl_context(&self.ctx)?;
                served.install(ssl)
            }
        }
    }
}

/// The certificates one SNI name gets (one per key type; OpenSSL picks by the
/// client's signature algorithms), what its sessions are bound to, and the
/// session id context they carry on the crate's own acceptor.
pub(crate) struct Served {
    certs: Vec<Arc<SiteCert>>,
    sites: SiteBinding,
    sid: SidCtx,
}

/// What the sessions of every name in a table are bound to besides its sites.
#[derive(Clone, Copy)]
pub(crate) struct Enforced {
    pub(crate) trust: TrustId,
    /// The verify mode of the crate's acceptor under this trust.
    pub(crate) verify: SslVerifyMode,
}

impl Served {
    fn new(certs: Vec<Arc<SiteCert>>, enforced: Enforced) -> Result<Self, ErrorStack> {
        let sites = enforced
            .trust
            .sites(certs.iter().map(|c| c.identity.path.as_path()))?;
        // The crate's acceptor: its own session id context, and no switch by
        // name that the table does not know of.
        let sid = session::bind(session::SESSION_ID_CONTEXT, enforced.verify, &sites, None)?;
        Ok(Self { certs, sites, sid })
    }

    /// The trust and the sites, for a binding on an application's context.
    pub(crate) fn sites(&self) -> &SiteBinding {
        &self.sites
    }

    /// Binds the connection's sessions to this name's sites and the trust in
    /// service, and installs the certificates. Call after `SSL_set_SSL_CTX`,
    /// which replaces the certificates with the context's (none).
    pub(crate) fn install(&self, ssl: &mut SslRef) -> Result<(), ErrorStack> {
        self.bind(ssl)?;
        self.install_certs(ssl)
    }

    /// Binds the connection's sessions to this name's sites, the trust in
    /// service and the acceptor's verify mode: from the client hello callback,
    /// before OpenSSL looks a session up.
    pub(crate) fn bind(&self, ssl: &mut SslRef) -> Result<(), ErrorStack> {
        session::set_session_id_context(ssl, &self.sid)
    }

    /// Its certificate when it has exactly one (one key type).
    pub(crate) fn single(&self) -> Option<&Arc<SiteCert>> {
        match self.certs.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// Each certificate of this name with its key and chain.
    fn slots(&self) -> impl Iterator<Item = Slot<'_>> + Clone {
        self.certs.iter().map(|c| {
            let Identity {
                cert, key, chain, ..
            } = &c.identity;
            (&**cert, &**key, chain.as_slice())
        })
    }

    /// Whether `ssl` holds exactly these certificates, keys and chains
    /// already, from its context ([`put_on_context`](Self::put_on_context)):
    /// installing them would change nothing.
    pub(crate) fn carried_by(&self, ssl: &mut SslRef) -> bool {
        ffi::slots::carries_exactly(ssl, self.slots())
    }

    /// Makes these certificates the context's own, so that connections made
    /// on it start with them. Only for a context no other thread uses meanwhile.
    pub(crate) fn put_on_context(&self, ctx: &SslContextRef) -> Result<(), ErrorStack> {
        ffi::slots::set_context_slots(ctx, self.slots())
    }

    /// Puts every certificate of this name on the connection.
    pub(crate) fn install_certs(&self, ssl: &mut SslRef) -> Result<(), ErrorStack> {
        for cert in &self.certs {
            cert.install(ssl)?;
        }
        Ok(())
    }
}

/// Names to certificates, built once per change and never modified.
#[derive(Default)]
pub(crate) struct SiteTable {
    exact: HashMap<Box<str>, Arc<Served>>,
    /// `*.example.com` under `example.com`.
    wildcard: HashMap<Box<str>, Arc<Served>>,
    default: Option<Arc<Served>>,
    /// The site that `default` serves.
    default_site: Option<String>,
    strict: bool,
}

/// How the table picks its default and treats unknown names.
pub(crate) struct Selection<'a> {
    pub(crate) default: Option<&'a str>,
    pub(crate) strict: bool,
}

impl SiteTable {
    /// `certs` in site order: explicit sites as given, then directory sites by
    /// name. Without a configured default the first is the default. Overlaps
    /// already in `logged` are not logged again.
    pub(crate) fn build(
        certs: &[Arc<SiteCert>],
        selection: &Selection<'_>,
        enforced: Enforced,
        logged: &mut HashSet<String>,
    ) -> Result<Self, ErrorStack> {
        let mut by_name: HashMap<&str, Vec<(usize, &Arc<SiteCert>)>> = HashMap::new();
        for (order, cert) in certs.iter().enumerate() {
            for name in &cert.names {
                by_name.entry(name).or_default().push((order, cert));
            }
        }
        let mut table = Self {
            strict: selection.strict,
            ..Self::default()
        };
        for (name, mut group) in by_name {
            // One certificate per key type: the newest notBefore, then site order.
            group.sort_by_key(|(order, c)| {
                (
                    c.key_type.as_raw(),
                    Reverse(c.identity.info.not_before_unix),
                    *order,
                )
            });
            let mut kept: Vec<Arc<SiteCert>> = Vec::with_capacity(group.len());
            for (_, cert) in group {
                match kept.last() {
                    Some(winner) if winner.key_type == cert.key_type => {
                        log_overlap(name, winner, cert, logged);
                    }
                    _ => kept.push(Arc::clone(cert)),
                }
            }
            let served = Arc::new(Served::new(kept, enforced)?);
            if let Some(parent) = name.strip_prefix("*.") {
                if !parent.is_empty() && !parent.contains('*') {
                    table.wildcard.insert(parent.into(), served);
                }
            } else if !name.contains('*') {
                table.exact.insert(name.into(), served);
            }
        }
        let default = selection
            .default
            .and_then(|wanted| find_site(certs, wanted))
            .or_else(|| certs.first());
        if let Some(cert) = default {
            // The default answers as its first name does (with any site of another
            // key type for that name); a certificate without names alone.
            let by_first_name = cert
                .names
                .first()
                .and_then(|n| table.lookup(n))
                .filter(|s| s.certs.iter().any(|c| Arc::ptr_eq(c, cert)))
                .cloned();
            table.default = Some(match by_first_name {
                Some(served) => served,
                None => Arc::new(Served::new(vec![Arc::clone(cert)], enforced)?),
            });
            table.default_site = Some(cert.site.clone());
        }
        Ok(table)
    }

    /// What a handshake that sent `sni` (raw, as on the wire) gets: its name's
    /// certificates, else the default unless SNI is strict. `None` means refuse.
    pub(crate) fn select(&self, sni: Option<&[u8]>) -> Option<&Arc<Served>> {
        let mut buf = [0; 255];
        let found = sni
            .and_then(|raw| normalize_into(raw, &mut buf))
            .and_then(|name| self.lookup(name));
        match found {
            Some(served) => Some(served),
            None if self.strict => None,
            None => self.default.as_ref(),
        }
    }

    /// Exact name first, then a wildcard for exactly one more label.
    fn lookup(&self, name: &str) -> Option<&Arc<Served>> {
        if let Some(served) = self.exact.get(name) {
            return Some(served);
        }
        let (label, parent) = name.split_once('.')?;
        if label.is_empty() || parent.is_empty() {
            return None;
        }
        self.wildcard.get(parent)
    }

    /// What answers without SNI or for unknown names.
    pub(crate) fn default_served(&self) -> Option<&Arc<Served>> {
        self.default.as_ref()
    }

    /// The site that answers without SNI or for unknown names.
    pub(crate) fn default_site(&self) -> Option<&str> {
        self.default_site.as_deref()
    }
}

/// The site named `wanted` (its name, or one of its DNS names).
pub(crate) fn find_site<'a>(certs: &'a [Arc<SiteCert>], wanted: &str) -> Option<&'a Arc<SiteCert>> {
    let dns = super::normalize(wanted);
    certs
        .iter()
        .find(|c| c.site == wanted)
        .or_else(|| certs.iter().find(|c| c.names.contains(&dns)))
}

fn log_overlap(name: &str, winner: &SiteCert, loser: &SiteCert, logged: &mut HashSet<String>) {
    let key = format!("{name}\0{}\0{}", winner.site, loser.site);
    if logged.insert(key) {
        tracing::warn!(
            name,
            serving = %winner.site,
            not_serving = %loser.site,
            key_type = %winner.key_label,
            "two sites claim the same name with the same key type; serving the one with the newer notBefore"
        );
    }
}

/// ASCII lower case without a trailing dot, in `buf`; `None` for a name that
/// cannot be a DNS name (too long, empty, not ASCII).
pub(crate) fn normalize_into<'b>(raw: &[u8], buf: &'b mut [u8; 255]) -> Option<&'b str> {
    let raw = raw.strip_suffix(b".").unwrap_or(raw);
    if raw.is_empty() || raw.len() > buf.len() || !raw.is_ascii() {
        return None;
    }
    let out = &mut buf[..raw.len()];
    for (o, b) in out.iter_mut().zip(raw) {
        *o = b.to_ascii_lowercase();
    }
    std::str::from_utf8(out).ok()
}

/// The host name of the server_name extension of the client hello being
/// processed (RFC 6066: a list of (type, name); type 0 is host_name), from the
/// client hello callback, before OpenSSL parses it.
pub(crate) fn client_hello_sni(ssl: &SslRef) -> Option<&[u8]> {
    const TLSEXT_TYPE_SERVER_NAME: u32 = 0;
    let ext = ffi::ssl::client_hello_ext(ssl, TLSEXT_TYPE_SERVER_NAME)?;
    let (list_len, mut rest) = split_u16(ext)?;
    if usize::from(list_len) != rest.len() {
        return None;
    }
    while let Some((&kind, after)) = rest.split_first() {
        let (len, after) = split_u16(after)?;
        let (name, after) = after.split_at_checked(usize::from(len))?;
        if kind == 0 {
            return Some(name);
        }
        rest = after;
    }
    None
}

fn split_u16(bytes: &[u8]) -> Option<(u16, &[u8])> {
    let (head, rest) = bytes.split_at_checked(2)?;
    Some((u16::from_be_bytes([head[0], head[1]]), rest))
}

#[cfg(test)]
mod tests {
    use super::normalize_into;

    #[test]
    fn names_are_lower_case_without_the_trailing_dot() {
        let mut buf = [0; 255];
        assert_eq!(
            normalize_into(b"WWW.Example.COM.", &mut buf),
            Some("www.example.com")
        );
        assert_eq!(normalize_into(b".", &mut buf), None);
        assert_eq!(normalize_into(&[0xc3, 0xa9], &mut buf), None);
        assert_eq!(normalize_into(&[b'a'; 256], &mut buf), None);
    }
}
