//! Loading the providers that serve keys in hardware, in the order their keys
//! need on OpenSSL 3.0, and starting a fresh instance of one that an outage
//! left unusable.

use std::ffi::CString;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use openssl::error::ErrorStack;
use openssl::provider::Provider;

use crate::ffi::provider::{
    add_provider_entry, fips_properties_enabled, module_entry, set_default_properties,
};
use crate::Error;

/// The providers this crate loaded, under one lock.
static LOADED: Mutex<Loaded> = Mutex::new(Loaded {
    providers: Vec::new(),
    made: 1,
    pending: None,
});

struct Loaded {
    /// By name, kept loaded for the life of the process (unloading one would
    /// free it under the keys it serves), except an instance that [`replace`]
    /// replaced.
    providers: Vec<(String, Provider)>,
    /// How many instances of a module there have been (`#2 tpm2` is the second).
    made: u32,
    /// A name [`replace`] registered that did not load yet, to be tried again.
    pending: Option<String>,
}

/// Loads the OpenSSL providers that serve hardware keys (`tpm2`, `pkcs11`),
/// then the default provider unless FIPS mode is on, and keeps them loaded for
/// the life of the process. Call it once, before any key is read and before
/// anything draws a random number.
///
/// The order matters on OpenSSL 3.0: a key's operations are fetched by
/// algorithm name from the first provider that has them, and a key of the
/// tpm2 provider handed to the default provider's ECDSA fails with "missing
/// private key" (openssl/openssl#20747). So the named providers come first,
/// and the default property query then sends digests, ciphers and random
/// numbers back to the default provider
/// (`?tpm2.digest=no,?tpm2.cipher=no,?tpm2.rand=no`): through a TPM they cost
/// 230 ms a handshake instead of 13. Key management, signatures and ECDH stay
/// the TPM's, which [`hardware_key_lock`](crate::hardware_key_lock)
/// serialises. In FIPS mode the query stays `fips=yes`. docs/hardware-keys.md
/// has the details.
///
/// # Errors
///
/// [`Error::OpenSsl`] when a provider cannot be loaded.
pub fn load_key_providers(names: &[&str]) -> Result<(), Error> {
    if names.is_empty() {
        return Ok(());
    }
    let fips = fips_properties_enabled();
    let defaults: &[&str] = if fips { &[] } else { &["default"] };
    for name in names.iter().chain(defaults) {
        let provider = Provider::load(None, name)
            .map_err(Error::openssl("load an OpenSSL provider for hardware keys"))?;
        tracing::info!(provider = name, "OpenSSL provider loaded");
        let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
        loaded.providers.push(((*name).to_owned(), provider));
    }
    if !fips {
        set_default_properties(c"?tpm2.digest=no,?tpm2.cipher=no,?tpm2.rand=no").map_err(
            Error::openssl("send digests, ciphers and random numbers to the default provider"),
        )?;
    }
    Ok(())
}

/// The name a provider was configured by: `tpm2` for the instance `#2 tpm2`
/// that [`replace`] made.
pub(crate) fn configured_name(instance: &str) -> &str {
    match instance
        .strip_prefix('#')
        .and_then(|rest| rest.split_once(' '))
    {
        Some((n, name)) if n.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => instance,
    }
}

