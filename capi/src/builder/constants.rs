//! The C enumerations the setters take, and their decoding.
//!
//! Enumerations arrive as integers: a value C passes that no variant has
//! would be undefined behaviour in a Rust enum parameter. Each is decoded with
//! `TryFrom<u32>`, and [`UnknownConstant::of`] names the argument in the error;
//! `From` turns it into the library's setting.

use reload::{ClientAuth, CrlCheck, ValidityPolicy};

use crate::error::Failure;

/// Whether a server requires client certificates once a client CA is set.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum openssl_reload_client_auth {
    /// A client must present a certificate that chains to the CA bundle.
    OPENSSL_RELOAD_CLIENT_AUTH_REQUIRED = 0,
    /// A client may present one; if it does, it must chain to the bundle.
    OPENSSL_RELOAD_CLIENT_AUTH_OPTIONAL = 1,
}

/// Which certificates a CRL is checked against.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum openssl_reload_crl_check {
    /// The peer's own certificate (the default).
    OPENSSL_RELOAD_CRL_CHECK_LEAF = 0,
    /// Every certificate of the peer's chain.
    OPENSSL_RELOAD_CRL_CHECK_CHAIN = 1,
}

/// What to do with a certificate outside its validity period.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum openssl_reload_validity {
    /// Refuse it (the default): the previous certificate stays in service.
    OPENSSL_RELOAD_VALIDITY_ENFORCE = 0,
    /// Serve it and log a warning.
    OPENSSL_RELOAD_VALIDITY_WARN = 1,
}

/// An integer that no constant of its enumeration has: what `TryFrom<u32>`
/// gives for one.
#[derive(Debug)]
pub struct UnknownConstant {
    value: u32,
    /// What the enumeration is, with its article: "a CRL check".
    kind: &'static str,
}

impl UnknownConstant {
    /// The failure of the setter whose `argument` it was, e.g. "auth: 7 is not
    /// a client authentication mode".
    pub(crate) fn of(self, argument: &str) -> Failure {
        let Self { value, kind } = self;
        Failure::invalid(format!("{argument}: {value} is not {kind}"))
    }
}

/// Decodes a C enumeration: `TryFrom<u32>` for it, and `From` it into the
/// library's setting. One list of constants serves both, and the `match` is
/// exhaustive, so a constant added to the enumeration must be mapped here.
macro_rules! decode {
    ($c:ident as $setting:ident, $kind:literal: $($constant:ident => $variant:ident),+ $(,)?) => {
        impl TryFrom<u32> for $c {
            type Error = UnknownConstant;

            fn try_from(value: u32) -> Result<Self, UnknownConstant> {
                [$(Self::$constant),+]
                    .into_iter()
                    .find(|c| *c as u32 == value)
                    .ok_or(UnknownConstant { value, kind: $kind })
            }
        }

        impl From<$c> for $setting {
            fn from(c: $c) -> Self {
                match c {
                    $($c::$constant => Self::$variant),+
                }
            }
        }
    };
}

decode!(openssl_reload_client_auth as ClientAuth, "a client authentication mode":
    OPENSSL_RELOAD_CLIENT_AUTH_REQUIRED => Required,
    OPENSSL_RELOAD_CLIENT_AUTH_OPTIONAL => Optional,
);

decode!(openssl_reload_crl_check as CrlCheck, "a CRL check":
    OPENSSL_RELOAD_CRL_CHECK_LEAF => Leaf,
    OPENSSL_RELOAD_CRL_CHECK_CHAIN => Chain,
);

decode!(openssl_reload_validity as ValidityPolicy, "a validity policy":
    OPENSSL_RELOAD_VALIDITY_ENFORCE => Enforce,
    OPENSSL_RELOAD_VALIDITY_WARN => Warn,
);
