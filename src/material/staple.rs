//! A certificate's OCSP staple as the reload reads it: the optional files
//! (`<cert>.ocsp`, `<cert>.issuer`, or the ones configured), and the check that
//! decides whether the identity is published with a staple, without one, or
//! not at all (a must-staple certificate without a valid staple).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use openssl::x509::X509;

use super::ocsp::{self, OcspInfo};
use super::{parse, read, Identity, WatchedFiles};
use crate::{Error, OcspProblem};

/// Where a certificate's staple comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum OcspFile {
    /// Named by the configuration: a missing file is reported.
    Given(PathBuf),
    /// `<certificate file>.ocsp`, used when it exists.
    Beside(PathBuf),
}

impl OcspFile {
    /// `<cert>.ocsp`, the name HAProxy reads too.
    pub(crate) fn beside(cert: &Path) -> Self {
        Self::beside_with(cert, ".ocsp")
    }

    /// `<cert>.issuer`, HAProxy's name for the certificate's issuer when the
    /// certificate file does not hold it (a leaf issued by a root that is not
    /// shipped to clients).
    pub(crate) fn issuer_beside(cert: &Path) -> Self {
        Self::beside_with(cert, ".issuer")
    }

    fn beside_with(cert: &Path, suffix: &str) -> Self {
        let mut name = cert.as_os_str().to_owned();
        name.push(suffix);
        Self::Beside(PathBuf::from(name))
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            Self::Given(path) | Self::Beside(path) => path,
        }
    }
}

impl WatchedFiles {
    /// Checks the staple read with the identity and attaches it if it passes;
    /// one that fails is logged (once per content: a file is parsed again only
    /// when it changes) and left out, unless the certificate demands one.
    pub(super) fn staple(
        &self,
        identity: &mut Identity,
        raw: Option<Result<Vec<u8>, Error>>,
        raw_issuer: Option<Result<Vec<u8>, Error>>,
    ) -> Result<(), Error> {
        let (Some(file), Some(raw)) = (&self.ocsp, raw) else {
            return self.require_staple(identity, OcspProblem::NoFile);
        };
        let path = file.path();
        let issuer = match (&self.ocsp_issuer, raw_issuer) {
            (Some(file), Some(Ok(bytes))) => {
                parse::parse_certificates(file.path(), &bytes, "OCSP issuer certificate")
            }
            (_, Some(Err(error))) => Err(error),
            _ => Ok(Vec::new()),
        };
        let (checked, info) = match (raw, issuer) {
            (Ok(der), Ok(issuer)) => {
                let candidates: Vec<X509> = identity.chain.iter().cloned().chain(issuer).collect();
                ocsp::check(path, &der, &identity.cert, &candidates)
            }
            (Err(error), _) | (_, Err(error)) => {
                let problem = OcspProblem::File(Box::new(error));
                let mut info = OcspInfo::new(path);
                info.refused(&problem);
                (Err(problem), info)
            }
        };
        let staple = match checked {
            Ok(staple) => Some(staple),
            Err(reason) if ocsp::must_staple(&identity.cert) => {
                return Err(Error::Ocsp {
                    path: path.to_owned(),
                    reason,
                })
            }
            Err(_) => {
                let error = info.error.as_deref().unwrap_or_default();
                tracing::warn!(path = %path.display(), certificate = %identity.path.display(), error, "OCSP staple not stapled; the certificate is served without it");
                None
            }
        };
        identity.staple = staple.map(Arc::new);
        identity.info.ocsp = Some(info);
        Ok(())
    }

    fn require_staple(&self, identity: &Identity, reason: OcspProblem) -> Result<(), Error> {
        if !ocsp::must_staple(&identity.cert) {
            return Ok(());
        }
        let path = self
            .ocsp
            .as_ref()
            .map_or_else(|| OcspFile::beside(&identity.path), Clone::clone);
        Err(Error::Ocsp {
            path: path.path().to_owned(),
            reason,
        })
    }
}

/// An optional file's bytes: `None` for a `<cert>.suffix` file that is not
/// there, the error for one that cannot be read.
pub(super) fn read_optional(file: &OcspFile, limit: u64) -> Option<Result<Vec<u8>, Error>> {
    match read::read_file(file.path(), limit) {
        Err(Error::Io { source, .. })
            if matches!(file, OcspFile::Beside(_))
                && source.kind() == std::io::ErrorKind::NotFound =>
        {
            None
        }
        read => Some(read),
    }
}
