//! The known cases behind an [`Error`] variant, one small enum each, so that a
//! caller can match on them and a new case cannot print as free text.

use std::fmt;

use openssl::error::ErrorStack;
use openssl::x509::X509VerifyResult;

use super::Error;

/// Why a chain file is broken ([`Error::BrokenChain`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainProblem {
    /// The next certificate's subject is not this one's issuer (OpenSSL's
    /// verdict, e.g. "subject issuer mismatch").
    NotIssuer(X509VerifyResult),
    /// The names match but the next certificate's key did not sign this one.
    Signature,
}

impl fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotIssuer(verdict) => f.write_str(verdict.error_string()),
            Self::Signature => f.write_str("signature does not verify"),
        }
    }
}

/// Why a session ticket-key file was refused ([`Error::TicketKeys`]). None of
/// them shows the file's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TicketKeyProblem {
    /// The file is not UTF-8 text.
    NotText,
    /// A line is not base64.
    NotBase64,
    /// A line decodes to the wrong number of bytes.
    Length {
        /// How many it decodes to (80 are expected).
        bytes: usize,
    },
    /// The file holds no key line.
    NoKey,
}

impl fmt::Display for TicketKeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotText => f.write_str("not text: expected lines of base64"),
            Self::NotBase64 => f.write_str("not base64"),
            Self::Length { bytes } => {
                write!(f, "{bytes} bytes, expected 80 (16 name, 32 HMAC, 32 AES)")
            }
            Self::NoKey => f.write_str("no key in it"),
        }
    }
}

/// Why the passphrase could not be had ([`Error::Passphrase`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PassphraseProblem {
    /// The environment variable it is to come from is not set.
    EnvUnset {
        /// The variable's name (lossily decoded).
        var: String,
    },
    /// The passphrase callback returned an error.
    Callback {
        /// The callback's message, as it gave it.
        message: String,
    },
    /// A PKCS#12 bundle's passphrase must be UTF-8 without NUL bytes.
    Pkcs12NotUtf8 {
        /// The bundle, as the path prints.
        bundle: String,
    },
}

impl fmt::Display for PassphraseProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EnvUnset { var } => write!(f, "environment variable {var}: it is not set"),
            Self::Callback { message } => write!(f, "the passphrase callback: {message}"),
            Self::Pkcs12NotUtf8 { bundle } => write!(
                f,
                "the passphrase for {bundle}: a PKCS#12 passphrase must be UTF-8 without NUL bytes"
            ),
        }
    }
}

/// Why an OCSP staple is not stapled: the text of
/// [`OcspInfo::error`](crate::OcspInfo::error), and the reason of an
/// [`Error::Ocsp`] for a certificate that demands a staple. OpenSSL's errors
/// and file errors are the [`source`](std::error::Error::source).
#[derive(Debug)]
#[non_exhaustive]
pub enum OcspProblem {
    /// There is no staple file.
    NoFile,
    /// The staple file or the issuer file cannot be read or parsed: the
    /// error prints as this problem, and its causes follow it.
    File(Box<Error>),
    /// The staple file is empty.
    Empty,
    /// The file is not a DER OCSP response.
    NotDer(ErrorStack),
    /// The responder did not answer `successful`.
    Responder {
        /// Its answer, e.g. `tryLater`.
        status: String,
    },
    /// The response is not a basic OCSP response.
    NotBasic(ErrorStack),
    /// The certificate's issuer is in neither its file nor an issuer file.
    NoIssuer,
    /// The certificate's OCSP ID cannot be made.
    CertId(ErrorStack),
    /// The response is about another certificate.
    OtherCertificate {
        /// The serial of the certificate in service, in hex.
        serial: String,
    },
    /// The response's signature does not verify.
    Signature {
        /// The issuer it was checked against, e.g. `CN=Issuing CA`.
        issuer: String,
        /// OpenSSL's errors.
        source: ErrorStack,
    },
    /// The certificate's status is not `good`.
    Status {
        /// `revoked` or `unknown`.
        status: &'static str,
    },
    /// Its thisUpdate is in the future.
    NotYetValid {
        /// thisUpdate, as OpenSSL prints it.
        this_update: String,
    },
    /// Its nextUpdate has passed.
    Expired {
        /// nextUpdate, as OpenSSL prints it.
        next_update: String,
    },
    /// It has no nextUpdate and its thisUpdate is older than the days allowed.
    TooOld {
        /// thisUpdate, as OpenSSL prints it.
        this_update: String,
        /// How many days after thisUpdate such a response is stapled.
        days: i64,
    },
    /// A step of the check failed in OpenSSL (building a store).
    OpenSsl(ErrorStack),
}

