//! A key's URI: `pkcs11:` (RFC 7512) or any URI an OpenSSL store loader
//! serves, with a `pin-value` that never prints.

use std::fmt;

use super::HardwareKeyProblem;
use crate::Error;

/// A private key named by a URI rather than a file: a PKCS#11 URI (RFC 7512,
/// `pkcs11:token=web;object=tls-key;type=private`) or any URI that the store
/// loader of a loaded OpenSSL provider serves (tpm2-openssl's
/// `handle:0x81000001`). `store:` in front forces the provider route
/// (`store:pkcs11:…` through pkcs11-provider).
///
/// The key is opened once per process, never per handshake; its certificate
/// file rotates around it and must keep matching it. A `module-path` query
/// attribute picks the PKCS#11 module for the libp11 engine. `Debug` and
/// `Display` never show a `pin-value`; prefer a PIN file
/// ([`Passphrase`](crate::Passphrase)), which is watched.
///
/// ```
/// use openssl_reload::KeyUri;
/// let uri = KeyUri::new("pkcs11:token=web;object=tls-key;type=private?pin-value=1234")?;
/// assert_eq!(uri.to_string(), "pkcs11:token=web;object=tls-key;type=private?pin-value=<redacted>");
/// assert!(KeyUri::new("/etc/tls/key.pem").is_err());
/// # Ok::<(), openssl_reload::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyUri(String);

impl KeyUri {
    /// A key URI: a scheme (`pkcs11:`, `handle:`, `store:…`) and the rest, with
    /// no control characters and no NUL.
    pub fn new(uri: impl Into<String>) -> Result<Self, Error> {
        let uri = uri.into();
        let malformed = |why: &'static str| Error::HardwareKey {
            uri: redact(&uri),
            reason: HardwareKeyProblem::Malformed(why),
        };
        let Some((scheme, rest)) = uri.split_once(':') else {
            return Err(malformed("no scheme (pkcs11:, store:, handle:, ...)"));
        };
        let scheme_ok = scheme.len() > 1
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c));
        if !scheme_ok {
            return Err(malformed("no scheme (pkcs11:, store:, handle:, ...)"));
        }
        if rest.is_empty() {
            return Err(malformed("nothing after the scheme"));
        }
        if uri.chars().any(char::is_control) {
            return Err(malformed("a control character or NUL"));
        }
        Ok(Self(uri))
    }

    /// Whether a `--key` argument or a key file's content names a key by URI
    /// rather than being a path or PEM: it starts with `pkcs11:` or `store:`.
    pub fn is_uri(text: &str) -> bool {
        text.starts_with("pkcs11:") || text.starts_with("store:")
    }

    /// A key argument (`--key`, a C caller's key, a key file's one line): a
    /// URI if it [is one](Self::is_uri), `None` if it is a path or PEM.
    ///
    /// # Errors
    ///
    /// [`Error::HardwareKey`] when it starts like a URI but is malformed.
    pub fn from_key_arg(text: &str) -> Result<Option<Self>, Error> {
        if Self::is_uri(text) {
            Self::new(text).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The URI as given, `pin-value` included: for OpenSSL only.
    pub(crate) fn secret_text(&self) -> &str {
        &self.0
    }

    /// The scheme of the key URI proper (after `store:`), and whether the
    /// provider route was asked for.
    pub(crate) fn scheme(&self) -> (&str, bool) {
        let (forced, uri) = match self.0.strip_prefix("store:") {
            Some(inner) => (true, inner),
            None => (false, self.0.as_str()),
        };
        (uri.split_once(':').map_or(uri, |(s, _)| s), forced)
    }

    /// The URI handed to the loader or engine: without `store:` and, for the
    /// engine, without the `module-path` attribute it consumes.
    pub(crate) fn for_loader(&self) -> (&str, Option<&str>) {
        let uri = self.0.strip_prefix("store:").unwrap_or(&self.0);
        (uri, query_attribute(uri, "module-path"))
    }
}

/// The value of a query attribute (`?a=b&c=d`) of a PKCS#11 URI.
fn query_attribute<'a>(uri: &'a str, name: &str) -> Option<&'a str> {
    let (_, query) = uri.split_once('?')?;
    query
        .split('&')
        .find_map(|attr| attr.strip_prefix(name)?.strip_prefix('='))
}

/// The URI without its `pin-value`.
pub(crate) fn redact(uri: &str) -> String {
    let Some((path, query)) = uri.split_once('?') else {
        return uri.to_owned();
    };
    let query: Vec<&str> = query
        .split('&')
        .map(|attr| {
            if attr.starts_with("pin-value=") {
                "pin-value=<redacted>"
            } else {
                attr
            }
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// The engine's URI: `module-path` removed (libp11 knows no such attribute).
pub(crate) fn without_module_path(uri: &str) -> String {
    let Some((path, query)) = uri.split_once('?') else {
        return uri.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|attr| !attr.starts_with("module-path="))
        .collect();
    if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

impl fmt::Display for KeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl fmt::Debug for KeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyUri({:?})", redact(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_value_never_prints_and_module_path_is_the_engines() {
        let uri = KeyUri::new("pkcs11:object=k;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=0000").unwrap();
        assert!(!format!("{uri} {uri:?}").contains("0000"));
        assert_eq!(uri.for_loader().1, Some("/usr/lib/softhsm/libsofthsm2.so"));
        assert_eq!(
            without_module_path(uri.secret_text()),
            "pkcs11:object=k;type=private?pin-value=0000"
        );
        assert_eq!(
            KeyUri::new("store:handle:0x81000001").unwrap().scheme(),
            ("handle", true)
        );
        for bad in ["", "pkcs11:", "/etc/key.pem", "c:key", "pkcs11:a\nb"] {
            assert!(KeyUri::new(bad).is_err(), "{bad:?}");
        }
    }
}
