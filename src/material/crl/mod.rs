//! Certificate revocation lists: parsed from the bytes the poller read, checked
//! against the CA bundle they are published with, and put in that bundle's store.
//!
//! The openssl crate loads CRLs into a store only from a path
//! (`X509Lookup::file`), which would read the file again behind the poller's
//! back; the CRLs parsed here are added with `X509_STORE_add_crl` instead.
//!
//! Here: the options and what the status shows. `check.rs`: parsing, the
//! checks against the bundle, installing; `stale.rs`: the rule for a CRL past
//! its nextUpdate, kept under any verify callback. Why a file is refused is a
//! [`CrlProblem`](crate::CrlProblem), with the other error cases.

mod check;
mod stale;

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::error::ErrorStack;
use openssl::x509::extension::CrlNumber;
use openssl::x509::store::X509StoreBuilderRef;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509Crl, X509};

pub(in crate::material) use self::check::{check, install, parse_crls};
pub(crate) use self::stale::chain_stale_rule;
use self::stale::keep_enforcing;
use super::info::{name_to_string, unix_seconds};
use crate::{ffi, Error};

/// Which certificates of a peer's chain are checked against the CRLs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CrlCheck {
    /// The peer's own certificate only (`X509_V_FLAG_CRL_CHECK`): the CRL
    /// file must hold a CRL of the CA that issues the peers. The default.
    #[default]
    Leaf,
    /// Every certificate of the chain (`X509_V_FLAG_CRL_CHECK_ALL`): the file
    /// must hold a CRL of every CA in the chain, the root's included.
    Chain,
}

/// What happens once a CRL in service passes its nextUpdate and no newer one
/// has been published. Either way revocation is never silently left unchecked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StaleCrl {
    /// Keep enforcing the stale CRL (certificates it revokes stay refused,
    /// others are accepted) and warn once. The default: a CRL publisher that is
    /// late should not take the service down.
    #[default]
    KeepEnforcing,
    /// Refuse every peer that a stale CRL covers (OpenSSL's own behaviour,
    /// "CRL has expired") until a fresh CRL is published.
    RefuseAll,
}

/// How the CRLs are enforced.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CrlOptions {
    pub(crate) check: CrlCheck,
    pub(crate) stale: StaleCrl,
}

/// What a CRL in service says about itself, for status pages and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CrlInfo {
    /// The file it came from.
    pub path: PathBuf,
    /// The issuer, e.g. `CN=Clients CA, O=Example`.
    pub issuer: String,
    /// The CRL number extension in decimal, if it has one.
    pub number: Option<String>,
    /// How many certificates it revokes.
    pub revoked: usize,
    /// lastUpdate (thisUpdate) as OpenSSL prints it.
    pub last_update: String,
    /// lastUpdate in seconds since the Unix epoch.
    pub last_update_unix: i64,
    /// nextUpdate as OpenSSL prints it; `None` if the CRL has none.
    pub next_update: Option<String>,
    /// nextUpdate in seconds since the Unix epoch.
    pub next_update_unix: Option<i64>,
}
