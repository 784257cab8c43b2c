//! The command line of `openssl-reload`, as a clap derive.
//!
//! These files depend on nothing but clap and std, so that a build script (a man
//! page generator with `clap_mangen`, shell completions) can include them with
//! `#[path = "server/src/cli/mod.rs"] mod cli;` and call
//! `<cli::Cli as clap::CommandFactory>::command()`: pkg/mangen does.
//!
//! `help` holds the manual's prose, `serve` the flags of `serve`, `duration`
//! the parser of `250ms`-style durations.

mod duration;
mod help;
pub(crate) mod serve;

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use help::{
    ABOUT, AFTER_LONG_HELP, CHECK_AFTER_LONG_HELP, CHECK_LONG_ABOUT, LONG_ABOUT,
    SERVE_AFTER_LONG_HELP, SERVE_LONG_ABOUT,
};
use serve::ServeArgs;

/// The environment variable that may hold the passphrase of an encrypted key or
/// PKCS#12 bundle (read at every load, like `--key-passphrase-file`).
pub(crate) const PASSPHRASE_ENV: &str = "OPENSSL_RELOAD_KEY_PASSPHRASE";

/// The longest delay `GET /slow?ms=N` accepts, in milliseconds.
pub(crate) const MAX_SLOW_MS: u64 = 30_000;

/// `openssl-reload`: a hot-reloading HTTPS server and certificate checker.
#[derive(Debug, Parser)]
#[command(
    name = "openssl-reload",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_LONG_HELP,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) log: LogArgs,

    /// FIPS mode: use only the OpenSSL FIPS provider's algorithms, or exit 1
    ///
    /// Before any certificate or key is read, load OpenSSL 3's fips and base
    /// providers and make every algorithm default to fips=yes; if that fails (no
    /// provider configured, self-test failure), exit 1 naming what to check:
    /// OPENSSL_CONF, OPENSSL_MODULES, fipsmodule.cnf. Keys encrypted with
    /// non-approved algorithms (traditional PEM encryption, which uses MD5; PKCS#12)
    /// then fail to load. Off by default, also in builds with FIPS support; a
    /// build without it (cargo feature `fips`) refuses the flag. /status
    /// (fips_enabled) and /metrics (openssl_reload_fips_enabled) show whether FIPS
    /// mode is on. Set OPENSSL_RELOAD_FIPS=1 for the same effect.
    #[arg(
        long,
        global = true,
        env = "OPENSSL_RELOAD_FIPS",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub(crate) fips: bool,

    /// Load this OpenSSL provider (repeatable), for keys named by a URI, e.g. tpm2
    ///
    /// Loaded after --fips and before any key is read; OpenSSL's default
    /// provider is loaded with it unless --fips is on. A key's URI scheme is
    /// served by the store loader of a loaded provider (tpm2-openssl serves
    /// handle: and object:); pkcs11: without such a provider goes through the
    /// libp11 engine. Providers may also come from OPENSSL_CONF.
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        env = "OPENSSL_RELOAD_PROVIDERS",
        value_delimiter = ',',
        action = clap::ArgAction::Append
    )]
    pub(crate) provider: Vec<String>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve HTTPS with a certificate that hot-reloads
    #[command(long_about = SERVE_LONG_ABOUT, after_long_help = SERVE_AFTER_LONG_HELP)]
    Serve(Box<ServeArgs>),
    /// Validate a certificate and key offline and describe the certificate
    #[command(long_about = CHECK_LONG_ABOUT, after_long_help = CHECK_AFTER_LONG_HELP)]
    Check(Box<CheckArgs>),
}

/// Logging, for every subcommand.
#[derive(Debug, Args)]
#[command(next_help_heading = "Logging")]
pub(crate) struct LogArgs {
    /// Log filter, in RUST_LOG syntax (e.g. `debug`, `info,openssl_reload=trace`)
    ///
    /// Without it OPENSSL_RELOAD_LOG, then RUST_LOG, is used; the default is
    /// `info` for serve and `warn` for check.
    #[arg(long, global = true, env = "OPENSSL_RELOAD_LOG", value_name = "FILTER")]
    pub(crate) log: Option<String>,

