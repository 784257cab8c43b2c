//! Unit tests of the builders through their extern "C" functions: a refused
//! setter leaves the builder as it was.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::ptr;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::{X509Name, X509};

use super::*;
use crate::{
    openssl_reload_client, openssl_reload_client_builder_build, openssl_reload_client_free,
    openssl_reload_client_status_json, openssl_reload_last_error, openssl_reload_server,
    openssl_reload_server_builder_build, openssl_reload_server_free,
    openssl_reload_server_status_json,
};

/// A temporary directory holding a self-signed certificate `cert.pem` (CN
/// `name`, which also makes it a one-certificate CA bundle) and `key.pem`.
struct Files(PathBuf);

impl Files {
    fn new(name: &str) -> Self {
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

    fn path(&self, name: &str) -> CString {
        path_c(&self.0.join(name))
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn path_c(path: &Path) -> CString {
    CString::new(path.as_os_str().as_encoded_bytes()).unwrap()
}

fn last_error() -> String {
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
fn refused(rc: openssl_reload_result) -> String {
    assert_eq!(rc, OPENSSL_RELOAD_INVALID_PARAMETER, "{}", last_error());
    last_error()
}

fn ok(rc: openssl_reload_result) {
    assert_eq!(rc, OPENSSL_RELOAD_OK, "{}", last_error());
}

fn json(f: impl FnOnce(*mut c_char, usize, *mut usize) -> openssl_reload_result) -> String {
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0;
    ok(f(buf.as_mut_ptr().cast(), buf.len(), &mut len));
    buf.truncate(len);
    String::from_utf8(buf).unwrap()
}

#[test]
fn a_failed_server_setter_leaves_the_builder_as_it_was() {
    let files = Files::new("capi-server");
    let (cert, key) = (files.path("cert.pem"), files.path("key.pem"));
    let mut builder = ptr::null_mut();
    // SAFETY: every pointer passed below is live for its call: the builder
    // from `_new` until `_build` consumes it, the NUL-terminated paths, and
    // the handles until they are freed.
    unsafe {
        ok(openssl_reload_server_builder_new(&mut builder));
        ok(openssl_reload_server_builder_set_identity(
            builder,
            cert.as_ptr(),
            key.as_ptr(),
        ));
        let error = refused(openssl_reload_server_builder_set_client_ca(
            builder,
            cert.as_ptr(),
            7,
        ));
        assert_eq!(error, "auth: 7 is not a client authentication mode");
        let error = refused(openssl_reload_server_builder_set_crl(
            builder,
            cert.as_ptr(),
            7,
        ));
        assert_eq!(error, "check: 7 is not a CRL check");
        let error = refused(openssl_reload_server_builder_set_validity(builder, 7));
        assert_eq!(error, "policy: 7 is not a validity policy");
        let error = refused(openssl_reload_server_builder_set_poll_interval_ms(
            builder, 0,
        ));
        assert!(error.starts_with("ms: "), "{error}");
        assert_eq!(
            openssl_reload_server_builder_set_passphrase_env(builder, ptr::null()),
            OPENSSL_RELOAD_NULL_PARAMETER,
            "{}",
            last_error()
        );
        assert_eq!(last_error(), "name is NULL");
        assert_eq!(
            openssl_reload_server_builder_set_passphrase_callback(builder, None, ptr::null_mut()),
            OPENSSL_RELOAD_NULL_PARAMETER,
            "{}",
            last_error()
        );
        assert_eq!(last_error(), "callback is NULL");
        assert_eq!(
            openssl_reload_server_builder_set_ocsp_staple(builder, ptr::null()),
            OPENSSL_RELOAD_NULL_PARAMETER,
            "{}",
            last_error()
        );
        // The builder is still there, with the identity set before.
        ok(openssl_reload_server_builder_set_client_ca(
            builder,
            cert.as_ptr(),
            openssl_reload_client_auth::OPENSSL_RELOAD_CLIENT_AUTH_OPTIONAL as u32,
        ));
        let mut server: *mut openssl_reload_server = ptr::null_mut();
        ok(openssl_reload_server_builder_build(builder, &mut server));
        let status = json(|buf, len, out| openssl_reload_server_status_json(server, buf, len, out));
        openssl_reload_server_free(server);
        assert!(status.contains(r#""subject":"CN=capi-server""#), "{status}");
        assert!(status.contains(r#""ca_certificates":1"#), "{status}");
    }
}

#[test]
fn a_failed_client_setter_leaves_the_builder_as_it_was() {
    let files = Files::new("capi-client");
    let (cert, key) = (files.path("cert.pem"), files.path("key.pem"));
    let mut builder = ptr::null_mut();
    // SAFETY: as in the server's test: every pointer is live for its call.
    unsafe {
        ok(openssl_reload_client_builder_new(&mut builder));
        ok(openssl_reload_client_builder_set_identity(
            builder,
            cert.as_ptr(),
            key.as_ptr(),
        ));
        let error = refused(openssl_reload_client_builder_set_crl(
            builder,
            cert.as_ptr(),
            7,
        ));
        assert_eq!(error, "check: 7 is not a CRL check");
        let error = refused(openssl_reload_client_builder_set_validity(builder, 7));
        assert_eq!(error, "policy: 7 is not a validity policy");
        let error = refused(openssl_reload_client_builder_set_poll_interval_ms(
            builder, 0,
        ));
        assert!(error.starts_with("ms: "), "{error}");
        assert_eq!(
            openssl_reload_client_builder_set_ca(builder, ptr::null()),
            OPENSSL_RELOAD_NULL_PARAMETER,
            "{}",
            last_error()
        );
        assert_eq!(last_error(), "path is NULL");
        ok(openssl_reload_client_builder_set_ca(builder, cert.as_ptr()));
        let mut client: *mut openssl_reload_client = ptr::null_mut();
        ok(openssl_reload_client_builder_build(builder, &mut client));
        let status = json(|buf, len, out| openssl_reload_client_status_json(client, buf, len, out));
        openssl_reload_client_free(client);
        assert!(status.contains(r#""subject":"CN=capi-client""#), "{status}");
        assert!(status.contains(r#""ca_certificates":1"#), "{status}");
    }
}
