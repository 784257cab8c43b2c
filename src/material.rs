//! Reading and parsing certificates, keys, PKCS#12 bundles and CA bundles, and
//! validating them before anything is published.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::error::ErrorStack;
use openssl::hash::{Hasher, MessageDigest};
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::ssl::SslContextBuilder;
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509NameRef, X509Ref, X509StoreContext, X509};
use zeroize::Zeroizing;

use crate::Error;

/// The default cap on the size of any file the crate reads: 1 MiB.
///
/// Certificate chains and keys are a few kilobytes; the cap keeps a wrong path
/// (a log file, `/dev/zero`, a FIFO that never ends) from exhausting memory.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 1024 * 1024;

/// Where the passphrase of an encrypted private key or PKCS#12 bundle comes from.
///
/// The passphrase is fetched again at every load, so a rotated key encrypted under
/// a new passphrase (from a rotated passphrase file) is picked up too. A passphrase
/// file is watched like the certificate files.
///
/// `Debug` never shows passphrase bytes: it prints the source (file path, variable
/// name) or `<redacted>`. Bytes held in memory are zeroed when dropped.
///
/// ```
/// use openssl_reload::Passphrase;
/// let p = Passphrase::from_bytes("s3cret");
/// assert_eq!(format!("{p:?}"), "Passphrase(<redacted>)");
/// ```
#[derive(Clone, Default)]
pub struct Passphrase(Source);

type PassphraseCallback = dyn Fn() -> Result<Vec<u8>, String> + Send + Sync;

#[derive(Clone, Default)]
enum Source {
    #[default]
    None,
    Bytes(Arc<Zeroizing<Vec<u8>>>),
    File(PathBuf),
    Env(OsString),
    Callback(Arc<PassphraseCallback>),
}

impl Passphrase {
    /// No passphrase: an encrypted key is an error ([`Error::PassphraseRequired`]).
    pub fn none() -> Self {
        Self(Source::None)
    }

    /// A passphrase held in memory.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self(Source::Bytes(Arc::new(Zeroizing::new(bytes.into()))))
    }

    /// A passphrase read from a file at every load; one trailing line ending
    /// (`\n`, `\r\n` or `\r`) is removed. The file is watched for changes like the certificate files.
    pub fn from_file(path: impl Into<PathBuf>) -> Self {
        Self(Source::File(path.into()))
    }

    /// A passphrase read from an environment variable at every load.
    pub fn from_env(var: impl Into<OsString>) -> Self {
        Self(Source::Env(var.into()))
    }

    /// A passphrase produced by the caller at every load (from a secrets manager,
    /// say). The callback runs on the poller thread, never on the handshake path.
    /// Its error message is reported in [`Error::Passphrase`], so it must not
    /// contain the secret.
    pub fn from_callback<F>(callback: F) -> Self
    where
        F: Fn() -> Result<Vec<u8>, String> + Send + Sync + 'static,
    {
        Self(Source::Callback(Arc::new(callback)))
    }

    /// The file to watch, if the passphrase comes from one.
    pub(crate) fn path(&self) -> Option<&Path> {
        match &self.0 {
            Source::File(path) => Some(path),
            _ => None,
        }
    }

    fn resolve(&self, limit: u64) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
        match &self.0 {
            Source::None => Ok(None),
            Source::Bytes(bytes) => Ok(Some(Zeroizing::new(bytes.to_vec()))),
            Source::File(path) => {
                let mut bytes = Zeroizing::new(read_file(path, limit)?);
                for end in [&b"\n"[..], b"\r"] {
                    if bytes.ends_with(end) {
                        bytes.pop();
                    }
                }
                Ok(Some(bytes))
            }
            Source::Env(var) => match std::env::var_os(var) {
                Some(value) => Ok(Some(Zeroizing::new(value.into_encoded_bytes()))),
                None => Err(Error::Passphrase {
                    origin: format!("environment variable {}", var.to_string_lossy()),
                    reason: "it is not set".to_owned(),
                }),
            },
            Source::Callback(callback) => {
                callback()
                    .map(Zeroizing::new)
                    .map(Some)
                    .map_err(|reason| Error::Passphrase {
                        origin: "the passphrase callback".to_owned(),
                        reason,
                    })
            }
        }
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::None => f.write_str("Passphrase(None)"),
            Source::Bytes(_) => f.write_str("Passphrase(<redacted>)"),
            Source::File(path) => write!(f, "Passphrase(File({path:?}))"),
            Source::Env(var) => write!(f, "Passphrase(Env({var:?}))"),
            Source::Callback(_) => f.write_str("Passphrase(Callback)"),
        }
    }
}

