//! A CA bundle, parsed once per reload into everything its consumers need: the
//! trust store of the context, the CA names a server sends in its
//! CertificateRequest, and the identity that sessions are bound to.

use std::path::{Path, PathBuf};

use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509Name, X509StoreContext, X509};

use super::crl::{self, CrlInfo, CrlOptions};
use super::parse::parse_certificates;
use crate::session::TrustId;
use crate::Error;

/// A parsed CA bundle. Building a context consumes it.
pub(crate) struct Trust {
    pub(crate) store: X509Store,
    pub(crate) names: Stack<X509Name>,
    pub(crate) id: TrustId,
    /// The CRLs in the store, as the status reports them.
    pub(crate) crls: Vec<CrlInfo>,
    certs: Vec<X509>,
    path: PathBuf,
}

impl Trust {
    /// The bundle in `bytes` and, from `crl` (its path and bytes), the CRLs that
    /// must be signed by its CAs.
    pub(super) fn parse(
        path: &Path,
        bytes: &[u8],
        crl: Option<(&Path, &[u8])>,
        options: CrlOptions,
    ) -> Result<Self, Error> {
        let certs = parse_certificates(path, bytes, "CA bundle")?;
        let (crls, crl_infos) = match crl {
            Some((crl_path, crl_bytes)) => {
                let crls = crl::parse_crls(crl_path, crl_bytes)?;
                let infos = crl::check(crl_path, &crls, &certs)?;
                (crls, infos)
            }
            None => (Vec::new(), Vec::new()),
        };
        let failed = |e| Error::parse(path, "CA bundle", e);
        let mut store = X509StoreBuilder::new().map_err(failed)?;
        let mut names = Stack::new().map_err(failed)?;
        for cert in &certs {
            store.add_cert(cert.clone()).map_err(failed)?;
            names
                .push(cert.subject_name().to_owned().map_err(failed)?)
                .map_err(failed)?;
        }
        if let Some((crl_path, _)) = crl {
            crl::install(&mut store, &crls, options)
                .map_err(|e| Error::parse(crl_path, "CRL", e))?;
        }
        Ok(Self {
            store: store.build(),
            names,
            id: TrustId::of(&certs, &crls).map_err(failed)?,
            crls: crl_infos,
            certs,
            path: path.to_owned(),
        })
    }

    /// How many certificates the bundle holds.
    pub(crate) fn len(&self) -> usize {
        self.certs.len()
    }

    /// The opt-in check that a leaf and its chain lead to this bundle, dates
    /// excluded (those are the validity policy's business). It gets a store of
    /// its own, since the context's must check dates.
    pub(super) fn check_chain(
        &self,
        cert_path: &Path,
        leaf: &X509,
        chain: &[X509],
    ) -> Result<(), Error> {
        let verify = || {
            let mut builder = X509StoreBuilder::new()?;
            for cert in &self.certs {
                builder.add_cert(cert.clone())?;
            }
            builder.set_flags(X509VerifyFlags::NO_CHECK_TIME)?;
            let store = builder.build();
            let mut untrusted = Stack::new()?;
            for cert in chain {
                untrusted.push(cert.clone())?;
            }
            let mut ctx = X509StoreContext::new()?;
            ctx.init(&store, leaf, &untrusted, |ctx| {
                Ok(if ctx.verify_cert()? {
                    Ok(())
                } else {
                    Err(ctx.error())
                })
            })
        };
        match verify().map_err(Error::openssl("verify the chain against the CA bundle"))? {
            Ok(()) => Ok(()),
            Err(reason) => Err(Error::Untrusted {
                path: cert_path.to_owned(),
                ca: self.path.clone(),
                reason,
            }),
        }
    }
}
