//! The C library's link settings, and what it refuses to be built against.

/// Keep equal to `OPENSSL_RELOAD_ABI_VERSION` in src/lib.rs.
const ABI: u32 = 0;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // A vendored OpenSSL linked into a host process that loads the system
    // libssl gives two OpenSSLs whose SSL_CTX are not interchangeable: every
    // SSL_CTX* the host passes would belong to the other one.
    if std::env::var_os("DEP_OPENSSL_VENDORED").is_some() {
        panic!(
            "openssl-reload-capi must link the system OpenSSL that the host process uses; \
             build it without the `vendored` feature (see build.md)"
        );
    }
    // The OpenSSL version the library is built against (hex, as
    // OPENSSL_VERSION_NUMBER), checked against the one in the process at run time.
    let version = std::env::var("DEP_OPENSSL_VERSION_NUMBER").unwrap_or_default();
    println!("cargo:rustc-env=OPENSSL_RELOAD_BUILT_OPENSSL={version}");
    // The SONAME carries the C ABI version (OPENSSL_RELOAD_ABI_VERSION in the
    // header), which moves only when the C interface breaks (docs/c-api.md).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libopenssl_reload.so.{ABI}");
}
