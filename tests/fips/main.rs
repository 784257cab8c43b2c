//! The FIPS suite: the crate on OpenSSL 3's FIPS provider, for real.
//!
//! A test binary of its own, because OpenSSL reads `OPENSSL_CONF` once, when it
//! initialises, so the whole process must start with the FIPS configuration.
//! `ci/fips.sh` builds a FIPS provider (`ci/fips-provider.sh`), sets
//! `OPENSSL_CONF` to its configuration and runs
//! `cargo test --features fips --test fips`. Without a FIPS configuration each test
//! prints why and skips (see `fixture::fips` for when skipping is an error).
//!
//! Everything is minted in this process, in FIPS mode, with FIPS algorithms (ECDSA
//! P-256, SHA-256, PBKDF2, AES) by the test support shared with the `it` suite and
//! the benchmarks; material that needs non-approved algorithms is made by the
//! system `openssl` CLI outside the FIPS configuration.

#[path = "../support/mod.rs"]
mod support;

/// What only this suite needs: run-or-skip, encrypted keys, the `openssl` CLI.
mod fixture;

/// `fips::enable`, `fips::is_enabled`, and that non-approved algorithms are gone.
mod enable;
/// Encrypted PKCS#8 loads; MD5-keyed PEM and legacy PKCS#12 fail cleanly and keep
/// the old material in service.
mod keys;
/// Handshakes with FIPS cipher suites over loopback, and reloading.
mod tls;
