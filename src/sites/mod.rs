//! Many certificates behind one acceptor, chosen by the client's SNI name.
//!
//! ```text
//! explicit sites + directories (dir.rs) -> one Engine per site (reloader/engine.rs)
//!   -> SiteCert (here) -> SiteTable (table.rs): names -> certificates, rebuilt on
//!   any change -> Snapshot (with the trust context) -> the client hello callback
//! ```
//!
//! One `SSL_CTX` holds the policy and the client CA bundle; each handshake gets
//! its site's certificate, chain and key installed on its own `SSL`. A context per
//! site would cost about 20 KB each (measured here: 19,999 bytes per site for
//! Mozilla's profile plus an ECDSA pair, against 6,415 for the parsed pair alone),
//! above the 16 KiB a site may cost at 10,000 sites. `docs/design.md`, "Many
//! certificates", has the reasoning.

mod dir;
mod set;
mod table;

use std::fmt;
use std::path::PathBuf;

use openssl::error::ErrorStack;
use openssl::pkey::Id;
use openssl::ssl::SslRef;
use openssl::x509::X509NameRef;

pub(crate) use self::set::{FastPathBuild, SiteOptions, SiteSetup, Sites, TrustContext};
pub(crate) use self::table::{client_hello_sni, normalize_into, share_trust, Served, Snapshot};

use crate::material::Identity;
use crate::{CertificateInfo, CertificateStatus};

/// A site's certificate as the handshake path uses it: immutable, shared by
/// every snapshot that serves it.
pub(crate) struct SiteCert {
    pub(crate) identity: Identity,
    /// The site's name: the file stem in a directory, the certificate path otherwise.
    pub(crate) site: String,
    /// DNS names it answers for, lower case without a trailing dot; `*.example.com`
    /// for a wildcard.
    pub(crate) names: Vec<String>,
    /// OpenSSL's certificate slot: one certificate per key type per handshake.
    pub(crate) key_type: Id,
    pub(crate) key_label: String,
}

impl SiteCert {
    pub(crate) fn new(site: String, identity: Identity) -> Self {
        warm(&identity);
        let names = dns_names(&identity);
        let key_type = identity.key.id();
        let key_label = key_label(&identity);
        Self {
            identity,
            site,
            names,
            key_type,
            key_label,
        }
    }

    /// Puts the certificate, its chain and its key on a handshake's `SSL`: the
    /// slot of its key type, the others left as they are.
    pub(crate) fn install(&self, ssl: &mut SslRef) -> Result<(), ErrorStack> {
        let Identity {
            cert, chain, key, ..
        } = &self.identity;
        ssl.set_certificate(cert)?;
        // SSL_add0_chain_cert adds to the slot the certificate just went into.
        for link in chain {
            ssl.add_chain_cert(link.clone())?;
        }
        ssl.set_private_key(key)
    }
}

impl fmt::Debug for SiteCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SiteCert")
            .field("site", &self.site)
            .field("names", &self.names)
            .field("key_type", &self.key_label)
            .finish_non_exhaustive()
    }
}

/// Computes now, off the handshake path, what OpenSSL otherwise computes and
/// caches in each certificate the first time a handshake uses it (its
/// extensions and SHA-1 hash, `X509_check_purpose`): with thousands of sites most
/// handshakes of a fresh site would pay for it.
fn warm(identity: &Identity) {
    for cert in std::iter::once(&identity.cert).chain(&identity.chain) {
        crate::ffi::x509::cache_extensions(cert);
    }
}

/// The DNS subject alternative names, or the common name when there are none,
/// normalised as SNI names are.
fn dns_names(identity: &Identity) -> Vec<String> {
    let mut names: Vec<String> = identity
        .cert
        .subject_alt_names()
        .map(|sans| {
            sans.iter()
                .filter_map(|n| n.dnsname().map(normalize))
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        names.extend(common_name(identity.cert.subject_name()).map(|cn| normalize(&cn)));
    }
    names.retain(|n| !n.is_empty());
    names.sort();
    names.dedup();
    names
}

fn common_name(name: &X509NameRef) -> Option<String> {
    let entry = name.entries_by_nid(openssl::nid::Nid::COMMONNAME).next()?;
    entry.data().to_string().ok()
}

/// Lower case, no trailing dot: `Example.COM.` and `example.com` are one name.
pub(crate) fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

fn key_label(identity: &Identity) -> String {
    let key = &identity.key;
    match key.id() {
        Id::RSA => format!("RSA {}", key.bits()),
        Id::RSA_PSS => format!("RSA-PSS {}", key.bits()),
        Id::EC => {
            let curve = key
                .ec_key()
                .ok()
                .and_then(|ec| ec.group().curve_name())
                .and_then(|nid| nid.short_name().ok())
                .unwrap_or("unknown curve");
            format!("ECDSA {curve}")
        }
        Id::ED25519 => "Ed25519".to_owned(),
        Id::ED448 => "Ed448".to_owned(),
        other => format!("key type {}", other.as_raw()),
    }
}

/// One site as [`ReloadingAcceptor::sites`](crate::ReloadingAcceptor::sites)
/// reports it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SiteStatus {
    /// The site's name: `NAME` for `NAME.crt`, `NAME.pem`, `NAME.p12` or the
    /// sub-directory `NAME/` in a site directory; the certificate path for a site
    /// given explicitly.
    pub name: String,
    /// The certificate (or PKCS#12) file.
    pub path: PathBuf,
    /// The DNS names it answers for (`*.example.com` for a wildcard), from the
    /// certificate in service; empty while none is.
    pub names: Vec<String>,
    /// The key type of the certificate in service, e.g. `ECDSA prime256v1`, `RSA 2048`.
    pub key_type: Option<String>,
    /// Whether it answers handshakes without SNI or with an unknown name.
    pub default: bool,
    /// Whether a certificate of it is in service. `false` for a site whose files
    /// have not loaded yet; it is not served until they do.
    pub serving: bool,
    /// Its own reload status: certificate, generation, failures, last error.
    pub status: CertificateStatus,
}

impl SiteStatus {
    /// The certificate in service, if any.
    pub fn certificate(&self) -> Option<&CertificateInfo> {
        self.status.certificate.as_ref()
    }
}
