//! A parsed identity: leaf certificate, chain and private key, and how it goes
//! into a TLS context.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use openssl::error::ErrorStack;
use openssl::pkey::{PKey, Private};
use openssl::ssl::SslContextBuilder;
use openssl::x509::X509;

use super::hardware::KeyUri;
use super::info::CertificateInfo;
use super::ocsp::Staple;
use crate::Error;

/// A leaf certificate, its chain and its private key.
pub(crate) struct Identity {
    pub(crate) cert: X509,
    pub(crate) chain: Vec<X509>,
    pub(crate) key: PKey<Private>,
    pub(crate) info: CertificateInfo,
    /// The certificate (or PKCS#12) file, for errors found later.
    pub(crate) path: PathBuf,
    /// Its OCSP staple, if one passed the checks.
    pub(crate) staple: Option<Arc<Staple>>,
    /// The URI of the key, when it stays in hardware.
    pub(crate) key_uri: Option<KeyUri>,
}

impl Identity {
    pub(super) fn new(
        path: &Path,
        cert: X509,
        chain: Vec<X509>,
        key: PKey<Private>,
    ) -> Result<Self, Error> {
        let info = CertificateInfo::of(&cert).map_err(|e| Error::parse(path, "certificate", e))?;
        Ok(Self {
            cert,
            chain,
            key,
            info,
            path: path.to_owned(),
            staple: None,
            key_uri: None,
        })
    }

    /// Installs certificate, chain and key in `builder`. OpenSSL's refusals here
    /// (a key type it cannot use, a digest below the security level) are about
    /// the file, so they name it.
    pub(crate) fn install(&self, builder: &mut SslContextBuilder) -> Result<(), Error> {
        let install = |builder: &mut SslContextBuilder| -> Result<(), ErrorStack> {
            builder.set_certificate(&self.cert)?;
            builder.set_private_key(&self.key)?;
            for cert in &self.chain {
                builder.add_extra_chain_cert(cert.clone())?;
            }
            builder.check_private_key()
        };
        install(builder).map_err(|source| Error::Rejected {
            path: self.path.clone(),
            source,
        })
    }
}
