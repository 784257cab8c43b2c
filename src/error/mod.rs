//! The crate's one error type.
//!
//! - Every variant about a file names the file; none carries passphrase or key
//!   bytes, so an `Error` is safe to log.
//! - Each cause is reported once: `Display` says what failed in this crate's
//!   terms, and the underlying error (OpenSSL's stack, the OS error) is the
//!   [`source`](std::error::Error::source), never repeated in `Display`. Print
//!   the whole chain with [`Error::report`] (or any error-chain printer).
//! - OpenSSL errors are mapped to the step that failed where they happen
//!   ([`Error::OpenSsl`] names the step); there is no blanket conversion.
//!
//! Here: the type. `display.rs`: its text; `report.rs`: the file it is about,
//! its causes and the one-line report; `problems.rs`: the cases behind a
//! variant.

mod display;
mod problems;
mod report;

pub use self::problems::{
    ChainProblem, CrlProblem, OcspProblem, PassphraseProblem, TicketKeyProblem,
};
pub(crate) use self::report::Report;
use crate::material::HardwareKeyProblem;

use std::io;
use std::path::PathBuf;

use openssl::error::ErrorStack;
use openssl::x509::X509VerifyResult;

/// Why certificate material could not be loaded, validated or installed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be opened or read (missing, permission denied, a directory, ...).
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// A file is larger than the configured size cap; nothing past the cap was read.
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The cap, in bytes.
        limit: u64,
    },
    /// OpenSSL could not parse a file (certificate, key, PKCS#12 bundle or CA bundle).
    Parse {
        /// The file.
        path: PathBuf,
        /// What was expected in it, e.g. "certificate chain".
        what: &'static str,
        /// OpenSSL's errors.
        source: ErrorStack,
    },
    /// A certificate or CA file holds no certificate at all (e.g. an empty file).
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A PKCS#12 bundle holds no certificate or no private key.
    IncompletePkcs12 {
        /// The file.
        path: PathBuf,
        /// The part that is missing: "certificate" or "private key".
        missing: &'static str,
    },
    /// The private key is encrypted but no passphrase was configured.
    ///
    /// The crate never falls back to OpenSSL's terminal prompt.
    PassphraseRequired {
        /// The key file.
        path: PathBuf,
    },
    /// The private key (or PKCS#12 bundle) could not be decrypted with the configured
    /// passphrase: the passphrase is wrong, or the file uses an algorithm that the
    /// loaded OpenSSL providers do not offer (e.g. RC2 without the legacy provider, or
    /// anything non-approved in FIPS mode).
    Decrypt {
        /// The key or PKCS#12 file.
        path: PathBuf,
        /// OpenSSL's errors.
        source: ErrorStack,
    },
    /// The file needs an algorithm that the loaded OpenSSL providers do not offer:
    /// in FIPS mode, MD5-based PEM encryption, 3DES/RC2 PKCS#8 or PKCS#12
    /// (PKCS12KDF); elsewhere, RC2 PKCS#12 without the legacy provider.
    Unsupported {
        /// The key or PKCS#12 file.
        path: PathBuf,
        /// The algorithm OpenSSL could not fetch, e.g. "MD5", when it says which.
        algorithm: Option<String>,
        /// OpenSSL's errors.
        source: ErrorStack,
    },
    /// The passphrase itself could not be obtained (unset variable, failing callback).
    Passphrase {
        /// Where it was to come from and why it could not be had.
        reason: PassphraseProblem,
    },
    /// The private key does not belong to the certificate.
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The certificate's notAfter is in the past.
    Expired {
        /// The certificate file.
        path: PathBuf,
        /// The notAfter time, as OpenSSL prints it.
        not_after: String,
    },
    /// The certificate's notBefore is in the future.
    NotYetValid {
        /// The certificate file.
        path: PathBuf,
        /// The notBefore time, as OpenSSL prints it.
        not_before: String,
    },
    /// The certificate does not chain to the configured CA bundle.
    Untrusted {
        /// The certificate file.
        path: PathBuf,
        /// The CA bundle.
        ca: PathBuf,
        /// OpenSSL's verification result, e.g. "unable to get local issuer certificate".
        reason: X509VerifyResult,
    },
    /// OpenSSL refused to use parsed material in a TLS context, e.g. a certificate
    /// signed with a digest below the security level ("ca md too weak").
    Rejected {
        /// The certificate (or, for a trust-only connector, CA bundle) file.
        path: PathBuf,
        /// OpenSSL's errors.
        source: ErrorStack,
    },
    /// A reload attempt panicked (in the policy or passphrase callback, or in a
    /// dependency); the panic was caught and the previous material kept.
    Panicked {
        /// The panic's message.
        message: String,
    },
    /// The poller thread could not be spawned.
    Thread {
        /// The operating system's reason.
        source: io::Error,
    },
    /// The acceptor's poller runs in another process, which this one was
    /// forked from: threads do not survive `fork(2)`, and the poller's lock may
    /// have been held at the fork, so it is not restarted here. Build with
    /// [`defer_polling`](crate::ReloadingAcceptorBuilder::defer_polling) and call
    /// [`start_polling`](crate::ReloadingAcceptor::start_polling) in each child.
    Forked {
        /// The process the poller runs in.
        pid: u32,
    },
    /// A private key named by a URI ([`KeyUri`](crate::KeyUri)) could not be
    /// opened, or stopped working (the token went away).
    HardwareKey {
        /// The URI, with any `pin-value` redacted.
        uri: String,
        /// What went wrong; OpenSSL's errors behind it are this error's
        /// [`source`](std::error::Error::source).
        reason: HardwareKeyProblem,
    },
    /// FIPS mode could not be enabled (see `fips::enable`, feature `fips`).
    Fips {
        /// What failed, e.g. "load the fips provider".
        step: &'static str,
        /// Where OpenSSL looked, e.g. `OPENSSL_CONF=/etc/ssl/fips.cnf (exists)`.
        config: String,
        /// OpenSSL's errors.
        source: ErrorStack,
    },
    /// A certificate in a chain file is not signed by the one after it: the chain
    /// is out of order, incomplete in the middle, or mixes two chains.
    BrokenChain {
        /// The certificate chain file.
        path: PathBuf,
        /// The position (0 = the leaf) of the certificate that the next one did not sign.
        position: usize,
        /// Why, e.g. OpenSSL's verdict "subject issuer mismatch".
        reason: ChainProblem,
    },
    /// A CRL file cannot be put in service: it holds no CRL, a CRL in it is a
    /// delta CRL (only complete CRLs are supported), is not signed by a CA of
    /// the bundle, is past its nextUpdate or not yet valid, or there is no CA
    /// bundle to check it against.
    Crl {
        /// The CRL file.
        path: PathBuf,
        /// What is wrong, e.g. CRL 2 (issuer CN=Other CA) is signed by no CA in
        /// the bundle.
        reason: CrlProblem,
    },
    /// A certificate that demands OCSP stapling (the must-staple TLS feature)
    /// has no valid staple: it is not published. (A staple that fails its
    /// checks for any other certificate is only reported; see
    /// [`OcspInfo`](crate::OcspInfo).)
    Ocsp {
        /// The staple file (given, or `<certificate file>.ocsp`).
        path: PathBuf,
        /// What is wrong with the staple, e.g. it expired; OpenSSL's errors
        /// behind it are this error's [`source`](std::error::Error::source).
        reason: OcspProblem,
    },
    /// A session ticket-key file is not one base64 key of 80 bytes per line.
    /// The message never shows any of the file's content.
    TicketKeys {
        /// The ticket-key file.
        path: PathBuf,
        /// The line at fault (from 1), if one is.
        line: Option<usize>,
        /// What is wrong with it.
        reason: TicketKeyProblem,
    },
    /// A new random session ticket key could not be made.
    TicketKeyGeneration(ErrorStack),
    /// An acceptor was built without [`identity`](crate::Builder::identity),
    /// [`identity_pkcs12`](crate::Builder::identity_pkcs12) or a site: a server
    /// needs a certificate.
    NoIdentity,
    /// A site directory holds no site (see
    /// [`site_dir`](crate::ReloadingAcceptorBuilder::site_dir) for the layouts).
    NoSites {
        /// The directory.
        dir: PathBuf,
    },
    /// [`attach`](crate::ReloadingAcceptor::attach) was called on a context that
    /// already has a reloader attached; the first attachment stays, since a
    /// handshake in flight may be using it.
    AlreadyAttached,
    /// A session OpenSSL resumed before the application's servername callback
    /// ran was not made for this name under the trust, site and context in
    /// service, so [`install`](crate::ReloadingAcceptor::install) refuses the
    /// handshake: a full handshake with the same client might not succeed.
    ResumedElsewhere {
        /// The SNI name the client sent (lossily decoded), empty without one.
        name: String,
    },
    /// The [default site](crate::ReloadingAcceptorBuilder::default_site) is not
    /// among the sites served.
    UnknownSite {
        /// The name asked for.
        name: String,
    },
    /// An OpenSSL call failed outside any one file: building a context, the
    /// user's policy closure, hashing, installing a callback.
    OpenSsl {
        /// What was being done, e.g. "build the server context".
        step: &'static str,
        /// OpenSSL's errors.
        source: ErrorStack,
    },
}
