use std::process::Command;

use openssl::hash::{hash, MessageDigest};
use openssl::md::Md;
use openssl::provider::Provider;
use openssl::symm::{Cipher, Crypter, Mode};
use openssl_reload::fips;

use crate::fixture::require_fips;

/// Marks the child process of [`md5_is_refused_by_the_fips_property`].
const CHILD_ENV: &str = "OPENSSL_RELOAD_FIPS_TEST_CHILD";

#[test]
fn enable_succeeds_and_is_reported() {
    require_fips!("enable_succeeds_and_is_reported");
    // The suite's set-up called enable() once already; a second call checks again.
    fips::enable().unwrap();
    fips::enable().unwrap();
    assert!(fips::is_enabled());
    assert_eq!(hash(MessageDigest::sha256(), b"abc").unwrap().len(), 32);
}

#[test]
fn md5_is_unavailable_in_process() {
    require_fips!("md5_is_unavailable_in_process");
    let error = hash(MessageDigest::md5(), b"abc").unwrap_err();
    assert!(
        error.to_string().contains("unsupported"),
        "MD5 failed for another reason than being unsupported: {error}"
    );
    assert!(Md::fetch(None, "MD5", None).is_err());
    // Nor any other non-approved algorithm the fips provider lacks.
    for name in ["MD4", "RIPEMD160", "SM3"] {
        assert!(Md::fetch(None, name, None).is_err(), "{name} is available");
    }
    let chacha = Crypter::new(
        Cipher::chacha20_poly1305(),
        Mode::Encrypt,
        &[0; 32],
        Some(&[0; 12]),
    );
    assert!(chacha.is_err(), "ChaCha20-Poly1305 is available");
    // The approved ones are there.
    let aes = Crypter::new(
        Cipher::aes_256_gcm(),
        Mode::Encrypt,
        &[0; 32],
        Some(&[0; 12]),
    );
    assert!(aes.is_ok(), "AES-256-GCM is not available");
}

/// MD5 is refused because every fetch defaults to `fips=yes`, not merely because no
/// provider with MD5 happens to be loaded: in a child process that also loads the
/// `default` provider, MD5 exists (a query that drops the `fips` property finds it)
/// and is still refused by default.
#[test]
fn md5_is_refused_by_the_fips_property() {
    require_fips!("md5_is_refused_by_the_fips_property");
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "enable::md5_child_with_the_default_provider",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the child test failed ({}):\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
#[ignore = "helper: md5_is_refused_by_the_fips_property runs it in a child process"]
fn md5_child_with_the_default_provider() {
    assert_eq!(
        std::env::var_os(CHILD_ENV).as_deref(),
        Some("1".as_ref()),
        "run only as the child of md5_is_refused_by_the_fips_property"
    );
    require_fips!("md5_child_with_the_default_provider");
    let _default = Provider::load(None, "default").unwrap();
    Md::fetch(None, "MD5", Some("-fips"))
        .expect("MD5 from the default provider, with the fips property dropped");
    assert!(fips::is_enabled());
    assert!(Md::fetch(None, "MD5", None).is_err());
    assert!(hash(MessageDigest::md5(), b"abc").is_err());
}