/// What to do with a certificate that is outside its validity period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValidityPolicy {
    /// Refuse an expired or not-yet-valid certificate: at start-up this is an error,
    /// on reload the previous certificate stays in service. The default.
    #[default]
    Enforce,
    /// Accept it and log a warning.
    Warn,
}

/// The files of one identity: certificate chain and key, or a PKCS#12 bundle.
#[derive(Clone, Debug)]
pub(crate) enum IdentityFiles {
    Pair { cert: PathBuf, key: PathBuf },
    Pkcs12(PathBuf),
}

impl IdentityFiles {
    fn cert_path(&self) -> &Path {
        match self {
            Self::Pair { cert, .. } => cert,
            Self::Pkcs12(path) => path,
        }
    }
}

/// Everything that says where material comes from and how it is checked.
#[derive(Clone, Debug)]
pub(crate) struct Sources {
    pub(crate) identity: Option<IdentityFiles>,
    pub(crate) ca: Option<PathBuf>,
    pub(crate) passphrase: Passphrase,
    pub(crate) max_file_size: u64,
    pub(crate) validity: ValidityPolicy,
    /// Check that the identity chains to `ca` before publishing it.
    pub(crate) chain_to_ca: bool,
}

impl Sources {
    pub(crate) fn new() -> Self {
        Self {
            identity: None,
            ca: None,
            passphrase: Passphrase::none(),
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            validity: ValidityPolicy::Enforce,
            chain_to_ca: false,
        }
    }

