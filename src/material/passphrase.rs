//! Where a passphrase comes from, and getting it at load time.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zeroize::Zeroizing;

use super::read::read_file;
use crate::{Error, PassphraseProblem};

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

    pub(super) fn resolve(&self, limit: u64) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
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
                    reason: PassphraseProblem::EnvUnset {
                        var: var.to_string_lossy().into_owned(),
                    },
                }),
            },
            Source::Callback(callback) => {
                callback()
                    .map(Zeroizing::new)
                    .map(Some)
                    .map_err(|message| Error::Passphrase {
                        reason: PassphraseProblem::Callback { message },
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
