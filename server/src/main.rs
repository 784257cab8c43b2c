//! `openssl-reload`: an HTTPS server (HTTP/1.1 and HTTP/2, hyper) whose OpenSSL
//! certificate hot-reloads, and an offline certificate checker.
//!
//! It is the demo and packaged binary of the `openssl_reload` library. Run
//! `openssl-reload help serve` and `openssl-reload help check` for the manual.
//!
//! Modules: `cli` (the clap definition, self-contained, also compiled by
//! pkg/mangen for the man pages), `serve` (start-up, signals and graceful
//! shutdown; `serve::connections` accepts, handshakes and serves HTTP),
//! `routes` (the HTTP endpoints), `metrics` (Prometheus text), `dev_cert` (the
//! development CA and certificate), `check` (the `check` subcommand) and
//! `timefmt` (RFC 3339 times). Its tests are `tests/cli/`, which runs the
//! binary with curl and `openssl s_client`.

#![warn(clippy::too_many_lines)]

mod check;
mod cli;
mod dev_cert;
mod metrics;
mod routes;
mod serve;
mod timefmt;

use std::fmt;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use openssl_reload::{KeyUri, Passphrase, ReloadingAcceptor, ReloadingAcceptorBuilder};
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, IdentityArgs, LogArgs, LogFormat, PASSPHRASE_ENV};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let fips = cli.fips;
    let providers = cli.provider;
    let result = match cli.command {
        Command::Serve(args) => init_logging(&cli.log, "info")
            .and_then(|()| enable_fips(fips))
            .and_then(|()| load_providers(&providers))
            .and_then(|()| serve::run(*args)),
        Command::Check(args) => init_logging(&cli.log, "warn")
            .and_then(|()| enable_fips(fips))
            .and_then(|()| load_providers(&providers))
            .and_then(|()| check::run(&args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("openssl-reload: error: {failure}");
            ExitCode::from(failure.code)
        }
    }
}

/// The exit status of a configuration error at start-up: 78, `EX_CONFIG` of
/// sysexits.h. The packaged unit lists it in `RestartPreventExitStatus=`.
pub(crate) const EXIT_CONFIG: u8 = 78;

/// Why the program stops with a non-zero exit status.
#[derive(Debug)]
pub(crate) struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// A runtime failure: exit status 1.
    pub(crate) fn runtime(message: impl fmt::Display) -> Self {
        Self {
            code: 1,
            message: message.to_string(),
        }
    }

    /// A configuration error that a restart cannot cure (material missing,
    /// unreadable or invalid at start-up): exit status [`EXIT_CONFIG`].
    pub(crate) fn config(message: impl fmt::Display) -> Self {
        Self {
            code: EXIT_CONFIG,
            message: message.to_string(),
        }
    }

    /// A usage error found after parsing (clap reports its own): exit status 2.
    pub(crate) fn usage(message: impl fmt::Display) -> Self {
        Self {
            code: 2,
            message: message.to_string(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The error is promised to be one line, whatever the underlying message holds.
        let mut lines = self
            .message
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty());
        if let Some(first) = lines.next() {
            f.write_str(first)?;
        }
        for line in lines {
            write!(f, "; {line}")?;
        }
        Ok(())
    }
}

impl From<openssl_reload::Error> for Failure {
    /// The whole chain, down to OpenSSL's reason: the library's `Display` names
    /// only the step and the file.
    fn from(error: openssl_reload::Error) -> Self {
        Self::runtime(error.report())
    }
}

/// `--fips`: switches the process to OpenSSL's FIPS provider before any material is
/// read, or fails closed (exit status 1). Not requested by default, also in builds
/// with the `fips` feature, so that the same binary serves where no FIPS provider
/// is installed; packages turn it on with OPENSSL_RELOAD_FIPS=1.
fn enable_fips(requested: bool) -> Result<(), Failure> {
    if !requested {
        return Ok(());
    }
    #[cfg(feature = "fips")]
    let result = openssl_reload::fips::enable().map_err(Failure::from);
    #[cfg(not(feature = "fips"))]
    let result = Err(Failure::runtime(
        "--fips: built without FIPS support (cargo feature `fips`)",
    ));
    if result.is_ok() {
        tracing::info!("FIPS mode: the fips provider is loaded and algorithms default to fips=yes");
    }
    result
}

/// `--provider`: loads OpenSSL providers (tpm2) for keys named by a URI, in
/// the order their keys need (`openssl_reload::load_key_providers`).
fn load_providers(names: &[String]) -> Result<(), Failure> {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    openssl_reload::load_key_providers(&names).map_err(|e| {
        Failure::config(format!(
            "--provider {}: {} (is its package installed, OPENSSL_MODULES right?)",
            names.join(","),
            e.report()
        ))
    })
}

/// Whether OpenSSL fetches algorithms with `fips=yes` by default, for /status and
/// /metrics: through `--fips`, or through an OpenSSL configuration (a RHEL host in
/// FIPS mode), whatever features the binary was built with.
pub(crate) fn fips_enabled() -> bool {
    openssl_reload::fips::is_enabled()
}

/// Installs the global subscriber: the filter from `--log`/`OPENSSL_RELOAD_LOG`,
/// else `RUST_LOG`, else `default`; text or JSON lines on standard error.
fn init_logging(args: &LogArgs, default: &str) -> Result<(), Failure> {
    let spec = args
        .log
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| default.to_owned());
    let filter = EnvFilter::try_new(&spec)
        .map_err(|e| Failure::usage(format!("invalid log filter `{spec}`: {e}")))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => {
            let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(ansi).init();
        }
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
    Ok(())
}

/// The passphrase source the flags and environment select.
fn passphrase(identity: &IdentityArgs) -> Passphrase {
    match &identity.key_passphrase_file {
        Some(file) => Passphrase::from_file(file),
        None if std::env::var_os(PASSPHRASE_ENV).is_some() => Passphrase::from_env(PASSPHRASE_ENV),
        None => Passphrase::none(),
    }
}

/// A builder for the sites given on the command line, or `None` when none was
/// (neither `--cert`/`--key`, `--pkcs12` nor `--cert-dir`).
pub(crate) fn acceptor_builder(
    identity: &IdentityArgs,
) -> Result<Option<ReloadingAcceptorBuilder>, Failure> {
    if !identity.given() {
        return Ok(None);
    }
    if identity.cert.len() != identity.key.len() {
        return Err(Failure::usage(format!(
            "give one --key per --cert, in the same order ({} --cert, {} --key)",
            identity.cert.len(),
            identity.key.len()
        )));
    }
    let mut builder = ReloadingAcceptor::builder();
    for (cert, key) in identity.cert.iter().zip(&identity.key) {
        builder = match key
            .to_str()
            .map(KeyUri::from_key_arg)
            .transpose()?
            .flatten()
        {
            Some(uri) => builder.site_uri(cert, uri),
            None => builder.site(cert, key),
        };
    }
    if let Some(pkcs12) = &identity.pkcs12 {
        builder = builder.site_pkcs12(pkcs12);
    }
    if let Some(dir) = &identity.cert_dir {
        builder = builder.site_dir(dir);
    }
    if let Some(name) = &identity.default_site {
        builder = builder.default_site(name);
    }
    if let Some(staple) = &identity.ocsp_staple {
        builder = builder.ocsp_staple(staple);
    }
    if let Some(issuer) = &identity.ocsp_issuer {
        builder = builder.ocsp_issuer(issuer);
    }
    Ok(Some(
        builder
            .strict_sni(identity.strict_sni)
            .passphrase(passphrase(identity)),
    ))
}