    /// The files the poller watches.
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
            None => {}
        }
        paths.extend(self.ca.clone());
        paths.extend(self.passphrase.path().map(Path::to_owned));
        paths
    }

    /// Reads every file (but parses nothing) and hashes the bytes, so that a rewrite
    /// with identical content can be recognised before any key is decrypted.
    pub(crate) fn read(&self, warned: &mut HashSet<PathBuf>) -> Result<RawMaterial, Error> {
        let limit = self.max_file_size;
        let mut hasher = Hasher::new(MessageDigest::sha256())?;
        let mut feed = |bytes: &[u8]| -> Result<(), ErrorStack> {
            hasher.update(&(bytes.len() as u64).to_be_bytes())?;
            hasher.update(bytes)
        };
        let identity = match &self.identity {
            None => None,
            Some(IdentityFiles::Pair { cert, key }) => {
                let cert = read_file(cert, limit)?;
                let key = Zeroizing::new(read_key_file(key, limit, warned)?);
                feed(&cert)?;
                feed(&key)?;
                Some(RawIdentity::Pair { cert, key })
            }
            Some(IdentityFiles::Pkcs12(path)) => {
                let bytes = Zeroizing::new(read_key_file(path, limit, warned)?);
                feed(&bytes)?;
                Some(RawIdentity::Pkcs12(bytes))
            }
        };
        let ca = match &self.ca {
            Some(path) => {
                let bytes = read_file(path, limit)?;
                feed(&bytes)?;
                Some(bytes)
            }
            None => None,
        };
        let digest = hasher.finish()?;
        let mut out = [0; 32];
        out.copy_from_slice(&digest);
        Ok(RawMaterial {
            identity,
            ca,
            digest: out,
        })
    }

    /// Parses and validates what [`read`](Self::read) returned.
    pub(crate) fn parse(&self, raw: RawMaterial) -> Result<Material, Error> {
        let ca = match (&self.ca, &raw.ca) {
            (Some(path), Some(bytes)) => Some(parse_certificates(path, bytes, "CA bundle")?),
            _ => None,
        };
        let identity = match (&self.identity, raw.identity) {
            (Some(files), Some(raw_identity)) => {
                let pass = self.passphrase.resolve(self.max_file_size)?;
                let pass = pass.as_deref().map(|p| &p[..]);
                let identity = match (files, raw_identity) {
                    (IdentityFiles::Pair { cert, key }, RawIdentity::Pair { cert: c, key: k }) => {
                        let mut certs = parse_certificates(cert, &c, "certificate chain")?;
                        check_chain_order(cert, &certs)?;
                        let leaf = certs.remove(0);
                        let pkey = parse_key(key, &k, pass)?;
                        Identity::new(cert, leaf, certs, pkey)?
                    }
                    (IdentityFiles::Pkcs12(path), RawIdentity::Pkcs12(bytes)) => {
                        parse_pkcs12(path, &bytes, pass)?
                    }
                    // read() produces the raw form that matches the files.
                    _ => return Err(ErrorStack::get().into()),
                };
                self.validate(files, &identity, ca.as_deref())?;
                Some(identity)
            }
            _ => None,
        };
        Ok(Material {
            identity,
            ca,
            digest: raw.digest,
        })
    }

    fn validate(
        &self,
        files: &IdentityFiles,
        identity: &Identity,
        ca: Option<&[X509]>,
    ) -> Result<(), Error> {
        let cert_path = files.cert_path();
        let public_key = identity
            .cert
            .public_key()
            .map_err(|e| Error::parse(cert_path, "certificate public key", e))?;
        if !public_key.public_eq(&identity.key) {
            let (cert, key) = match files {
                IdentityFiles::Pair { cert, key } => (cert.clone(), key.clone()),
                IdentityFiles::Pkcs12(path) => (path.clone(), path.clone()),
            };
            return Err(Error::KeyMismatch { cert, key });
        }
        let now = Asn1Time::days_from_now(0)?;
        let not_before = identity.cert.not_before();
        let not_after = identity.cert.not_after();
        let problem = if not_after < now {
            Some(Error::Expired {
                path: cert_path.to_owned(),
                not_after: not_after.to_string(),
            })
        } else if not_before > now {
            Some(Error::NotYetValid {
                path: cert_path.to_owned(),
                not_before: not_before.to_string(),
            })
        } else {
            None
        };
        if let Some(problem) = problem {
            match self.validity {
                ValidityPolicy::Enforce => return Err(problem),
                ValidityPolicy::Warn => {
                    tracing::warn!(error = %problem, "accepting certificate outside its validity period, as configured");
                }
            }
        }
        if let (Some(ca_certs), Some(ca_path), true) = (ca, &self.ca, self.chain_to_ca) {
            if let Err(reason) = verify_chain(ca_certs, &identity.cert, &identity.chain)? {
                return Err(Error::Untrusted {
                    path: cert_path.to_owned(),
                    ca: ca_path.clone(),
                    reason,
                });
            }
        }
        Ok(())
    }
}

/// Key bytes are zeroed when dropped: they may be an unencrypted private key.
enum RawIdentity {
    Pair {
        cert: Vec<u8>,
        key: Zeroizing<Vec<u8>>,
    },
    Pkcs12(Zeroizing<Vec<u8>>),
}

/// The bytes of every file, read but not yet parsed.
pub(crate) struct RawMaterial {
    identity: Option<RawIdentity>,
    ca: Option<Vec<u8>>,
    pub(crate) digest: [u8; 32],
}

/// Parsed and validated material, ready to be built into a context.
pub(crate) struct Material {
    pub(crate) identity: Option<Identity>,
    pub(crate) ca: Option<Vec<X509>>,
    pub(crate) digest: [u8; 32],
}

impl Material {
    /// No identity and no CA: what a reloader serves while it waits for files.
    pub(crate) fn empty() -> Self {
        Self {
            identity: None,
            ca: None,
            // No SHA-256 of real files is all zeroes, so the first good read publishes.
            digest: [0; 32],
        }
    }

