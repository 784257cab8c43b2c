//! The metric families of `/metrics`, from the reloader's status and the
//! server's counters.

use openssl_reload::{CertificateInfo, CertificateStatus, SiteStatus, TicketKeyStatus};

use super::exposition::{
    Exposition,
    Kind::{Counter, Gauge},
};
use super::Stats;
use crate::timefmt::unix_seconds_f64;

/// The `/metrics` document.
pub(crate) fn render(
    status: &CertificateStatus,
    sites: &[SiteStatus],
    tickets: &TicketKeyStatus,
    stats: &Stats,
) -> String {
    let mut m = Exposition::default();
    reload_families(&mut m, status);
    certificate_families(&mut m, status, sites);
    ticket_key_families(&mut m, tickets);
    connection_families(&mut m, stats);
    process_families(&mut m, stats);
    m.finish()
}

/// Reload outcomes and the poller.
fn reload_families(m: &mut Exposition, status: &CertificateStatus) {
    m.family(
        "openssl_reload_reloads_total",
        Counter,
        "Reloads of the certificate files since start-up, by result (the initial load not counted).",
    )
    .sample("openssl_reload_reloads_total", &[("result", "success")], status.reloads as f64)
    .sample("openssl_reload_reloads_total", &[("result", "failure")], status.failures as f64);
    m.single(
        "openssl_reload_consecutive_failures",
        Gauge,
        "Failed reload attempts since the last success; 0 when the files on disk are in service.",
        status.consecutive_failures as f64,
    );
    m.single(
        "openssl_reload_generation",
        Gauge,
        "Generation of the certificate in service; 1 for the one loaded at start-up.",
        status.generation as f64,
    );
    m.single(
        "openssl_reload_last_reload_timestamp_seconds",
        Gauge,
        "When the certificate in service was loaded, in seconds since the Unix epoch.",
        unix_seconds_f64(status.last_reload),
    );
    if let Some(error) = &status.last_error {
        m.single(
            "openssl_reload_last_failure_timestamp_seconds",
            Gauge,
            "When the most recent reload failed, in seconds since the Unix epoch.",
            unix_seconds_f64(error.at),
        );
    }
    m.single(
        "openssl_reload_last_poll_timestamp_seconds",
        Gauge,
        "When the poller last finished checking the files, in seconds since the Unix epoch; \
         0 before its first check. A value that stops moving means a stuck poller.",
        status.last_poll.map_or(0.0, unix_seconds_f64),
    );
    m.single(
        "openssl_reload_poll_interval_seconds",
        Gauge,
        "How often the certificate files are checked for changes.",
        status.poll_interval.as_secs_f64(),
    );
}

/// The certificates in service, one series per site, and the CA bundle.
fn certificate_families(m: &mut Exposition, status: &CertificateStatus, sites: &[SiteStatus]) {
    let serving: Vec<(&str, &CertificateInfo)> = sites
        .iter()
        .filter(|s| s.serving)
        .filter_map(|s| Some((s.name.as_str(), s.certificate()?)))
        .collect();
    m.single(
        "openssl_reload_sites",
        Gauge,
        "Sites with a certificate in service.",
        serving.len() as f64,
    );
    for (name, help, value) in [
        (
            "openssl_reload_certificate_expiration_timestamp_seconds",
            "notAfter of each site's certificate in service, in seconds since the Unix epoch.",
            (|c: &CertificateInfo| c.not_after_unix) as fn(&CertificateInfo) -> i64,
        ),
        (
            "openssl_reload_certificate_not_after_seconds",
            "Deprecated alias of openssl_reload_certificate_expiration_timestamp_seconds, removed in the next release.",
            (|c: &CertificateInfo| c.not_after_unix) as fn(&CertificateInfo) -> i64,
        ),
        (
            "openssl_reload_certificate_not_before_seconds",
            "notBefore of each site's certificate in service, in seconds since the Unix epoch.",
            |c: &CertificateInfo| c.not_before_unix,
        ),
    ] {
        if serving.is_empty() {
            continue;
        }
        m.family(name, Gauge, help);
        for (site, cert) in &serving {
            m.sample(name, &[("site", site)], value(cert) as f64);
        }
    }
    ocsp_families(m, &serving);
    m.single(
        "openssl_reload_ca_certificates",
        Gauge,
        "Certificates in the client CA bundle in service (0 without --ca).",
        status.ca_certificates as f64,
    );
    crl_families(m, status);
}