    /// Log format on standard error
    #[arg(
        long,
        global = true,
        env = "OPENSSL_RELOAD_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        value_name = "FORMAT"
    )]
    pub(crate) log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines
    Text,
    /// One JSON object per line, fields at the top level
    Json,
}

/// Where the certificates and keys come from.
#[derive(Debug, Args)]
#[command(next_help_heading = "Certificate")]
pub(crate) struct IdentityArgs {
    /// Certificate chain file: PEM (leaf first, then intermediates) or DER
    ///
    /// Give --cert and --key once per site, in pairs: each site answers for its
    /// certificate's DNS names (SNI), and the first one also answers clients
    /// without SNI or with a name no site has (see --default-site).
    #[arg(
        long,
        env = "OPENSSL_RELOAD_CERT",
        value_name = "FILE",
        requires = "key",
        conflicts_with = "pkcs12",
        action = clap::ArgAction::Append
    )]
    pub(crate) cert: Vec<PathBuf>,

    /// Private key file (PEM or DER; PKCS#1, SEC1 or PKCS#8, possibly encrypted), or a key URI
    ///
    /// One per --cert, in the same order. A key that stays in hardware is named
    /// by a URI: pkcs11:token=...;object=...;type=private (RFC 7512), or
    /// store:URI for any URI a loaded provider's store serves
    /// (store:handle:0x81000001 with --provider tpm2). Its PIN comes from
    /// --key-passphrase-file or OPENSSL_RELOAD_KEY_PASSPHRASE. The key is
    /// opened once, probed every poll interval and opened again after an
    /// outage; the certificate rotates around it and must match it.
    #[arg(
        long,
        env = "OPENSSL_RELOAD_KEY",
        value_name = "FILE",
        requires = "cert",
        conflicts_with = "pkcs12",
        action = clap::ArgAction::Append
    )]
    pub(crate) key: Vec<PathBuf>,

    /// PKCS#12 bundle with the certificate, its chain and the key (instead of --cert/--key)
    #[arg(long, env = "OPENSSL_RELOAD_PKCS12", value_name = "FILE")]
    pub(crate) pkcs12: Option<PathBuf>,

    /// OCSP staple of the first --cert (or of --pkcs12): a DER OCSP response
    ///
    /// As `openssl ocsp -respout` writes it; watched and reloaded with the
    /// certificate. Without it, each certificate's staple is `<cert file>.ocsp`
    /// when that file exists. A staple is sent to clients that ask only while it
    /// is a response for the certificate in service, from its issuer (which the
    /// --cert file holds after the leaf, or --ocsp-issuer, or `<cert file>.issuer`)
    /// or a delegated responder, with status good, and within
    /// thisUpdate/nextUpdate (without nextUpdate: at most seven days after
    /// thisUpdate); otherwise it is logged once and not stapled, and the
    /// certificate keeps serving. A must-staple certificate is refused without a
    /// valid staple.
    #[arg(long, env = "OPENSSL_RELOAD_OCSP_STAPLE", value_name = "FILE")]
    pub(crate) ocsp_staple: Option<PathBuf>,

    /// Issuer of the first --cert (or of --pkcs12), for checking its OCSP staple
    ///
    /// A PEM or DER certificate, watched with the staple, for a certificate file
    /// that holds the leaf alone (a private CA issuing leaves directly, whose
    /// root clients already have). Without it, each certificate's issuer may
    /// also come from `<cert file>.issuer` when that file exists.
    #[arg(long, env = "OPENSSL_RELOAD_OCSP_ISSUER", value_name = "FILE")]
    pub(crate) ocsp_issuer: Option<PathBuf>,

    /// Directory of sites, each chosen by SNI and reloaded on its own
    ///
    /// A site is NAME.crt with NAME.key, NAME.pem with NAME.key or holding both,
    /// NAME.p12, or a sub-directory NAME/ with tls.crt and tls.key (a mounted
    /// Kubernetes secret). A site added is served within the poll interval; a site
    /// whose files are gone is served 5 s more (a delete-then-create rotation
    /// keeps its names); a site that fails to load keeps its last good certificate,
    /// or is left out if new, with one error naming the file.
    #[arg(long, env = "OPENSSL_RELOAD_CERT_DIR", value_name = "DIR")]
    pub(crate) cert_dir: Option<PathBuf>,

    /// The site that answers clients without SNI or with an unknown name
    ///
    /// A site's name (NAME in --cert-dir, else the --cert path) or one of its DNS
    /// names. Default: the first --cert, else the first site of --cert-dir by name.
    #[arg(long, env = "OPENSSL_RELOAD_DEFAULT_SITE", value_name = "NAME")]
    pub(crate) default_site: Option<String>,

    /// Refuse clients without SNI or with a name no site has (alert unrecognized_name)
    #[arg(
        long,
        env = "OPENSSL_RELOAD_STRICT_SNI",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub(crate) strict_sni: bool,

    /// File holding the passphrase of an encrypted key or PKCS#12 bundle
    ///
    /// One trailing newline is ignored. The file is read at every load and watched
    /// like the certificate. Without it, the passphrase is taken from the
    /// environment variable OPENSSL_RELOAD_KEY_PASSPHRASE when that is set.
    #[arg(long, env = "OPENSSL_RELOAD_KEY_PASSPHRASE_FILE", value_name = "FILE")]
    pub(crate) key_passphrase_file: Option<PathBuf>,
}