    /// A trust store holding the CA bundle.
    pub(crate) fn ca_store(&self) -> Result<Option<X509Store>, ErrorStack> {
        self.ca.as_deref().map(store_of).transpose()
    }
}

/// A leaf certificate, its chain and its private key.
pub(crate) struct Identity {
    pub(crate) cert: X509,
    pub(crate) chain: Vec<X509>,
    pub(crate) key: PKey<Private>,
    pub(crate) info: CertificateInfo,
    /// The certificate (or PKCS#12) file, for errors found later.
    pub(crate) path: PathBuf,
}

impl Identity {
    fn new(path: &Path, cert: X509, chain: Vec<X509>, key: PKey<Private>) -> Result<Self, Error> {
        let info = CertificateInfo::of(&cert).map_err(|e| Error::parse(path, "certificate", e))?;
        Ok(Self {
            cert,
            chain,
            key,
            info,
            path: path.to_owned(),
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

/// What a certificate says about itself, for logs, status pages and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertificateInfo {
    /// The subject, e.g. `CN=example.com, O=Example`.
    pub subject: String,
    /// The issuer, in the same form.
    pub issuer: String,
    /// The serial number in upper-case hexadecimal.
    pub serial: String,
    /// Subject alternative names: DNS names, IP addresses, e-mail addresses and URIs.
    pub subject_alt_names: Vec<String>,
    /// notBefore as OpenSSL prints it (`Jan  1 00:00:00 2026 GMT`).
    pub not_before: String,
    /// notAfter as OpenSSL prints it.
    pub not_after: String,
    /// notBefore in seconds since the Unix epoch.
    pub not_before_unix: i64,
    /// notAfter in seconds since the Unix epoch.
    pub not_after_unix: i64,
    /// SHA-256 fingerprint of the DER certificate, upper-case hex pairs joined by `:`.
    pub sha256: String,
}

impl CertificateInfo {
    /// Describes `cert`.
    ///
    /// # Errors
    ///
    /// Fails only if OpenSSL cannot digest or print the certificate.
    pub fn of(cert: &X509Ref) -> Result<Self, ErrorStack> {
        let sha256 = cert
            .digest(MessageDigest::sha256())?
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let subject_alt_names = cert
            .subject_alt_names()
            .map(|names| {
                names
                    .iter()
                    .filter_map(|name| {
                        if let Some(dns) = name.dnsname() {
                            Some(dns.to_owned())
                        } else if let Some(ip) = name.ipaddress() {
                            ip_to_string(ip)
                        } else if let Some(email) = name.email() {
                            Some(email.to_owned())
                        } else {
                            name.uri().map(str::to_owned)
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            subject: name_to_string(cert.subject_name()),
            issuer: name_to_string(cert.issuer_name()),
            serial: cert.serial_number().to_bn()?.to_hex_str()?.to_string(),
            subject_alt_names,
            not_before: cert.not_before().to_string(),
            not_after: cert.not_after().to_string(),
            not_before_unix: unix_seconds(cert.not_before())?,
            not_after_unix: unix_seconds(cert.not_after())?,
            sha256,
        })
    }
}

fn ip_to_string(bytes: &[u8]) -> Option<String> {
    let ip = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
        _ => return None,
    };
    Some(ip.to_string())
}

fn name_to_string(name: &X509NameRef) -> String {
    name.entries()
        .map(|entry| {
            let key = entry.object().nid().short_name().unwrap_or("?");
            let value = entry.data().to_string().unwrap_or_else(|_| "?".to_owned());
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn unix_seconds(time: &Asn1TimeRef) -> Result<i64, ErrorStack> {
    let diff = Asn1Time::from_unix(0)?.diff(time)?;
    Ok(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}

/// Reads a whole file, refusing more than `limit` bytes.
///
/// The file is opened with `O_NONBLOCK` so that a FIFO without a writer reads as
/// empty instead of blocking the poller forever, and reading stops at the cap, so
/// `/dev/zero` costs at most `limit` bytes. Paths are `Path`s, never `&str`: a
/// non-UTF-8 name works (the openssl crate's `*_file` setters panic on one).
pub(crate) fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, Error> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    read_open(path, file, limit)
}

fn read_open(path: &Path, file: File, limit: u64) -> Result<Vec<u8>, Error> {
    let too_large = || Error::TooLarge {
        path: path.to_owned(),
        limit,
    };
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if meta.is_file() && meta.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(if meta.is_file() {
        meta.len() as usize
    } else {
        0
    });
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Reads a private key or PKCS#12 file, warning once per path when users other
/// than the server's own can read it (see [`readable_by_others`]).
pub(crate) fn read_key_file(
    path: &Path,
    limit: u64,
    warned: &mut HashSet<PathBuf>,
) -> Result<Vec<u8>, Error> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    if let Ok(meta) = file.metadata() {
        if meta.is_file() && readable_by_others(&meta) && warned.insert(path.to_owned()) {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{:o}", meta.permissions().mode() & 0o7777),
                gid = meta.gid(),
                "file with secret key material is readable by group or others beyond the server's own; \
                 make it chmod 600, or 640 with a group the server runs in"
            );
        }
    }
    read_open(path, file, limit)
}

/// Whether a key file can be read by anyone (o+r), or by a group the process is not
/// in (g+r). Group read for the server's own group is the packaged layout
/// (`root:openssl-reload 0640`) and what a Kubernetes `fsGroup` gives, so it is not
/// warned about.
fn readable_by_others(meta: &Metadata) -> bool {
    let mode = meta.permissions().mode();
    mode & 0o004 != 0 || (mode & 0o040 != 0 && !process_groups().contains(&meta.gid()))
}

/// The process's real, effective and supplementary group ids, from
/// `/proc/self/status` (no FFI needed); empty where that cannot be read, which
/// makes every group-readable key warn.
fn process_groups() -> &'static [u32] {
    static GROUPS: OnceLock<Vec<u32>> = OnceLock::new();
    GROUPS.get_or_init(|| {
        let mut status = String::new();
        let _ = File::open("/proc/self/status").and_then(|mut f| f.read_to_string(&mut status));
        status
            .lines()
            .filter_map(|line| {
                line.strip_prefix("Gid:")
                    .or_else(|| line.strip_prefix("Groups:"))
            })
            .flat_map(str::split_whitespace)
            .filter_map(|gid| gid.parse().ok())
            .collect()
    })
}

fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Parses one or more certificates: PEM (any number, leaf first) or a single DER.
pub(crate) fn parse_certificates(
    path: &Path,
    bytes: &[u8],
    what: &'static str,
) -> Result<Vec<X509>, Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::NoCertificate {
            path: path.to_owned(),
        });
    }
    let certs = if is_pem(bytes) {
        X509::stack_from_pem(bytes).map_err(|e| Error::parse(path, what, e))?
    } else {
        vec![X509::from_der(bytes).map_err(|e| Error::parse(path, what, e))?]
    };
    if certs.is_empty() {
        return Err(Error::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Parses a private key in PEM (PKCS#1, SEC1, PKCS#8, encrypted PKCS#8 or
/// traditional encrypted) or DER (PKCS#8, encrypted PKCS#8, PKCS#1, SEC1).
///
/// Only the callback variants of OpenSSL's readers are used: the plain ones fall
/// back to OpenSSL's terminal prompt when they meet an encrypted key.
pub(crate) fn parse_key(
    path: &Path,
    bytes: &[u8],
    passphrase: Option<&[u8]>,
) -> Result<PKey<Private>, Error> {
    let mut asked = false;
    let callback = |buf: &mut [u8]| -> Result<usize, ErrorStack> {
        asked = true;
        match passphrase {
            Some(pass) if pass.len() <= buf.len() => {
                buf[..pass.len()].copy_from_slice(pass);
                Ok(pass.len())
            }
            // No passphrase, or one longer than OpenSSL's buffer: give up on
            // this key rather than hand OpenSSL a truncated secret.
            _ => Err(ErrorStack::get()),
        }
    };
    let result = if is_pem(bytes) {
        PKey::private_key_from_pem_callback(bytes, callback)
    } else {
        // An encrypted PKCS#8 DER first: the reader only calls the callback for
        // an encrypted structure, so plain DER falls through to the second reader.
        match PKey::private_key_from_pkcs8_callback(bytes, callback) {
            Ok(key) => Ok(key),
            Err(e) if asked => Err(e),
            Err(_) => PKey::private_key_from_der(bytes),
        }
    };
    result.map_err(|source| match (asked, passphrase) {
        (true, None) => Error::PassphraseRequired {
            path: path.to_owned(),
        },
        (true, Some(_)) => Error::unsupported_or(path, source, |source| Error::Decrypt {
            path: path.to_owned(),
            source,
        }),
        (false, _) => Error::unsupported_or(path, source, |source| {
            Error::parse(path, "private key", source)
        }),
    })
}

/// Parses a PKCS#12 bundle; a missing passphrase is tried as the empty one.
fn parse_pkcs12(path: &Path, bytes: &[u8], passphrase: Option<&[u8]>) -> Result<Identity, Error> {
    let pkcs12 = Pkcs12::from_der(bytes).map_err(|e| Error::parse(path, "PKCS#12 bundle", e))?;
    let pass = match passphrase {
        None => "",
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(s) if !s.contains('\0') => s,
            _ => {
                return Err(Error::Passphrase {
                    origin: format!("the passphrase for {}", path.display()),
                    reason: "a PKCS#12 passphrase must be UTF-8 without NUL bytes".to_owned(),
                })
            }
        },
    };
    let parsed = pkcs12.parse2(pass).map_err(|source| {
        Error::unsupported_or(path, source, |source| {
            // Without a passphrase the empty one was tried: a MAC that does not
            // verify means the bundle has a real password.
            let mac_failed = source
                .errors()
                .iter()
                .any(|e| e.reason() == Some("mac verify failure"));
            match passphrase {
                None if mac_failed => Error::PassphraseRequired {
                    path: path.to_owned(),
                },
                None => Error::parse(path, "PKCS#12 bundle", source),
                Some(_) => Error::Decrypt {
                    path: path.to_owned(),
                    source,
                },
            }
        })
    })?;
    let missing = |missing| Error::IncompletePkcs12 {
        path: path.to_owned(),
        missing,
    };
    let cert = parsed.cert.ok_or_else(|| missing("certificate"))?;
    let key = parsed.pkey.ok_or_else(|| missing("private key"))?;
    let chain = parsed
        .ca
        .map(|s| s.into_iter().collect())
        .unwrap_or_default();
    Identity::new(path, cert, chain, key)
}

/// Each certificate of a chain file must be signed by the one after it: servers
/// send the chain as it is, and a client cannot verify an out-of-order or torn one.
fn check_chain_order(path: &Path, certs: &[X509]) -> Result<(), Error> {
    for (position, pair) in certs.windows(2).enumerate() {
        let (cert, issuer) = (&pair[0], &pair[1]);
        let broken = |reason: String| Error::BrokenChain {
            path: path.to_owned(),
            position,
            reason,
        };
        let names = issuer.issued(cert);
        if names != openssl::x509::X509VerifyResult::OK {
            return Err(broken(names.error_string().to_owned()));
        }
        let key = issuer
            .public_key()
            .map_err(|e| Error::parse(path, "certificate public key", e))?;
        if !cert.verify(&key).unwrap_or(false) {
            return Err(broken("signature does not verify".to_owned()));
        }
    }
    Ok(())
}

pub(crate) fn store_of(certs: &[X509]) -> Result<X509Store, ErrorStack> {
    let mut builder = X509StoreBuilder::new()?;
    for cert in certs {
        builder.add_cert(cert.clone())?;
    }
    Ok(builder.build())
}

/// Verifies `leaf` + `chain` against `ca`, ignoring validity dates (those are the
/// [`ValidityPolicy`]'s business). The inner `Err` is OpenSSL's reason.
fn verify_chain(
    ca: &[X509],
    leaf: &X509,
    chain: &[X509],
) -> Result<Result<(), String>, ErrorStack> {
    let mut builder = X509StoreBuilder::new()?;
    for cert in ca {
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
}
