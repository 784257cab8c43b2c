//! `openssl-reload check`: validate certificate material offline and describe it.

use std::io::{self, Write};

use std::time::Duration;

use openssl_reload::{
    CertificateInfo, ClientAuth, CrlInfo, KeyStatus, OcspInfo, ReloadingAcceptorBuilder,
    ReloadingConnector, SiteStatus,
};

use crate::cli::CheckArgs;
use crate::timefmt::{now_unix, rfc3339};
use crate::{acceptor_builder, Failure};

/// Validates the material as `serve` would and prints what it holds.
pub(crate) fn run(args: &CheckArgs) -> Result<(), Failure> {
    let sites = builder(args)?.check_sites()?;
    refuse_unstapled(&sites)?;
    let crls = match (&args.ca, &args.crl) {
        (Some(ca), Some(crl)) => describe_crls(ca, crl)?,
        _ => Vec::new(),
    };
    if sites.len() > 1 || args.identity.cert_dir.is_some() {
        print_crls(&crls)?;
        return list(&sites);
    }
    let site = sites
        .into_iter()
        .find(|site| site.status.certificate.is_some())
        .ok_or_else(|| Failure::runtime("no certificate loaded"))?;
    let info = site
        .status
        .certificate
        .as_ref()
        .ok_or_else(|| Failure::runtime("no certificate loaded"))?;
    print(&describe(info, args.ca.is_some(), !crls.is_empty()))?;
    print(&key_line(
        site.key_type.as_deref(),
        site.status.key.as_ref(),
    ))?;
    print_crls(&crls)
}

/// The acceptor's builder for the material to check.
fn builder(args: &CheckArgs) -> Result<ReloadingAcceptorBuilder, Failure> {
    let Some(mut builder) = acceptor_builder(&args.identity)? else {
        return Err(Failure::usage(
            "give --cert and --key, --pkcs12, or --cert-dir",
        ));
    };
    if let Some(ca) = &args.ca {
        // check's --ca is the bundle the certificate must chain to: what
        // `serve --ca ... --require-chain-to-ca` checks (the library's default is off).
        builder = builder
            .ca(ca)
            .client_auth(ClientAuth::Required)
            .check_chain_against_ca(true);
        if let Some(crl) = &args.crl {
            builder = builder.crl(crl);
        }
    }
    Ok(builder)
}

/// A staple that would not be stapled fails the check: `serve` would run
/// without it (a must-staple certificate fails in check_sites already).
fn refuse_unstapled(sites: &[SiteStatus]) -> Result<(), Failure> {
    for site in sites {
        if let Some(ocsp) = site.certificate().and_then(|c| c.ocsp.as_ref()) {
            if let Some(reason) = &ocsp.error {
                return Err(Failure::runtime(format!(
                    "OCSP staple file {}: {reason}",
                    ocsp.path.display()
                )));
            }
        }
    }
    Ok(())
}

/// The one certificate's description, and the checks it passed (`ca`: it was
/// checked against a CA bundle; `crls`: CRLs were).
fn describe(info: &CertificateInfo, ca: bool, crls: bool) -> String {
    let days_left = (info.not_after_unix - now_unix()).div_euclid(86_400);
    let sans = if info.subject_alt_names.is_empty() {
        "(none)".to_owned()
    } else {
        info.subject_alt_names.join(", ")
    };
    let ocsp = info.ocsp.as_ref().map_or_else(String::new, ocsp_line);
    let mut checks = vec![
        "key matches the certificate",
        "within its validity period",
        "chain in order",
    ];
    for (passed, check) in [
        (ca, "chains to the CA bundle"),
        (
            crls,
            "CRLs signed by the CA bundle and before their nextUpdate",
        ),
        (
            !ocsp.is_empty(),
            "OCSP staple good, signed by the issuer and current",
        ),
    ] {
        if passed {
            checks.push(check);
        }
    }
    format!(
        "\
subject:    {subject}
SANs:       {sans}
issuer:     {issuer}
serial:     {serial}
notBefore:  {not_before} ({not_before_utc})
notAfter:   {not_after} ({not_after_utc})
days left:  {days_left}
SHA-256:    {sha256}
valid:      yes: {checks}
{ocsp}",
        subject = info.subject,
        issuer = info.issuer,
        serial = info.serial,
        not_before = info.not_before,
        not_before_utc = rfc3339(info.not_before_unix),
        not_after = info.not_after,
        not_after_utc = rfc3339(info.not_after_unix),
        sha256 = info.sha256,
        checks = checks.join(", "),
    )
}

