//! How each [`Error`] reads: one exhaustive match, so a new variant does not
//! compile until it says how it prints. The cause (OpenSSL's stack, the OS
//! error) is the `source`, never repeated here.

use std::fmt;

use super::{Error, OcspProblem};

impl fmt::Display for Error {
    #[allow(clippy::too_many_lines)] // One exhaustive match: an arm for each variant.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, .. } => write!(f, "cannot read {}", path.display()),
            Self::TooLarge { path, limit } => write!(
                f,
                "{} is larger than the {limit}-byte limit for certificate material",
                path.display()
            ),
            Self::Parse { path, what, .. } => {
                write!(f, "cannot parse {what} in {}", path.display())
            }
            Self::NoCertificate { path } => {
                write!(f, "no certificate found in {}", path.display())
            }
            Self::IncompletePkcs12 { path, missing } => {
                write!(f, "PKCS#12 bundle {} holds no {missing}", path.display())
            }
            Self::PassphraseRequired { path } => write!(
                f,
                "private key {} is encrypted and no passphrase is configured",
                path.display()
            ),
            Self::Decrypt { path, .. } => write!(
                f,
                "cannot decrypt {}: wrong passphrase or an algorithm the loaded OpenSSL providers do not offer",
                path.display()
            ),
            Self::Unsupported {
                path, algorithm, ..
            } => write!(
                f,
                "cannot load {}: it needs {}, which the loaded OpenSSL providers do not offer (in FIPS mode re-encrypt the key with PBKDF2 and AES, e.g. `openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256`)",
                path.display(),
                algorithm.as_deref().unwrap_or("an algorithm"),
            ),
            Self::Passphrase { reason } => write!(f, "cannot get the passphrase from {reason}"),
            Self::HardwareKey { uri, reason } => write!(f, "private key {uri}: {reason}"),
            Self::KeyMismatch { cert, key } => write!(
                f,
                "private key {} does not match certificate {}",
                key.display(),
                cert.display()
            ),
            Self::Expired { path, not_after } => write!(
                f,
                "certificate {} expired (notAfter {not_after})",
                path.display()
            ),
            Self::NotYetValid { path, not_before } => write!(
                f,
                "certificate {} is not yet valid (notBefore {not_before})",
                path.display()
            ),
            Self::Untrusted { path, ca, reason } => write!(
                f,
                "certificate {} does not chain to CA bundle {}: {reason}",
                path.display(),
                ca.display()
            ),
            Self::Rejected { path, .. } => write!(
                f,
                "OpenSSL refuses the material in {} for TLS",
                path.display()
            ),
            Self::Panicked { message } => write!(f, "reload attempt panicked: {message}"),
            Self::Thread { .. } => f.write_str("cannot spawn the poller thread"),
            Self::Forked { pid } => write!(
                f,
                "the reloader polls in process {pid}, which this process was forked from; \
                 build it with deferred polling and start polling in each child"
            ),
            Self::Fips { step, config, .. } => write!(
                f,
                "FIPS mode: cannot {step} ({config}; check that OPENSSL_CONF includes the fipsmodule.cnf written by `openssl fipsinstall` and that OPENSSL_MODULES or its `module =` line locates fips.so)"
            ),
            Self::BrokenChain {
                path,
                position,
                reason,
            } => write!(
                f,
                "certificate chain {} is broken: certificate {} is not signed by the next one ({reason}); list the leaf first, then each issuer",
                path.display(),
                position + 1
            ),
            Self::TicketKeys { path, line, reason } => match line {
                Some(line) => write!(f, "ticket-key file {}: line {line}: {reason}", path.display()),
                None => write!(f, "ticket-key file {}: {reason}", path.display()),
            },
            Self::Crl { path, reason } => write!(f, "CRL file {}: {reason}", path.display()),
            Self::Ocsp { path, reason } => {
                let path = path.display();
                let must = "the certificate requires OCSP stapling (must-staple) and";
                match reason {
                    OcspProblem::NoFile => write!(f, "OCSP staple file {path}: {must} {reason}"),
                    _ => write!(
                        f,
                        "OCSP staple file {path}: {must} the staple is not valid: {reason}"
                    ),
                }
            }
            Self::TicketKeyGeneration(_) => f.write_str("cannot make a session ticket key"),
            Self::NoIdentity => f.write_str(
                "no certificate configured: a server needs identity(cert, key), identity_pkcs12(path), a site or a site directory",
            ),
            Self::NoSites { dir } => write!(
                f,
                "site directory {} holds no site (NAME.crt with NAME.key, NAME.pem, NAME.p12, or NAME/tls.crt with NAME/tls.key)",
                dir.display()
            ),
            Self::UnknownSite { name } => write!(
                f,
                "default site {name:?} is not served: no site has that name or DNS name"
            ),
            Self::OpenSsl { step, .. } => write!(f, "cannot {step}"),
            Self::AlreadyAttached => f.write_str("a reloader is attached to this context already"),
            Self::ResumedElsewhere { name } => write!(
                f,
                "the session resumed for {name:?} was not made under the trust, site and context \
                 in service; refusing the handshake"
            ),
        }
    }
}
