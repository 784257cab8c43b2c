//! FIPS mode on OpenSSL 3: the `fips` provider, the `base` provider for encoders and
//! decoders, and `fips=yes` as the default property query, so that every algorithm
//! fetched afterwards (digests, ciphers, key decoders, TLS) is the FIPS provider's.
//!
//! `openssl::fips` is OpenSSL 1.x's `FIPS_mode_set` and does nothing useful on 3.x;
//! this module is what replaces it.
//!
//! `enable` needs the `fips` cargo feature; [`is_enabled`] is always there.
//!
//! ```no_run
//! # #[cfg(feature = "fips")] {
//! // At start-up, before any certificate is loaded:
//! openssl_reload::fips::enable()?;
//! assert!(openssl_reload::fips::is_enabled());
//! # }
//! # Ok::<(), openssl_reload::Error>(())
//! ```

#[cfg(feature = "fips")]
use openssl::{
    error::ErrorStack,
    hash::{hash, MessageDigest},
    provider::Provider,
};

/// The providers, loaded once and kept for the life of the process: unloading the
/// FIPS provider while contexts built on it are alive would leave them dangling.
#[cfg(feature = "fips")]
static PROVIDERS: std::sync::OnceLock<(Provider, Provider)> = std::sync::OnceLock::new();

/// Switches the process to FIPS mode, or fails closed.
///
/// Loads the `fips` provider (which runs its self-tests on load) and the `base`
/// provider into the default library context, enables `fips=yes` default
/// properties (`EVP_default_properties_enable_fips`), and checks the result by
/// reading it back and fetching SHA-256. Calling it again is cheap and checks again.
///
/// The FIPS provider is found through OpenSSL's configuration: `OPENSSL_CONF`
/// naming a file that includes the `fipsmodule.cnf` written by `openssl
/// fipsinstall`, and `OPENSSL_MODULES` (or a `module =` line) locating `fips.so`.
///
/// # Errors
///
/// [`Error::Fips`](crate::Error::Fips), naming the step that failed and OpenSSL's reason; the process
/// must then not serve (fail closed).
#[cfg(feature = "fips")]
#[cfg_attr(docsrs, doc(cfg(feature = "fips")))]
pub fn enable() -> Result<(), crate::Error> {
    let step = |step: &'static str| {
        move |source: ErrorStack| crate::Error::Fips {
            step,
            config: describe_config(),
            source,
        }
    };
    if PROVIDERS.get().is_none() {
        let fips = Provider::load(None, "fips").map_err(step("load the fips provider"))?;
        let base = Provider::load(None, "base").map_err(step("load the base provider"))?;
        // A racing caller may have stored its pair first; both are loaded, so
        // dropping ours only decrements OpenSSL's reference counts.
        let _ = PROVIDERS.set((fips, base));
    }
    crate::ffi::provider::enable_fips_properties()
        .map_err(step("enable fips=yes default properties"))?;
    if !is_enabled() {
        return Err(step("confirm fips=yes default properties")(
            ErrorStack::get(),
        ));
    }
    hash(MessageDigest::sha256(), b"").map_err(step("fetch SHA-256 from the fips provider"))?;
    Ok(())
}

/// Whether the default library context fetches with `fips=yes`
/// (`EVP_default_properties_is_fips_enabled`), whoever enabled it: `enable` or an
/// OpenSSL configuration file with `default_properties = fips=yes`.
pub fn is_enabled() -> bool {
    crate::ffi::provider::fips_properties_enabled()
}

#[cfg(feature = "fips")]
/// Where OpenSSL takes its configuration from, for error messages: a missing
/// `OPENSSL_CONF` file is silently ignored by OpenSSL, so say whether it exists.
fn describe_config() -> String {
    let conf = match std::env::var_os("OPENSSL_CONF") {
        None => "OPENSSL_CONF is unset (OpenSSL's default openssl.cnf applies)".to_owned(),
        Some(path) => {
            let exists = if std::path::Path::new(&path).is_file() {
                "exists"
            } else {
                "DOES NOT EXIST"
            };
            format!("OPENSSL_CONF={} ({exists})", path.to_string_lossy())
        }
    };
    match std::env::var_os("OPENSSL_MODULES") {
        Some(dir) => format!("{conf}, OPENSSL_MODULES={}", dir.to_string_lossy()),
        None => conf,
    }
}
