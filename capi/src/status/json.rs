//! The status as JSON, for `_status_json`.

use std::time::{SystemTime, UNIX_EPOCH};

use reload::{CertificateStatus, SiteStatus};
use serde_json::{json, Value};

fn unix(at: SystemTime) -> Value {
    at.duration_since(UNIX_EPOCH)
        .map_or(Value::Null, |d| json!(d.as_secs()))
}

/// The status as JSON for `_status_json`: the C interface's own schema, not
/// the demo server's `/status`. Times are Unix seconds (`not_after_unix`,
/// `last_reload_unix`, ...) where `/status` writes RFC 3339 strings, and
/// `not_before`/`not_after` are as OpenSSL prints them; an OCSP staple's
/// `stapled` is whether it passed its checks when it was loaded, where
/// `/status` also asks whether it is still current. The field names are
/// pinned by a test below.
pub(crate) fn to_json(status: &CertificateStatus, sites: Option<&[SiteStatus]>) -> String {
    let mut value = status_value(status);
    if let Some(sites) = sites {
        value["sites"] = sites
            .iter()
            .map(|site| {
                json!({
                    "name": site.name,
                    "path": site.path,
                    "names": site.names,
                    "key_type": site.key_type,
                    "default": site.default,
                    "serving": site.serving,
                    "status": status_value(&site.status),
                })
            })
            .collect();
    }
    value.to_string()
}

fn status_value(status: &CertificateStatus) -> Value {
    json!({
        "generation": status.generation,
        "reloads": status.reloads,
        "failures": status.failures,
        "consecutive_failures": status.consecutive_failures,
        "certificate": status.certificate.as_ref().map(|c| json!({
            "subject": c.subject,
            "issuer": c.issuer,
            "serial": c.serial,
            "subject_alt_names": c.subject_alt_names,
            "not_before": c.not_before,
            "not_after": c.not_after,
            "not_after_unix": c.not_after_unix,
            "sha256": c.sha256,
            "ocsp": c.ocsp.as_ref().map(|o| json!({
                "path": o.path,
                "stapled": o.stapled,
                "status": o.status,
                "this_update_unix": o.this_update_unix,
                "next_update_unix": o.next_update_unix,
                "error": o.error,
            })),
        })),
        "ca_certificates": status.ca_certificates,
        "crls": status.crls.iter().map(|crl| json!({
            "path": crl.path,
            "issuer": crl.issuer,
            "number": crl.number,
            "revoked": crl.revoked,
            "next_update_unix": crl.next_update_unix,
        })).collect::<Vec<_>>(),
        "last_error": status.last_error.as_ref().map(|e| json!({
            "message": e.message,
            "path": e.path,
            "at_unix": unix(e.at),
        })),
        "last_reload_unix": unix(status.last_reload),
        "last_poll_unix": status.last_poll.map_or(Value::Null, unix),
        "poll_interval_ms": status.poll_interval.as_millis() as u64,
        "fips_enabled": status.fips_enabled,
    })
}

#[cfg(test)]
mod tests {
    use std::ptr;

    use serde_json::Value;

    use crate::error::openssl_reload_result::*;
    use crate::test_support::{json, ok, Files};
    use crate::*;

    /// The names of an object's fields, sorted.
    fn fields(value: &Value) -> Vec<&str> {
        let mut names: Vec<&str> = value
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {value}"))
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names
    }

    /// The status JSON of a server with every object the schema has: a
    /// certificate, a refused OCSP staple, a CRL, a site and a failed reload.
    fn a_full_status() -> Value {
        let files = Files::new("capi-json");
        files.write_crl();
        std::fs::write(files.0.join("staple.der"), b"not a response").unwrap();
        let (cert, key) = (files.path("cert.pem"), files.path("key.pem"));
        let (crl, staple) = (files.path("crl.pem"), files.path("staple.der"));
        let mut builder = ptr::null_mut();
        let mut server: *mut openssl_reload_server = ptr::null_mut();
        // SAFETY: every pointer passed below is live for its call: the builder
        // from `_new` until `_build` consumes it, the NUL-terminated paths, and
        // the server until it is freed.
        let status = unsafe {
            ok(openssl_reload_server_builder_new(&mut builder));
            ok(openssl_reload_server_builder_set_identity(
                builder,
                cert.as_ptr(),
                key.as_ptr(),
            ));
            ok(openssl_reload_server_builder_set_client_ca(
                builder,
                cert.as_ptr(),
                0,
            ));
            ok(openssl_reload_server_builder_set_crl(
                builder,
                crl.as_ptr(),
                0,
            ));
            ok(openssl_reload_server_builder_set_ocsp_staple(
                builder,
                staple.as_ptr(),
            ));
            ok(openssl_reload_server_builder_build(builder, &mut server));
            std::fs::write(files.0.join("cert.pem"), b"not a certificate").unwrap();
            let failed = openssl_reload_server_reload_now(server, ptr::null_mut());
            assert_eq!(failed, OPENSSL_RELOAD_MATERIAL);
            let status =
                json(|buf, len, out| openssl_reload_server_status_json(server, buf, len, out));
            openssl_reload_server_free(server);
            status
        };
        serde_json::from_str(&status).unwrap()
    }

    /// The fields of `certificate`, sorted.
    const CERTIFICATE_FIELDS: [&str; 9] = [
        "issuer",
        "not_after",
        "not_after_unix",
        "not_before",
        "ocsp",
        "serial",
        "sha256",
        "subject",
        "subject_alt_names",
    ];

    /// The C JSON is a schema of its own (Unix times, the raw `stapled`), not
    /// the demo server's `/status`: its field names change only with the ABI.
    #[test]
    fn the_status_json_keeps_its_field_names() {
        let status = a_full_status();
        assert_eq!(
            fields(&status),
            [
                "ca_certificates",
                "certificate",
                "consecutive_failures",
                "crls",
                "failures",
                "fips_enabled",
                "generation",
                "last_error",
                "last_poll_unix",
                "last_reload_unix",
                "poll_interval_ms",
                "reloads",
                "sites",
            ]
        );
        let certificate = &status["certificate"];
        assert_eq!(fields(certificate), CERTIFICATE_FIELDS);
        assert_eq!(
            fields(&certificate["ocsp"]),
            [
                "error",
                "next_update_unix",
                "path",
                "stapled",
                "status",
                "this_update_unix"
            ]
        );
        assert_eq!(
            fields(&status["crls"][0]),
            ["issuer", "next_update_unix", "number", "path", "revoked"]
        );
        assert_eq!(
            fields(&status["last_error"]),
            ["at_unix", "message", "path"]
        );
        assert_eq!(
            fields(&status["sites"][0]),
            ["default", "key_type", "name", "names", "path", "serving", "status"]
        );
        assert_eq!(fields(&status["sites"][0]["status"]), {
            let mut top = fields(&status);
            top.retain(|name| *name != "sites");
            top
        });
    }
}