impl IdentityArgs {
    /// Whether any certificate was given (else `serve` uses its dev certificate).
    pub(crate) fn given(&self) -> bool {
        !self.cert.is_empty() || self.pkcs12.is_some() || self.cert_dir.is_some()
    }
}

/// `openssl-reload check`.
#[derive(Debug, Args)]
#[command(
    next_help_heading = "Certificate",
    group(ArgGroup::new("identity").required(true).multiple(true).args(["cert", "pkcs12", "cert_dir"]))
)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) identity: IdentityArgs,

    /// CA bundle (PEM) the certificate must chain to
    #[arg(long, env = "OPENSSL_RELOAD_CA", value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,

    /// CRL file to validate against --ca (complete CRLs, signed by one of its CAs, not past nextUpdate)
    #[arg(long, env = "OPENSSL_RELOAD_CRL", value_name = "FILE", requires = "ca")]
    pub(crate) crl: Option<PathBuf>,
}

/// `--crl-check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum CrlCheckArg {
    /// The client's own certificate
    Leaf,
    /// Every certificate of the client's chain (the file needs a CRL of each CA)
    Chain,
}

/// `--stale-crl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum StaleCrlArg {
    /// Keep enforcing the stale CRL and warn
    Enforce,
    /// Refuse every client it covers
    Refuse,
}

/// `--client-auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ClientAuthArg {
    /// Every client must present a certificate that chains to --ca
    Required,
    /// A client may present a certificate; if it does, it must chain to --ca
    Optional,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_errors() {
        for args in [
            &["check"][..],
            &["check", "--cert", "c.pem"],
            &["check", "--key", "k.pem"],
            &["check", "--cert", "c", "--key", "k", "--pkcs12", "p"],
            &["serve", "--client-auth", "required"],
            &["serve", "--poll-interval", "5"],
            &["serve", "--listen", "localhost"],
            &["serve", "--require-chain-to-ca"],
            &["serve", "--crl", "crl.pem"],
            &["serve", "--ca", "ca.pem", "--crl-check", "chain"],
            &[
                "serve",
                "--ca",
                "ca.pem",
                "--crl",
                "c",
                "--crl-check",
                "all",
            ],
            &["check", "--cert", "c", "--key", "k", "--crl", "crl.pem"],
            &["serve", "--ticket-keys", "k", "--ticket-key-rotation", "5m"],
            &["serve", "--ticket-keys", "k", "--ticket-keys-kept", "2"],
            &["serve", "--ticket-keys-kept", "0"],
            &["serve", "--ticket-key-rotation", "0s"],
            &["serve", "--max-connections", "0"],
            &["serve", "--idle-timeout", "0s"],
            &["serve", "--max-header-size", "10"],
            &["serve", "--max-concurrent-streams", "0"],
            &["serve", "--admin-listen", "localhost"],
        ] {
            let argv = std::iter::once("openssl-reload").chain(args.iter().copied());
            assert!(Cli::try_parse_from(argv).is_err(), "{args:?} accepted");
        }
    }
}