/// The key's line: its type, and for a key in hardware its URI and route.
fn key_line(key_type: Option<&str>, key: Option<&KeyStatus>) -> String {
    let key_type = key_type.unwrap_or("?");
    match key.and_then(|k| Some((k, k.route.as_ref()?))) {
        Some((key, route)) => format!(
            "key:        {key_type}, in hardware: {} through {route}\n",
            key.uri
        ),
        None => format!("key:        {key_type}, from the key file\n"),
    }
}

/// The OCSP staple's line of the description.
fn ocsp_line(o: &OcspInfo) -> String {
    format!(
        "OCSP:       {status} | thisUpdate {this} | nextUpdate {next} | {path}\n",
        status = o.status.as_deref().unwrap_or("?"),
        this = o
            .this_update_unix
            .map_or_else(|| "(none)".to_owned(), rfc3339),
        next = o
            .next_update_unix
            .map_or_else(|| "(none)".to_owned(), rfc3339),
        path = o.path.display(),
    )
}

/// Writes `text` to standard output.
fn print(text: &str) -> Result<(), Failure> {
    io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| Failure::runtime(format!("cannot write to standard output: {e}")))
}

/// The CRLs as the connector side of the same files loads them (the acceptor's
/// check has validated them already): the library's own parse and checks.
fn describe_crls(ca: &std::path::Path, crl: &std::path::Path) -> Result<Vec<CrlInfo>, Failure> {
    let connector = ReloadingConnector::builder()
        .ca(ca)
        .crl(crl)
        .poll_interval(Duration::MAX)
        .build()?;
    Ok(connector.status().crls)
}

fn print_crls(crls: &[CrlInfo]) -> Result<(), Failure> {
    let mut text = String::new();
    for crl in crls {
        text.push_str(&format!(
            "CRL:        {issuer} | number {number} | {revoked} revoked | nextUpdate {next}\n",
            issuer = crl.issuer,
            number = crl.number.as_deref().unwrap_or("(none)"),
            revoked = crl.revoked,
            next = crl
                .next_update_unix
                .map_or_else(|| "(none)".to_owned(), rfc3339),
        ));
    }
    print(&text)
}

/// One line per site: what `serve` would answer for, and the sites it would
/// leave out with their errors. Fails when any site does not load.
fn list(sites: &[SiteStatus]) -> Result<(), Failure> {
    let mut text = String::new();
    let now = now_unix();
    for site in sites {
        match site.certificate() {
            Some(info) if site.serving => {
                text.push_str(&format!(
                    "{name}: {names} | {key} | serial {serial} | notAfter {not_after} ({days} days left){default}\n",
                    name = site.name,
                    names = if site.names.is_empty() { "(no names)".to_owned() } else { site.names.join(", ") },
                    key = site.key_type.as_deref().unwrap_or("?"),
                    serial = info.serial,
                    not_after = rfc3339(info.not_after_unix),
                    days = (info.not_after_unix - now).div_euclid(86_400),
                    default = if site.default { " | default" } else { "" },
                ));
            }
            _ => {
                let reason = site
                    .status
                    .last_error
                    .as_ref()
                    .map_or("not loaded", |e| e.message.as_str());
                text.push_str(&format!("{}: NOT SERVED: {reason}\n", site.name));
            }
        }
    }
    let failed = sites.iter().filter(|s| !s.serving).count();
    text.push_str(&format!(
        "{} sites would be served, {failed} left out\n",
        sites.len() - failed
    ));
    print(&text)?;
    if failed > 0 {
        return Err(Failure::runtime(format!(
            "{failed} of {} sites do not load",
            sites.len()
        )));
    }
    Ok(())
}
