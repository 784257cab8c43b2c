//! Loading the providers that serve keys in hardware, in the order their keys
//! need on OpenSSL 3.0.

use openssl::provider::Provider;

use crate::ffi::provider::{fips_properties_enabled, set_default_properties};
use crate::Error;

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
        // Unloading it would free the provider under the keys it serves.
        std::mem::forget(provider);
    }
    if !fips {
        set_default_properties(c"?tpm2.digest=no,?tpm2.cipher=no,?tpm2.rand=no").map_err(
            Error::openssl("send digests, ciphers and random numbers to the default provider"),
        )?;
    }
    Ok(())
}