/// The OCSP staples in service, one series per site that staples one.
fn ocsp_families(m: &mut Exposition, serving: &[(&str, &CertificateInfo)]) {
    let stapled: Vec<(&str, i64)> = serving
        .iter()
        .filter_map(|(site, cert)| {
            let ocsp = cert.ocsp.as_ref().filter(|o| o.stapled)?;
            Some((*site, ocsp.next_update_unix?))
        })
        .collect();
    if !stapled.is_empty() {
        let name = "openssl_reload_ocsp_next_update_timestamp_seconds";
        m.family(
            name,
            Gauge,
            "nextUpdate of each site's OCSP staple in service, in seconds since the Unix epoch. \
             After it the staple is no longer sent: replace the file before.",
        );
        for (site, next) in stapled {
            m.sample(name, &[("site", site)], next as f64);
        }
    }
}

/// The CRLs in service, one series per CRL, labelled with its issuer.
fn crl_families(m: &mut Exposition, status: &CertificateStatus) {
    if status.crls.is_empty() {
        return;
    }
    let name = "openssl_reload_crl_next_update_timestamp_seconds";
    m.family(
        name,
        Gauge,
        "nextUpdate of each CRL in service, in seconds since the Unix epoch (CRLs without one are left out). \
         Alert well before it: a CRL past it is still enforced (--stale-crl enforce) or refuses every client (refuse).",
    );
    for crl in &status.crls {
        if let Some(next) = crl.next_update_unix {
            m.sample(name, &[("issuer", &crl.issuer)], next as f64);
        }
    }
    let name = "openssl_reload_crl_revoked_certificates";
    m.family(name, Gauge, "Certificates each CRL in service revokes.");
    for crl in &status.crls {
        m.sample(name, &[("issuer", &crl.issuer)], crl.revoked as f64);
    }
}

/// The session ticket keys.
fn ticket_key_families(m: &mut Exposition, tickets: &TicketKeyStatus) {
    m.single(
        "openssl_reload_ticket_keys",
        Gauge,
        "Session ticket keys in service: the newest encrypts new tickets, all decrypt.",
        tickets.keys as f64,
    );
    m.single(
        "openssl_reload_ticket_key_failures_total",
        Counter,
        "Failed loads of the --ticket-keys file (or failed key generations) since start-up; \
         the keys in service stay.",
        tickets.failures as f64,
    );
}

/// Handshakes, connections and requests.
fn connection_families(m: &mut Exposition, stats: &Stats) {
    m.single(
        "openssl_reload_handshakes_total",
        Counter,
        "TLS handshakes completed.",
        Stats::get(&stats.handshakes) as f64,
    );
    m.family(
        "openssl_reload_handshake_failures_total",
        Counter,
        "TLS handshakes that failed (error) or did not finish within --handshake-timeout (timeout).",
    )
    .sample(
        "openssl_reload_handshake_failures_total",
        &[("reason", "error")],
        Stats::get(&stats.handshake_errors) as f64,
    )
    .sample(
        "openssl_reload_handshake_failures_total",
        &[("reason", "timeout")],
        Stats::get(&stats.handshake_timeouts) as f64,
    );
    m.single(
        "openssl_reload_connections_open",
        Gauge,
        "Client connections open now, in handshake or serving HTTP.",
        Stats::get(&stats.connections_open) as f64,
    );
    m.single(
        "openssl_reload_connections_max",
        Gauge,
        "Most client connections open at once (--max-connections); more wait in the listen backlog.",
        stats.connections_max as f64,
    );
    m.single(
        "openssl_reload_connections_idle_closed_total",
        Counter,
        "Connections closed after --idle-timeout without a request in flight.",
        Stats::get(&stats.idle_closed) as f64,
    );
    m.single(
        "openssl_reload_accept_errors_total",
        Counter,
        "Failed accept(2) calls for lack of file descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM).",
        Stats::get(&stats.accept_errors) as f64,
    );
    m.single(
        "openssl_reload_http_requests_total",
        Counter,
        "HTTP requests received.",
        Stats::get(&stats.requests) as f64,
    );
}

/// FIPS mode, start time and build.
fn process_families(m: &mut Exposition, stats: &Stats) {
    m.single(
        "openssl_reload_fips_enabled",
        Gauge,
        "1 when OpenSSL fetches only FIPS-approved algorithms (fips=yes default properties, --fips), else 0.",
        f64::from(u8::from(crate::fips_enabled())),
    );
    m.single(
        "openssl_reload_start_time_seconds",
        Gauge,
        "When the server started, in seconds since the Unix epoch.",
        unix_seconds_f64(stats.started),
    );
    m.family(
        "openssl_reload_build_info",
        Gauge,
        "Always 1; the labels name the version of openssl-reload and of OpenSSL.",
    )
    .sample(
        "openssl_reload_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("openssl", openssl::version::version()),
        ],
        1.0,
    );
}