/// Replaces the provider instance `instance`, one [`load_key_providers`]
/// loaded or an earlier replacement made, with a fresh instance of the same
/// module, and returns its name (`#2 tpm2`). When the fresh one cannot start
/// (tpm2-openssl's does not while the TPM is away), `instance` stays and the
/// next call tries the same name again.
///
/// tpm2-openssl 1.1 keeps one ESYS context per instance, and a command that
/// fails while the TPM is away leaves it failing every later one ("Esys called
/// in bad sequence"); only a new instance has a working one. Keys of the old
/// instance stop working: the caller opens them again through the new one.
///
/// On OpenSSL 3.0 a key's operations come from the first provider that has
/// them, in the order the providers are asked, which is by name once the
/// library has looked one up. So the new instance's name sorts before
/// `default` (`#` does), and the default provider is unloaded and loaded again
/// after it, so that its operations come second again (`ci/hsm-probe.c
/// store-reinstance` shows each step). In FIPS mode the default provider is
/// not ours and is left alone.
pub(crate) fn replace(instance: &str) -> Result<String, NotReplaced> {
    let mut guard = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
    let loaded = &mut *guard;
    let providers = &mut loaded.providers;
    let at = providers
        .iter()
        .position(|(name, _)| name == instance)
        .ok_or(NotReplaced::NotOurs)?;
    let configured = configured_name(instance);
    let name = match loaded.pending.clone() {
        Some(name) if configured_name(&name) == configured => name,
        _ => {
            let number = loaded.made + 1;
            let name =
                register(&providers[at].1, configured, number).map_err(NotReplaced::NoEntry)?;
            loaded.made = number;
            loaded.pending = Some(name.clone());
            name
        }
    };
    let default = providers.iter().position(|(name, _)| name == "default");
    if let Some(at) = default {
        drop(providers.remove(at));
    }
    // Only this start's reasons: earlier failures may have left theirs.
    let _ = ErrorStack::get();
    let result = match Provider::load(None, &name) {
        Ok(fresh) => {
            loaded.pending = None;
            // Unloaded: its operations are fetched no more.
            let at = providers.iter().position(|(name, _)| name == instance);
            drop(at.map(|at| providers.remove(at)));
            providers.push((name.clone(), fresh));
            Ok(name)
        }
        Err(e) => Err(NotReplaced::CannotStart(e)),
    };
    // Loaded again in every case: the default provider goes back, after.
    if default.is_some() {
        match Provider::load(None, "default") {
            Ok(provider) => providers.push(("default".to_owned(), provider)),
            Err(e) => tracing::error!(error = %e, "the default provider could not be loaded again"),
        }
    }
    result
}

/// Why [`replace`] left an instance in place.
#[derive(Debug)]
pub(crate) enum NotReplaced {
    /// It was loaded by a configuration file or the application, not by
    /// [`load_key_providers`]: not this crate's to unload.
    NotOurs,
    /// Its module's entry point cannot be found or registered.
    NoEntry(String),
    /// The fresh instance did not start: for a TPM, while it is still away.
    CannotStart(ErrorStack),
}

impl fmt::Display for NotReplaced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotOurs => f.write_str("it was not loaded by load_key_providers"),
            Self::NoEntry(why) => f.write_str(why),
            Self::CannotStart(e) => write!(f, "a fresh instance did not start: {e}"),
        }
    }
}

/// Registers the module `provider` was loaded from as the built-in provider
/// `#number configured`, and returns that name.
fn register(provider: &Provider, configured: &str, number: u32) -> Result<String, String> {
    let init = module_entry(provider)?;
    let name = format!("#{number} {configured}");
    let name_c = CString::new(name.clone()).map_err(|_| "a NUL byte in its name")?;
    add_provider_entry(&name_c, init).map_err(|e| e.to_string())?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use openssl::hash::{hash, MessageDigest};

    use super::{configured_name, load_key_providers, replace, NotReplaced};

    /// OpenSSL's legacy provider is a module like tpm2-openssl (ossl-modules/
    /// legacy.so) and needs no device. Ignored in `cargo test`: it unloads
    /// and loads the default provider, which other tests on other threads
    /// use; ci/valgrind.sh runs it alone, under memcheck.
    #[test]
    #[ignore = "changes the process's providers: run alone by ci/valgrind.sh"]
    fn a_module_provider_is_replaced_by_a_fresh_instance_that_serves() {
        load_key_providers(&["legacy"]).unwrap();
        let md4 = || MessageDigest::from_name("MD4").map(|md| hash(md, b"abc"));
        assert!(md4().is_some_and(|h| h.is_ok()));
        let fresh = replace("legacy").unwrap();
        assert_eq!(fresh, "#2 legacy");
        assert!(
            md4().is_some_and(|h| h.is_ok()),
            "MD4 from the fresh instance"
        );
        assert!(matches!(replace("legacy"), Err(NotReplaced::NotOurs)));
        assert_eq!(replace(&fresh).unwrap(), "#3 legacy");
        assert!(md4().is_some_and(|h| h.is_ok()));
        assert!(matches!(replace("default"), Err(NotReplaced::NoEntry(_))));
        assert!(hash(MessageDigest::sha256(), b"abc").is_ok());
    }

    #[test]
    fn an_instance_is_named_after_its_provider() {
        assert_eq!(configured_name("#2 tpm2"), "tpm2");
        assert_eq!(configured_name("#17 pkcs11"), "pkcs11");
        assert_eq!(configured_name("tpm2"), "tpm2");
        assert_eq!(configured_name("#two tpm2"), "#two tpm2");
        // Sorted before "default": OpenSSL 3.0 fetches in name order.
        assert!("#2 tpm2" < "default");
    }
}
