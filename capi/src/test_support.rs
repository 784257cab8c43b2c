//! Helpers of the unit tests: certificate files in a temporary directory, and
//! the C functions' outputs read back as Rust values.

use std::ffi::{c_char, CString};
use std::path::{Path, PathBuf};
use std::process::Command;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::{X509Name, X509};

use crate::error::openssl_reload_last_error;
use crate::error::openssl_reload_result::{self, *};

/// A temporary directory holding a self-signed certificate `cert.pem` (CN
/// `name`, which also makes it a one-certificate CA bundle) and `key.pem`.
pub(crate) struct Files(pub(crate) PathBuf);

impl Files {
    pub(crate) fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("openssl-reload-capi-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let mut subject = X509Name::builder().unwrap();
        subject.append_entry_by_text("CN", name).unwrap();
        let subject = subject.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let serial = BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap();
        b.set_serial_number(&serial).unwrap();
        b.set_subject_name(&subject).unwrap();
        b.set_issuer_name(&subject).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        std::fs::write(dir.join("cert.pem"), b.build().to_pem().unwrap()).unwrap();
        std::fs::write(dir.join("key.pem"), key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        Self(dir)
    }

    /// Writes `crl.pem`, an empty CRL that the certificate (as its CA)
    /// signs, with the `openssl ca` command.
    pub(crate) fn write_crl(&self) {
        let d = &self.0;
        std::fs::write(d.join("index.txt"), b"").unwrap();
        std::fs::write(d.join("crlnumber"), b"01\n").unwrap();
        let config = format!(
            "[ca]\ndefault_ca = local\n[local]\ndatabase = {0}/index.txt\n\
             crlnumber = {0}/crlnumber\ncertificate = {0}/cert.pem\n\
             private_key = {0}/key.pem\ndefault_md = sha256\ndefault_crl_days = 1\n",
            d.display()
        );
        std::fs::write(d.join("ca.cnf"), config).unwrap();
        // openssl's own error, if any, goes to the test's stderr.
        let status = Command::new("openssl")
            .args(["ca", "-gencrl", "-batch", "-config"])
            .arg(d.join("ca.cnf"))
            .arg("-out")
            .arg(d.join("crl.pem"))
            .status()
            .unwrap();
        assert!(status.success(), "openssl ca -gencrl: {status}");
    }

    pub(crate) fn path(&self, name: &str) -> CString {
        path_c(&self.0.join(name))
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn path_c(path: &Path) -> CString {
    CString::new(path.as_os_str().as_encoded_bytes()).unwrap()
}

pub(crate) fn last_error() -> String {
    let mut buf = vec![0u8; 1024];
    let mut len = 0;
    // SAFETY: the buffer has `buf.len()` bytes and `len` is writable.
    let rc = unsafe { openssl_reload_last_error(buf.as_mut_ptr().cast(), buf.len(), &mut len) };
    assert_eq!(rc, OPENSSL_RELOAD_OK);
    buf.truncate(len);
    String::from_utf8(buf).unwrap()
}

/// Asserts that a setter failed with an invalid parameter, and returns the
/// error text.
pub(crate) fn refused(rc: openssl_reload_result) -> String {
    assert_eq!(rc, OPENSSL_RELOAD_INVALID_PARAMETER, "{}", last_error());
    last_error()
}

pub(crate) fn ok(rc: openssl_reload_result) {
    assert_eq!(rc, OPENSSL_RELOAD_OK, "{}", last_error());
}

pub(crate) fn json(
    f: impl FnOnce(*mut c_char, usize, *mut usize) -> openssl_reload_result,
) -> String {
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0;
    ok(f(buf.as_mut_ptr().cast(), buf.len(), &mut len));
    buf.truncate(len);
    String::from_utf8(buf).unwrap()
}