impl fmt::Display for OcspProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoFile => f.write_str("there is no staple file"),
            Self::File(error) => error.fmt(f),
            Self::Empty => f.write_str("the file is empty"),
            Self::NotDer(_) => f.write_str("not a DER OCSP response"),
            Self::Responder { status } => write!(f, "the responder answered {status}"),
            Self::NotBasic(_) => f.write_str("not a basic OCSP response"),
            Self::NoIssuer => f.write_str(
                "the certificate's issuer is in neither its file nor an issuer file: append the \
                 chain (leaf, then its issuer), or put the issuer in `<certificate file>.issuer` \
                 (or ocsp_issuer), so that the staple can be checked",
            ),
            Self::CertId(_) => f.write_str("cannot make the certificate's OCSP ID"),
            Self::OtherCertificate { serial } => write!(
                f,
                "it is not a response for the certificate in service (serial {serial})"
            ),
            Self::Signature { issuer, .. } => write!(
                f,
                "its signature does not verify against the issuer ({issuer}) or a responder it \
                 delegated to"
            ),
            Self::Status { status } => write!(f, "the certificate's status is {status}"),
            Self::NotYetValid { this_update } => {
                write!(f, "its thisUpdate ({this_update}) is in the future")
            }
            Self::Expired { next_update } => {
                write!(f, "it expired: its nextUpdate ({next_update}) has passed")
            }
            Self::TooOld { this_update, days } => write!(
                f,
                "it expired: it has no nextUpdate and its thisUpdate ({this_update}) is more \
                 than {days} days old"
            ),
            Self::OpenSsl(_) => f.write_str("cannot check it"),
        }
    }
}

impl std::error::Error for OcspProblem {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::File(error) => std::error::Error::source(error),
            Self::NotDer(source)
            | Self::NotBasic(source)
            | Self::CertId(source)
            | Self::Signature { source, .. }
            | Self::OpenSsl(source) => Some(source),
            Self::NoFile
            | Self::Empty
            | Self::Responder { .. }
            | Self::NoIssuer
            | Self::OtherCertificate { .. }
            | Self::Status { .. }
            | Self::NotYetValid { .. }
            | Self::Expired { .. }
            | Self::TooOld { .. } => None,
        }
    }
}

/// Why a CRL file was refused ([`Error::Crl`]). CRLs are numbered from 1 in
/// the order of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CrlProblem {
    /// The file holds nothing but white space.
    Empty,
    /// A PEM CRL has no END line.
    Unterminated,
    /// The file is PEM but holds no `X509 CRL` block.
    NoCrlBlock,
    /// A CRL file is configured without a CA bundle to check it against.
    NoCaBundle,
    /// A delta CRL (it carries the Delta CRL Indicator extension): only
    /// complete CRLs are supported.
    Delta {
        /// Which CRL of the file.
        index: usize,
        /// Its issuer, e.g. `CN=Clients CA`.
        issuer: String,
    },
    /// No CA of the bundle whose name is its issuer signed it.
    Unsigned {
        /// Which CRL of the file.
        index: usize,
        /// Its issuer.
        issuer: String,
    },
    /// Its lastUpdate is in the future.
    NotYetValid {
        /// Which CRL of the file.
        index: usize,
        /// Its issuer.
        issuer: String,
        /// Its lastUpdate, as OpenSSL prints it.
        last_update: String,
    },
    /// Its nextUpdate has passed.
    Expired {
        /// Which CRL of the file.
        index: usize,
        /// Its issuer.
        issuer: String,
        /// Its nextUpdate, as OpenSSL prints it.
        next_update: String,
    },
}

impl fmt::Display for CrlProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the file is empty: it holds no CRL"),
            Self::Unterminated => f.write_str("a PEM CRL has no END line"),
            Self::NoCrlBlock => f.write_str("holds no PEM block `X509 CRL`"),
            Self::NoCaBundle => f.write_str("a CRL needs a CA bundle (`ca`) that signed it"),
            Self::Delta { index, issuer } => write!(
                f,
                "CRL {index} (issuer {issuer}) is a delta CRL (it carries the Delta CRL \
                 Indicator extension); only complete CRLs are supported"
            ),
            Self::Unsigned { index, issuer } => write!(
                f,
                "CRL {index} (issuer {issuer}) is signed by no CA in the bundle"
            ),
            Self::NotYetValid {
                index,
                issuer,
                last_update,
            } => write!(
                f,
                "CRL {index} (issuer {issuer}) is not yet valid (lastUpdate {last_update})"
            ),
            Self::Expired {
                index,
                issuer,
                next_update,
            } => write!(
                f,
                "CRL {index} (issuer {issuer}) is past its nextUpdate ({next_update})"
            ),
        }
    }
}
