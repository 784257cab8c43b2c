//! `openssl-reload check`: validate certificate material offline and describe it.

use std::io::{self, Write};

use openssl_reload::ClientAuth;

use crate::cli::CheckArgs;
use crate::timefmt::{now_unix, rfc3339};
use crate::{acceptor_builder, Failure};

/// Validates the material as `serve` would and prints what it holds.
pub(crate) fn run(args: &CheckArgs) -> Result<(), Failure> {
    let Some(mut builder) = acceptor_builder(&args.identity) else {
        return Err(Failure::usage("give --cert and --key, or --pkcs12"));
    };
    if let Some(ca) = &args.ca {
        // check's --ca is the bundle the certificate must chain to: what
        // `serve --ca ... --require-chain-to-ca` checks (the library's default is off).
        builder = builder
            .ca(ca)
            .client_auth(ClientAuth::Required)
            .check_chain_against_ca(true);
    }
    let info = builder.check()?;

    let days_left = (info.not_after_unix - now_unix()).div_euclid(86_400);
    let sans = if info.subject_alt_names.is_empty() {
        "(none)".to_owned()
    } else {
        info.subject_alt_names.join(", ")
    };
    let mut checks = vec![
        "key matches the certificate",
        "within its validity period",
        "chain in order",
    ];
    if args.ca.is_some() {
        checks.push("chains to the CA bundle");
    }
    let text = format!(
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
",
        subject = info.subject,
        issuer = info.issuer,
        serial = info.serial,
        not_before = info.not_before,
        not_before_utc = rfc3339(info.not_before_unix),
        not_after = info.not_after,
        not_after_utc = rfc3339(info.not_after_unix),
        sha256 = info.sha256,
        checks = checks.join(", "),
    );
    io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| Failure::runtime(format!("cannot write to standard output: {e}")))
}
