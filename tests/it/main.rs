//! Integration tests, one binary so they link once. Everything runs over real TLS
//! on loopback with certificates minted at run time.

mod util;

/// Rotation by every kind of writer, keep-last-good, status, resumption, ALPN, policy.
mod reload;
/// Every key format and algorithm the crate promises, passphrases, PKCS#12.
mod formats;
/// Mutual TLS both ways: reloaded CA bundles and the reloading connector.
mod mtls;
/// The `openssl-reload` binary, driven with curl and openssl s_client.
mod cli;
/// One table-driven test of every fault a writer or an operator can cause.
mod faults;
/// Rotation under concurrent load; reload cycles and resource bounds.
mod stress;
/// Secrets never reach logs or Debug output.
mod secrets;
