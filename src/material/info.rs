//! What a certificate says about itself, for logs, status pages and metrics.

use std::net::IpAddr;

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::x509::{X509NameRef, X509Ref};

/// What a certificate says about itself, for logs, status pages and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertificateInfo {
    /// The subject, e.g. `CN=example.com, O=Example`.
    pub subject: String,
    /// The issuer, in the same form.
    pub issuer: String,
    /// The serial number in upper-case hexadecimal.
    pub serial: String,
    /// Subject alternative names: DNS names, IP addresses, e-mail addresses and URIs.
    pub subject_alt_names: Vec<String>,
    /// notBefore as OpenSSL prints it (`Jan  1 00:00:00 2026 GMT`).
    pub not_before: String,
    /// notAfter as OpenSSL prints it.
    pub not_after: String,
    /// notBefore in seconds since the Unix epoch.
    pub not_before_unix: i64,
    /// notAfter in seconds since the Unix epoch.
    pub not_after_unix: i64,
    /// SHA-256 fingerprint of the DER certificate, upper-case hex pairs joined by `:`.
    pub sha256: String,
    /// The certificate's OCSP staple file and its state, when there is one.
    pub ocsp: Option<super::OcspInfo>,
}

impl CertificateInfo {
    /// Describes `cert`.
    ///
    /// # Errors
    ///
    /// Fails only if OpenSSL cannot digest or print the certificate.
    pub fn of(cert: &X509Ref) -> Result<Self, ErrorStack> {
        let sha256 = cert
            .digest(MessageDigest::sha256())?
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let subject_alt_names = cert
            .subject_alt_names()
            .map(|names| {
                names
                    .iter()
                    .filter_map(|name| {
                        if let Some(dns) = name.dnsname() {
                            Some(dns.to_owned())
                        } else if let Some(ip) = name.ipaddress() {
                            ip_to_string(ip)
                        } else if let Some(email) = name.email() {
                            Some(email.to_owned())
                        } else {
                            name.uri().map(str::to_owned)
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            subject: name_to_string(cert.subject_name()),
            issuer: name_to_string(cert.issuer_name()),
            serial: cert.serial_number().to_bn()?.to_hex_str()?.to_string(),
            subject_alt_names,
            not_before: cert.not_before().to_string(),
            not_after: cert.not_after().to_string(),
            not_before_unix: unix_seconds(cert.not_before())?,
            not_after_unix: unix_seconds(cert.not_after())?,
            sha256,
            ocsp: None,
        })
    }
}

fn ip_to_string(bytes: &[u8]) -> Option<String> {
    let ip = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
        _ => return None,
    };
    Some(ip.to_string())
}

pub(crate) fn name_to_string(name: &X509NameRef) -> String {
    name.entries()
        .map(|entry| {
            let key = entry.object().nid().short_name().unwrap_or("?");
            let value = entry.data().to_string().unwrap_or_else(|_| "?".to_owned());
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn unix_seconds(time: &Asn1TimeRef) -> Result<i64, ErrorStack> {
    let diff = Asn1Time::from_unix(0)?.diff(time)?;
    Ok(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}
