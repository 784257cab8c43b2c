//! The `/status` document: the reloader's status and the server's counters as JSON.

use openssl_reload::{
    CertificateInfo, CertificateStatus, CrlInfo, KeyRoute, KeyStatus, OcspInfo, ReloadFailure,
    SiteStatus, TicketKeyStatus,
};
use serde_json::{json, Value};

use crate::metrics::Stats;
use crate::timefmt::{human_duration, rfc3339, rfc3339_millis};

fn certificate_json(cert: &CertificateInfo) -> Value {
    json!({
        "subject": cert.subject,
        "issuer": cert.issuer,
        "serial": cert.serial,
        "subject_alt_names": cert.subject_alt_names,
        "not_before": rfc3339(cert.not_before_unix),
        "not_after": rfc3339(cert.not_after_unix),
        "sha256": cert.sha256,
        "ocsp": cert.ocsp.as_ref().map(ocsp_json),
    })
}

/// The certificate's OCSP staple file: whether it is stapled, the response's
/// status and times, or why it is not stapled.
fn ocsp_json(ocsp: &OcspInfo) -> Value {
    json!({
        "path": ocsp.path.display().to_string(),
        "stapled": ocsp.in_service(),
        "status": ocsp.status,
        "this_update": ocsp.this_update_unix.map(rfc3339),
        "next_update": ocsp.next_update_unix.map(rfc3339),
        "error": ocsp.error,
    })
}

/// One site: its names and certificate, and its own reload record.
fn site_json(site: &SiteStatus) -> Value {
    let status = &site.status;
    json!({
        "name": site.name,
        "path": site.path.display().to_string(),
        "names": site.names,
        "key_type": site.key_type,
        "default": site.default,
        "serving": site.serving,
        "serial": site.certificate().map(|c| c.serial.clone()),
        "not_after": site.certificate().map(|c| rfc3339(c.not_after_unix)),
        "generation": status.generation,
        "reloads": status.reloads,
        "failures": status.failures,
        "last_error": status.last_error.as_ref().map(error_json),
        "key": status.key.as_ref().map(key_json),
    })
}

/// A key that stays in hardware: how it was opened and why that way, whether
/// it answers, and its outages (docs/hardware-keys.md).
fn key_json(key: &KeyStatus) -> Value {
    let (route, by, why) = match &key.route {
        Some(KeyRoute::Provider { name }) => (
            Some("provider"),
            Some(name.clone()),
            Some("the provider's OSSL_STORE loader serves the URI's scheme"),
        ),
        Some(KeyRoute::Engine { id }) => (
            Some("engine"),
            Some(id.clone()),
            Some("no loaded provider serves pkcs11: URIs; the libp11 engine does"),
        ),
        _ => (None, None, None),
    };
    json!({
        "uri": key.uri,
        "route": route,
        "by": by,
        "why": why,
        "available": key.available,
        "unavailable_since": key.unavailable_since.map(rfc3339_millis),
        "outages": key.outages,
        "opened": key.opened,
        "last_error": key.last_error,
    })
}

/// A CRL in service: `number` and `next_update` are null when the CRL has none.
fn crl_json(crl: &CrlInfo) -> Value {
    json!({
        "path": crl.path.display().to_string(),
        "issuer": crl.issuer,
        "number": crl.number,
        "revoked": crl.revoked,
        "last_update": rfc3339(crl.last_update_unix),
        "next_update": crl.next_update_unix.map(rfc3339),
    })
}

fn error_json(error: &ReloadFailure) -> Value {
    json!({
        "message": error.message,
        "path": error.path.as_ref().map(|p| p.display().to_string()),
        "at": rfc3339_millis(error.at),
    })
}

/// The session ticket keys: `file` is null when they are made and rotated in
/// memory, `rotation_period` null with a file.
fn ticket_keys_json(tickets: &TicketKeyStatus) -> Value {
    json!({
        "file": tickets.file.as_ref().map(|p| p.display().to_string()),
        "rotation_period": tickets.rotation_period.map(human_duration),
        "rotation_period_seconds": tickets.rotation_period.map(|p| p.as_secs_f64()),
        "keys": tickets.keys,
        "rotations": tickets.rotations,
        "last_rotation": rfc3339_millis(tickets.last_rotation),
        "failures": tickets.failures,
        "last_error": tickets.last_error.as_ref().map(error_json),
    })
}

/// The `/status` document. Times are RFC 3339 UTC strings; durations are seconds
/// (with a human form alongside). Add a field here to publish it.
pub(super) fn status_json(
    status: &CertificateStatus,
    sites: &[SiteStatus],
    tickets: &TicketKeyStatus,
    stats: &Stats,
) -> Value {
    json!({
        "sites": sites.iter().map(site_json).collect::<Vec<_>>(),
        "certificate": status.certificate.as_ref().map(certificate_json),
        "generation": status.generation,
        "reloads": status.reloads,
        "failures": status.failures,
        "consecutive_failures": status.consecutive_failures,
        "last_error": status.last_error.as_ref().map(error_json),
        "last_reload": rfc3339_millis(status.last_reload),
        "last_poll": status.last_poll.map(rfc3339_millis),
        "poll_interval": human_duration(status.poll_interval),
        "poll_interval_seconds": status.poll_interval.as_secs_f64(),
        "ca_certificates": status.ca_certificates,
        "crls": status.crls.iter().map(crl_json).collect::<Vec<_>>(),
        "ticket_keys": ticket_keys_json(tickets),
        "handshakes": {
            "completed": Stats::get(&stats.handshakes),
            "failed": Stats::get(&stats.handshake_errors),
            "timed_out": Stats::get(&stats.handshake_timeouts),
        },
        "connections_open": Stats::get(&stats.connections_open),
        "connections_max": stats.connections_max,
        "connections_idle_closed": Stats::get(&stats.idle_closed),
        "accept_errors": Stats::get(&stats.accept_errors),
        "fips_enabled": crate::fips_enabled(),
        "started": rfc3339_millis(stats.started),
        "version": env!("CARGO_PKG_VERSION"),
    })
}
