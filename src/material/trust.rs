//! A CA bundle, parsed once per reload into everything its consumers need: the
//! trust store of the context, the CA names a server sends in its
//! CertificateRequest, and the identity that sessions are bound to.

use std::path::{Path, PathBuf};

use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509Name, X509StoreContext, X509};

use super::parse::parse_certificates;
use crate::session::TrustId;
use crate::Error;

/// A parsed CA bundle. Building a context consumes it.
pub(crate) struct Trust {
    pub(crate) store: X509Store,
    pub(crate) names: Stack<X509Name>,
    pub(crate) id: TrustId,
    certs: Vec<X509>,
    path: PathBuf,
}

impl Trust {
    pub(super) fn parse(path: &Path, bytes: &[u8]) -> Result<Self, Error> {
        let certs = parse_certificates(path, bytes, "CA bundle")?;
        let failed = |e| Error::parse(path, "CA bundle", e);
        let mut store = X509StoreBuilder::new().map_err(failed)?;
        let mut names = Stack::new().map_err(failed)?;
        for cert in &certs {
            store.add_cert(cert.clone()).map_err(failed)?;
            names
                .push(cert.subject_name().to_owned().map_err(failed)?)
                .map_err(failed)?;
        }
        Ok(Self {
            store: store.build(),
            names,
            id: TrustId::of(&certs).map_err(failed)?,
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
                    Err(ctx.error().error_string().to_owned())
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
