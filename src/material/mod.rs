//! The files of a reloader, read once and parsed once per reload:
//!
//! ```text
//! read.rs (bytes, size cap, permissions) -> hash -> parse.rs (certificates, keys,
//! PKCS#12; passphrase.rs) -> validate.rs (pair, dates, chain order) -> trust.rs
//! (the CA bundle, once for every consumer) -> Material, consumed by the build
//! ```
//!
//! A file kind is one field of `RawMaterial` and of [`Material`] and one parse
//! function; the engine sees only `read` and `parse` (`load.rs`). Here: the
//! configuration of the files and the checks, and what a reload produces.

mod crl;
mod fastkey;
mod hardware;
mod identity;
mod info;
mod load;
mod ocsp;
mod parse;
mod passphrase;
mod read;
mod staple;
mod trust;
mod validate;

use std::path::{Path, PathBuf};

pub(crate) use self::crl::{chain_stale_rule, CrlOptions};
pub use self::crl::{CrlCheck, CrlInfo, StaleCrl};
pub use self::hardware::{
    hardware_key_lock, load_key_providers, HardwareKeyProblem, KeyRoute, KeyStatus, KeyTurn, KeyUri,
};
pub(crate) use self::hardware::{key_status, needs_open, opened_elsewhere};
pub(crate) use self::identity::Identity;
pub use self::info::CertificateInfo;
pub use self::ocsp::OcspInfo;
pub(crate) use self::ocsp::{status_callback, StapleMap, Staples};
pub use self::passphrase::Passphrase;
pub(crate) use self::read::read_key_file;
pub use self::read::DEFAULT_MAX_FILE_SIZE;
pub(crate) use self::staple::OcspFile;
pub(crate) use self::trust::Trust;
pub use self::validate::ValidityPolicy;

/// The files of one identity: certificate chain and key, a PKCS#12 bundle, or
/// a certificate chain whose key stays in hardware.
#[derive(Clone, Debug)]
pub(crate) enum IdentityFiles {
    Pair { cert: PathBuf, key: PathBuf },
    Pkcs12(PathBuf),
    Hardware { cert: PathBuf, key: KeyUri },
}

impl IdentityFiles {
    pub(crate) fn cert_path(&self) -> &Path {
        match self {
            Self::Pair { cert, .. } | Self::Hardware { cert, .. } => cert,
            Self::Pkcs12(path) => path,
        }
    }

    /// The certificate file and what names the key, for messages: the key
    /// file (a PKCS#12 bundle is both) or the key's URI.
    pub(crate) fn key_name(&self) -> PathBuf {
        match self {
            Self::Pair { key, .. } => key.clone(),
            Self::Pkcs12(path) => path.clone(),
            Self::Hardware { key, .. } => PathBuf::from(key.to_string()),
        }
    }

    /// The key file (a PKCS#12 bundle is its own), if the key is in one.
    pub(crate) fn key_path(&self) -> Option<&Path> {
        match self {
            Self::Pair { key, .. } => Some(key),
            Self::Pkcs12(path) => Some(path),
            Self::Hardware { .. } => None,
        }
    }

    /// The key URI, if the key stays in hardware.
    pub(crate) fn key_uri(&self) -> Option<&KeyUri> {
        match self {
            Self::Hardware { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// How material is read and what it must pass before it is published.
#[derive(Clone, Debug)]
pub(crate) struct Checks {
    pub(crate) max_file_size: u64,
    pub(crate) validity: ValidityPolicy,
    /// Check that the identity chains to the CA bundle too (opt-in).
    pub(crate) chain_to_ca: bool,
    /// How the CRLs, if any, are enforced.
    pub(crate) crl: CrlOptions,
}

impl Default for Checks {
    fn default() -> Self {
        Self {
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            validity: ValidityPolicy::Enforce,
            chain_to_ca: false,
            crl: CrlOptions::default(),
        }
    }
}

/// The files a reloader watches.
#[derive(Clone, Debug, Default)]
pub(crate) struct WatchedFiles {
    pub(crate) identity: Option<IdentityFiles>,
    pub(crate) ca: Option<PathBuf>,
    /// CRLs of the CA bundle's CAs (PEM, one or more, or DER); only with `ca`.
    pub(crate) crl: Option<PathBuf>,
    /// The identity's OCSP staple; only with `identity`.
    pub(crate) ocsp: Option<OcspFile>,
    /// The certificate's issuer, for checking the staple, where the
    /// certificate file does not hold it; only with `ocsp`.
    pub(crate) ocsp_issuer: Option<OcspFile>,
    pub(crate) passphrase: Passphrase,
}

impl WatchedFiles {
    /// The key URI configured directly (not through a key file that holds one).
    pub(crate) fn key_uri_configured(&self) -> Option<KeyUri> {
        self.identity
            .as_ref()
            .and_then(IdentityFiles::key_uri)
            .cloned()
    }

    /// The files the poller stats.
    pub(crate) fn paths(&self) -> Vec<PathBuf> {
        let mut paths = Vec::new();
        match &self.identity {
            Some(IdentityFiles::Pair { cert, key }) => {
                paths.push(cert.clone());
                if key != cert {
                    paths.push(key.clone());
                }
            }
            Some(IdentityFiles::Pkcs12(path)) => paths.push(path.clone()),
            // The key is watched by its probe (`needs_open`), not by a stat.
            Some(IdentityFiles::Hardware { cert, .. }) => paths.push(cert.clone()),
            None => {}
        }
        paths.extend(self.ca.clone());
        paths.extend(self.crl.clone());
        paths.extend(self.ocsp.as_ref().map(|o| o.path().to_owned()));
        paths.extend(self.ocsp_issuer.as_ref().map(|o| o.path().to_owned()));
        paths.extend(self.passphrase.path().map(Path::to_owned));
        paths
    }
}

/// Parsed and validated material, ready to be built into a context (which
/// consumes it).
pub(crate) struct Material {
    pub(crate) identity: Option<Identity>,
    pub(crate) trust: Option<Trust>,
    pub(crate) digest: [u8; 32],
}

impl Material {
    /// No identity and no CA: what a reloader serves while it waits for files.
    pub(crate) fn empty() -> Self {
        Self {
            identity: None,
            trust: None,
            // No SHA-256 of real files is all zeroes, so the first good read publishes.
            digest: [0; 32],
        }
    }

    /// What the status reports of it: the certificate and the CA count.
    pub(crate) fn summary(&self) -> (Option<CertificateInfo>, usize) {
        (
            self.identity.as_ref().map(|i| i.info.clone()),
            self.trust.as_ref().map_or(0, Trust::len),
        )
    }

    /// The URI of its key, when the key stays in hardware.
    pub(crate) fn key_uri(&self) -> Option<KeyUri> {
        self.identity.as_ref().and_then(|i| i.key_uri.clone())
    }

    /// The CRLs it would put in service.
    pub(crate) fn crls(&self) -> Vec<CrlInfo> {
        self.trust
            .as_ref()
            .map(|t| t.crls.clone())
            .unwrap_or_default()
    }
}
