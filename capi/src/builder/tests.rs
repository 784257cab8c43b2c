//! Unit tests of the builders through their extern "C" functions: a refused
//! setter leaves the builder as it was.

use std::ffi::CStr;
use std::ptr;

use super::*;
use crate::error::openssl_reload_result::*;
use crate::test_support::{json, last_error, ok, refused, Files};
use crate::{
    openssl_reload_client, openssl_reload_client_builder_build, openssl_reload_client_free,
    openssl_reload_client_status_json, openssl_reload_server, openssl_reload_server_builder_build,
    openssl_reload_server_free, openssl_reload_server_status_json,
};

#[test]
fn a_failed_server_setter_leaves_the_builder_as_it_was() {
    let files = Files::new("capi-server");
    let (cert, key) = (files.path("cert.pem"), files.path("key.pem"));
    // SAFETY: every pointer passed below is live for its call: the builder
    // until `_build` consumes it, and the NUL-terminated paths.
    unsafe {
        let builder = server_with_identity(&cert, &key);
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
        let status = server_status_json(builder);
        assert!(status.contains(r#""subject":"CN=capi-server""#), "{status}");
        assert!(status.contains(r#""ca_certificates":1"#), "{status}");
    }
}

#[test]
fn a_failed_client_setter_leaves_the_builder_as_it_was() {
    let files = Files::new("capi-client");
    let (cert, key) = (files.path("cert.pem"), files.path("key.pem"));
    // SAFETY: as in the server's test: every pointer is live for its call.
    unsafe {
        let builder = client_with_identity(&cert, &key);
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
        let status = client_status_json(builder);
        assert!(status.contains(r#""subject":"CN=capi-client""#), "{status}");
        assert!(status.contains(r#""ca_certificates":1"#), "{status}");
    }
}

/// A new server builder with `cert` and `key` as its identity.
fn server_with_identity(cert: &CStr, key: &CStr) -> *mut openssl_reload_server_builder {
    let mut builder = ptr::null_mut();
    // SAFETY: `builder` is writable; the paths are NUL-terminated.
    unsafe {
        ok(openssl_reload_server_builder_new(&mut builder));
        ok(openssl_reload_server_builder_set_identity(
            builder,
            cert.as_ptr(),
            key.as_ptr(),
        ));
    }
    builder
}

/// Builds `builder` and gives the server's status JSON.
///
/// # Safety
///
/// `builder` is a live server builder, not used again.
// SAFETY: unsafe because it trusts `builder`, a raw handle as the exports take it, which Rust
// cannot check; the `# Safety` section says what it must be.
unsafe fn server_status_json(builder: *mut openssl_reload_server_builder) -> String {
    let mut server: *mut openssl_reload_server = ptr::null_mut();
    // SAFETY: `builder` is live (the contract), `server` writable, and the
    // handle lives until it is freed.
    unsafe {
        ok(openssl_reload_server_builder_build(builder, &mut server));
        let status = json(|buf, len, out| openssl_reload_server_status_json(server, buf, len, out));
        openssl_reload_server_free(server);
        status
    }
}

/// A new client builder with `cert` and `key` as its identity.
fn client_with_identity(cert: &CStr, key: &CStr) -> *mut openssl_reload_client_builder {
    let mut builder = ptr::null_mut();
    // SAFETY: `builder` is writable; the paths are NUL-terminated.
    unsafe {
        ok(openssl_reload_client_builder_new(&mut builder));
        ok(openssl_reload_client_builder_set_identity(
            builder,
            cert.as_ptr(),
            key.as_ptr(),
        ));
    }
    builder
}

/// Builds `builder` and gives the client's status JSON.
///
/// # Safety
///
/// `builder` is a live client builder, not used again.
// SAFETY: unsafe because it trusts `builder`, a raw handle as the exports take it, which Rust
// cannot check; the `# Safety` section says what it must be.
unsafe fn client_status_json(builder: *mut openssl_reload_client_builder) -> String {
    let mut client: *mut openssl_reload_client = ptr::null_mut();
    // SAFETY: `builder` is live (the contract), `client` writable, and the
    // handle lives until it is freed.
    unsafe {
        ok(openssl_reload_client_builder_build(builder, &mut client));
        let status = json(|buf, len, out| openssl_reload_client_status_json(client, buf, len, out));
        openssl_reload_client_free(client);
        status
    }
}
