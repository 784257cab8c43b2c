//! What an [`Error`] says beyond its text: the file it is about, its causes
//! ([`source`](std::error::Error::source)) and the whole chain in one line
//! ([`Error::report`]); and the constructors the crate maps failures with.

use std::fmt;
use std::io;
use std::path::Path;

use openssl::error::ErrorStack;

use super::Error;

impl Error {
    /// The file this error is about, if it is about one.
    ///
    /// For a [`KeyMismatch`](Error::KeyMismatch) this is the key file.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Io { path, .. }
            | Self::TooLarge { path, .. }
            | Self::Parse { path, .. }
            | Self::NoCertificate { path }
            | Self::IncompletePkcs12 { path, .. }
            | Self::PassphraseRequired { path }
            | Self::Decrypt { path, .. }
            | Self::Unsupported { path, .. }
            | Self::Rejected { path, .. }
            | Self::NoSites { dir: path }
            | Self::Expired { path, .. }
            | Self::NotYetValid { path, .. }
            | Self::Untrusted { path, .. }
            | Self::BrokenChain { path, .. }
            | Self::TicketKeys { path, .. }
            | Self::Crl { path, .. }
            | Self::Ocsp { path, .. } => Some(path),
            Self::KeyMismatch { key, .. } => Some(key),
            Self::Passphrase { .. }
            | Self::HardwareKey { .. }
            | Self::Thread { .. }
            | Self::Forked { .. }
            | Self::Panicked { .. }
            | Self::Fips { .. }
            | Self::TicketKeyGeneration(_)
            | Self::NoIdentity
            | Self::UnknownSite { .. }
            | Self::AlreadyAttached
            | Self::ResumedElsewhere { .. }
            | Self::OpenSsl { .. } => None,
        }
    }

    /// The whole story in one line: this error and each of its sources, joined
    /// by `: `, e.g. `cannot parse private key in /etc/tls/key.pem: error:1E08010C:...`.
    /// What the crate logs and records in
    /// [`CertificateStatus::last_error`](crate::CertificateStatus::last_error).
    pub fn report(&self) -> impl fmt::Display + '_ {
        Report(self)
    }

    /// Maps an OpenSSL failure to the step it happened in.
    pub(crate) fn openssl(step: &'static str) -> impl FnOnce(ErrorStack) -> Self {
        move |source| Self::OpenSsl { step, source }
    }

    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn parse(path: &Path, what: &'static str, source: ErrorStack) -> Self {
        Self::Parse {
            path: path.to_owned(),
            what,
            source,
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } | Self::Thread { source } => Some(source),
            Self::Parse { source, .. }
            | Self::Decrypt { source, .. }
            | Self::Unsupported { source, .. }
            | Self::Rejected { source, .. }
            | Self::Fips { source, .. }
            | Self::TicketKeyGeneration(source)
            | Self::OpenSsl { source, .. } => Some(source),
            // The problem prints in this error's text; its causes follow.
            Self::Ocsp { reason, .. } => reason.source(),
            Self::HardwareKey { reason, .. } => reason.source(),
            Self::TooLarge { .. }
            | Self::NoCertificate { .. }
            | Self::IncompletePkcs12 { .. }
            | Self::PassphraseRequired { .. }
            | Self::Passphrase { .. }
            | Self::KeyMismatch { .. }
            | Self::Expired { .. }
            | Self::NotYetValid { .. }
            | Self::Untrusted { .. }
            | Self::Panicked { .. }
            | Self::Forked { .. }
            | Self::BrokenChain { .. }
            | Self::TicketKeys { .. }
            | Self::Crl { .. }
            | Self::NoIdentity
            | Self::NoSites { .. }
            | Self::UnknownSite { .. }
            | Self::AlreadyAttached
            | Self::ResumedElsewhere { .. } => None,
        }
    }
}

/// [`Error::report`]: the error and each of its sources, joined by `: `; for
/// the problem enums too, e.g. an [`OcspProblem`] in the OCSP status.
pub(crate) struct Report<'a>(pub(crate) &'a dyn std::error::Error);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
