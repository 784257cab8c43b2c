//! Placeholder: this package exists only so that `cargo fetch` downloads the
//! pinned `openssl-src` source for `ci/fips-provider.sh`. It is never built.
