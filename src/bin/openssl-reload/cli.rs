//! The command line of `openssl-reload`, as a clap derive.
//!
//! This file depends on nothing but clap and std, so that a build script (a man
//! page generator with `clap_mangen`, shell completions) can include it with
//! `#[path = "src/bin/openssl-reload/cli.rs"] mod cli;` and call
//! `<cli::Cli as clap::CommandFactory>::command()`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

/// The environment variable that may hold the passphrase of an encrypted key or
/// PKCS#12 bundle (read at every load, like `--key-passphrase-file`).
pub(crate) const PASSPHRASE_ENV: &str = "OPENSSL_RELOAD_KEY_PASSPHRASE";

/// The longest delay `GET /slow?ms=N` accepts, in milliseconds.
pub(crate) const MAX_SLOW_MS: u64 = 30_000;

const ABOUT: &str =
    "An HTTPS server whose TLS certificate hot-reloads, and an offline certificate checker";

const LONG_ABOUT: &str = "\
openssl-reload serves HTTPS (HTTP/1.1 and HTTP/2) with OpenSSL and follows its \
certificate, private key and CA bundle on disk: when a file changes it is loaded \
and validated off the handshake path, and new connections get the new certificate \
without a restart and without dropping open connections. A bad file never replaces \
a good certificate.

It is the demo server of the openssl_reload Rust library: run it to see hot \
reloading work, point monitoring at its /status and /metrics endpoints, or use \
`openssl-reload check` to validate certificate files before deploying them.

Every flag can also be set through an environment variable named \
OPENSSL_RELOAD_<FLAG>, e.g. OPENSSL_RELOAD_POLL_INTERVAL=250ms. A flag on the \
command line wins over the variable.";

const AFTER_LONG_HELP: &str = "\
EXAMPLES:
  Serve on a development certificate created on first use:
    openssl-reload serve

  Serve your own certificate and check the files every 250 ms:
    openssl-reload serve --cert /etc/tls/cert.pem --key /etc/tls/key.pem --poll-interval 250ms

  Validate files before deploying them:
    openssl-reload check --cert new/cert.pem --key new/key.pem --ca ca.pem

  Read a subcommand's manual:
    openssl-reload help serve

EXIT STATUS:
  0  success (for serve: stopped by SIGTERM or SIGINT)
  1  a runtime error (unreadable or invalid material, address in use, FIPS mode
     unavailable with --fips) or, for check, invalid material
  2  a usage error";

const SERVE_LONG_ABOUT: &str = "\
Serve HTTPS on one or more addresses with a certificate that hot-reloads.

The certificate and key come from --cert and --key (PEM or DER; the key may be \
PKCS#1, SEC1 or PKCS#8, and encrypted) or from one PKCS#12 bundle (--pkcs12). \
They are checked every --poll-interval (one stat(2) per file; files are read only \
when they change). New material must parse, the key must match the certificate, \
the certificate must be within its validity period, each certificate of the chain \
file must be signed by the next and, with --require-chain-to-ca, the certificate \
must chain to the --ca bundle; otherwise the previous certificate stays in \
service, the failure is logged once and shown by /status and /metrics, and the \
files are tried again when they change.

DEVELOPMENT CERTIFICATE
  Without --cert/--key/--pkcs12 the server creates a self-signed development CA \
and a certificate for localhost, 127.0.0.1 and ::1 in the directory --dev-dir, \
prints their paths and a ready-to-run curl command, and serves that certificate. \
Later runs reuse the files; a missing, invalid or nearly expired certificate is \
issued again (by the same CA while the CA is good). Private keys are written with \
mode 0600. The default directory is $XDG_DATA_HOME/openssl-reload/dev, else \
~/.local/share/openssl-reload/dev, else ./.openssl-reload-dev when HOME is unset. \
Never use the development CA outside development.

ENDPOINTS
  GET /         a short text naming the certificate this connection was served with
                (subject and serial), the TLS version and the HTTP version.
  GET /status   JSON: the certificate in service (subject, issuer, serial, SANs,
                validity, SHA-256), generation, reload and failure counts, the last
                error with its file and time, the last reload time, the poll
                interval and when the files were last polled (last_poll), the
                session ticket keys (ticket_keys: file, rotation period, keys,
                rotations, failures, last error), handshake counts, and whether
                FIPS mode is on (fips_enabled). Times are RFC 3339 UTC strings
                (e.g. 2026-01-02T03:04:05Z); durations are in seconds.
  GET /metrics  Prometheus text format: openssl_reload_reloads_total{result},
                openssl_reload_certificate_not_after_seconds,
                openssl_reload_generation,
                openssl_reload_last_poll_timestamp_seconds,
                openssl_reload_ticket_keys, openssl_reload_handshakes_total,
                openssl_reload_handshake_failures_total{reason}, and more.
  GET /slow?ms=N  diagnostics: waits N milliseconds (at most 30000) before
                answering, to try graceful shutdown with a request in flight.

SIGNALS
  SIGHUP           reload the files now, whatever the poll interval, the
                   ticket-key file included; the outcome is logged, and a bad file
                   keeps the previous certificate (or ticket keys).
  SIGTERM, SIGINT  stop accepting connections, let in-flight requests finish for at
                   most --shutdown-grace, then exit 0. A second signal exits at once.

SESSION TICKETS
  Clients resume TLS sessions with tickets encrypted under the server's ticket \
keys. By default the keys are random, made in memory, and rotate every \
--ticket-key-rotation, --ticket-keys-kept of them in service. Servers behind one \
load balancer share their keys through a file (--ticket-keys) so that a client \
resumes on any of them; whoever writes the file rotates the keys.

CONNECTIONS
  HTTP/2 and HTTP/1.1 are offered through ALPN. A client that does not finish the \
TLS handshake within --handshake-timeout is disconnected. Failed handshakes (a \
plain-HTTP client, a port scanner, an untrusted client certificate) are logged at \
debug level with the peer's address and counted in /metrics.

LOGGING
  Logs go to standard error, as text or as one JSON object per line \
(--log-format). The filter follows RUST_LOG conventions: --log, else \
OPENSSL_RELOAD_LOG, else RUST_LOG, else info. Use --log debug to see failed \
handshakes and each request.";

const SERVE_AFTER_LONG_HELP: &str = "\
EXAMPLES:
  Try it on the development certificate, then follow the printed curl line:
    openssl-reload serve
    curl --cacert ~/.local/share/openssl-reload/dev/ca.pem https://localhost:8443/

  Serve a certificate on all IPv4 and IPv6 addresses:
    openssl-reload serve --cert cert.pem --key key.pem --listen 0.0.0.0:443 --listen [::]:443

  An encrypted key, its passphrase in a file (or in OPENSSL_RELOAD_KEY_PASSPHRASE):
    openssl-reload serve --cert cert.pem --key key.enc.pem --key-passphrase-file pass.txt

  Mutual TLS: require client certificates issued by ca.pem:
    openssl-reload serve --cert cert.pem --key key.pem --ca ca.pem --client-auth required
    curl --cacert ca.pem --cert client.pem --key client-key.pem https://localhost:8443/

  Share session ticket keys across a fleet (copy the same file to every server):
    (umask 077; openssl rand 80 | base64 -w0 > ticket.keys)
    openssl-reload serve --cert cert.pem --key key.pem --ticket-keys ticket.keys

  Rotate, then reload at once instead of waiting for the next poll:
    cp new-cert.pem cert.pem && cp new-key.pem key.pem && kill -HUP <pid>

  Configure through the environment, log JSON:
    OPENSSL_RELOAD_PKCS12=/run/secrets/tls.p12 OPENSSL_RELOAD_LOG_FORMAT=json openssl-reload serve

  Watch what happens:
    curl -s --cacert ca.pem https://localhost:8443/status
    curl -s --cacert ca.pem https://localhost:8443/metrics";

const CHECK_LONG_ABOUT: &str = "\
Validate a certificate and its private key offline, exactly as `serve` would \
before putting them in service, and describe the certificate.

The files must be readable and parse, an encrypted key must decrypt with the \
passphrase (--key-passphrase-file, or the OPENSSL_RELOAD_KEY_PASSPHRASE \
variable), the key must match the certificate, the certificate must be within its \
validity period, each certificate of the chain file must be signed by the next \
and, with --ca, the certificate must chain to that CA bundle (as `serve \
--require-chain-to-ca` requires).

On success the subject, subject alternative names, issuer, serial number, \
notBefore and notAfter, days left and SHA-256 fingerprint are printed on standard \
output. Otherwise the reason is printed on standard error.

EXIT STATUS:
  0  the material is valid
  1  it is not: unreadable, unparsable, wrong passphrase, key mismatch, expired or
     not yet valid, a chain out of order, or not chaining to the CA
  2  a usage error";

const CHECK_AFTER_LONG_HELP: &str = "\
EXAMPLES:
  Check a pair of PEM files:
    openssl-reload check --cert cert.pem --key key.pem

  Check that a renewed certificate chains to the CA clients trust:
    openssl-reload check --cert new/cert.pem --key new/key.pem --ca ca.pem

  Check a PKCS#12 bundle whose password is in a file:
    openssl-reload check --pkcs12 server.p12 --key-passphrase-file pass.txt

  Gate a deployment on it:
    openssl-reload check --cert new/cert.pem --key new/key.pem && mv new/* /etc/tls/";

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

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve HTTPS with a certificate that hot-reloads
    #[command(long_about = SERVE_LONG_ABOUT, after_long_help = SERVE_AFTER_LONG_HELP)]
    Serve(ServeArgs),
    /// Validate a certificate and key offline and describe the certificate
    #[command(long_about = CHECK_LONG_ABOUT, after_long_help = CHECK_AFTER_LONG_HELP)]
    Check(CheckArgs),
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

/// Where the certificate and key come from.
#[derive(Debug, Args)]
#[command(next_help_heading = "Certificate")]
pub(crate) struct IdentityArgs {
    /// Certificate chain file: PEM (leaf first, then intermediates) or DER
    #[arg(
        long,
        env = "OPENSSL_RELOAD_CERT",
        value_name = "FILE",
        requires = "key",
        conflicts_with = "pkcs12"
    )]
    pub(crate) cert: Option<PathBuf>,

    /// Private key file: PEM or DER; PKCS#1, SEC1 or PKCS#8, possibly encrypted
    #[arg(
        long,
        env = "OPENSSL_RELOAD_KEY",
        value_name = "FILE",
        requires = "cert",
        conflicts_with = "pkcs12"
    )]
    pub(crate) key: Option<PathBuf>,

    /// PKCS#12 bundle with the certificate, its chain and the key (instead of --cert/--key)
    #[arg(long, env = "OPENSSL_RELOAD_PKCS12", value_name = "FILE")]
    pub(crate) pkcs12: Option<PathBuf>,

    /// File holding the passphrase of an encrypted key or PKCS#12 bundle
    ///
    /// One trailing newline is ignored. The file is read at every load and watched
    /// like the certificate. Without it, the passphrase is taken from the
    /// environment variable OPENSSL_RELOAD_KEY_PASSPHRASE when that is set.
    #[arg(long, env = "OPENSSL_RELOAD_KEY_PASSPHRASE_FILE", value_name = "FILE")]
    pub(crate) key_passphrase_file: Option<PathBuf>,
}

/// `openssl-reload serve`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Certificate")]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) identity: IdentityArgs,

    /// CA bundle (PEM) that client certificates must chain to: enables mutual TLS
    ///
    /// The bundle is watched and reloaded like the certificate. It names the CAs of
    /// the clients; the server's own certificate may come from any CA (see
    /// --require-chain-to-ca).
    #[arg(long, env = "OPENSSL_RELOAD_CA", value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,

    /// Refuse a server certificate that does not chain to the --ca bundle
    ///
    /// For clusters where one CA signs every node: the certificate is then checked
    /// against the bundle at start-up and at every reload, and one that does not
    /// chain is refused (at start-up: exit 1). Off by default, so that a server
    /// with a public certificate can verify clients from a private CA. The order
    /// of the chain file (each certificate signed by the next) is checked either
    /// way.
    #[arg(
        long,
        env = "OPENSSL_RELOAD_REQUIRE_CHAIN_TO_CA",
        requires = "ca",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub(crate) require_chain_to_ca: bool,

    /// Whether clients must present a certificate (with --ca; default: required)
    #[arg(
        long,
        env = "OPENSSL_RELOAD_CLIENT_AUTH",
        value_enum,
        requires = "ca",
        value_name = "MODE"
    )]
    pub(crate) client_auth: Option<ClientAuthArg>,

    /// How often the files are checked for changes: e.g. 250ms, 2s, 1m
    #[arg(
        long,
        env = "OPENSSL_RELOAD_POLL_INTERVAL",
        value_name = "DURATION",
        default_value = "1s",
        value_parser = parse_positive_duration
    )]
    pub(crate) poll_interval: Duration,

    /// Directory of the development CA and certificate, used without --cert/--key/--pkcs12
    ///
    /// Default: $XDG_DATA_HOME/openssl-reload/dev, else
    /// ~/.local/share/openssl-reload/dev, else ./.openssl-reload-dev.
    #[arg(long, env = "OPENSSL_RELOAD_DEV_DIR", value_name = "DIR")]
    pub(crate) dev_dir: Option<PathBuf>,

    /// Address to listen on; repeat the flag for several (port 0 picks a free port)
    ///
    /// In OPENSSL_RELOAD_LISTEN, separate addresses with commas. IPv6 addresses
    /// go in brackets: [::1]:8443.
    #[arg(
        long,
        help_heading = "Server",
        env = "OPENSSL_RELOAD_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8443",
        value_delimiter = ','
    )]
    pub(crate) listen: Vec<SocketAddr>,

    /// Time a client has to complete the TLS handshake before it is disconnected
    #[arg(
        long,
        help_heading = "Server",
        env = "OPENSSL_RELOAD_HANDSHAKE_TIMEOUT",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = parse_positive_duration
    )]
    pub(crate) handshake_timeout: Duration,

    /// After SIGTERM or SIGINT, how long in-flight requests may run before the server exits
    #[arg(
        long,
        help_heading = "Server",
        env = "OPENSSL_RELOAD_SHUTDOWN_GRACE",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = parse_duration
    )]
    pub(crate) shutdown_grace: Duration,

    #[command(flatten)]
    pub(crate) tickets: TicketArgs,
}

/// Session ticket keys, for `serve`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Session tickets")]
pub(crate) struct TicketArgs {
    /// Session ticket keys from a file shared by a fleet of servers
    ///
    /// One key per line: base64 of 80 random bytes (16 key name, 32 HMAC, 32
    /// AES), e.g. from `openssl rand 80 | base64 -w0`. The first line encrypts new
    /// tickets, every line decrypts, so a client resumes on any server that reads
    /// the same file. The file is watched like the certificate and read again on
    /// SIGHUP; a bad file keeps the keys in service. Rotate by writing a new first
    /// line and dropping the last one. Protect it like a private key. Without it,
    /// keys are made in memory and rotated (--ticket-key-rotation).
    #[arg(
        long,
        env = "OPENSSL_RELOAD_TICKET_KEYS",
        value_name = "FILE",
        conflicts_with_all = ["ticket_key_rotation", "ticket_keys_kept"]
    )]
    pub(crate) ticket_keys: Option<PathBuf>,

    /// How often the in-memory session ticket keys rotate (without --ticket-keys)
    ///
    /// A ticket stays decryptable for (N - 1) to N periods, N being
    /// --ticket-keys-kept: two to three hours by default, which covers OpenSSL's
    /// session lifetime of two hours.
    #[arg(
        long,
        env = "OPENSSL_RELOAD_TICKET_KEY_ROTATION",
        value_name = "DURATION",
        default_value = "1h",
        value_parser = parse_positive_duration
    )]
    pub(crate) ticket_key_rotation: Duration,

    /// How many in-memory session ticket keys are kept: the newest encrypts, all decrypt
    #[arg(
        long,
        env = "OPENSSL_RELOAD_TICKET_KEYS_KEPT",
        value_name = "N",
        default_value_t = 3,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub(crate) ticket_keys_kept: u32,
}

/// `openssl-reload check`.
#[derive(Debug, Args)]
#[command(
    next_help_heading = "Certificate",
    group(ArgGroup::new("identity").required(true).args(["cert", "pkcs12"]))
)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) identity: IdentityArgs,

    /// CA bundle (PEM) the certificate must chain to
    #[arg(long, env = "OPENSSL_RELOAD_CA", value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,
}

/// `--client-auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ClientAuthArg {
    /// Every client must present a certificate that chains to --ca
    Required,
    /// A client may present a certificate; if it does, it must chain to --ca
    Optional,
}

/// Parses a duration such as `250ms`, `2s`, `1.5s`, `1m` or `1h`.
///
/// The unit is required: a bare number is ambiguous.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{text}` has no unit; write e.g. 250ms, 2s or 1m"))?;
    let (number, unit) = text.split_at(split);
    let nanos_per_unit = match unit.trim() {
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`; use ms, s, m or h (e.g. 250ms, 2s, 1m)"
            ))
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write e.g. 250ms, 2s or 1m"))?;
    // Whole numbers of nanoseconds below 2^53 are exact in an f64, so `20ms` is
    // exactly 20 ms (a seconds-based float would make it 19.999999 ms).
    let nanos = (value * nanos_per_unit).round();
    if !(0.0..1e18).contains(&nanos) {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// Like [`parse_duration`], refusing zero.
pub(crate) fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!("`{text}` must be greater than zero"));
    }
    Ok(duration)
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
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["", "5", "ms", "1d", "-1s", "1..2s", "1 m s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_positive_duration("0ms").is_err());
    }

    #[test]
    fn serve_defaults() {
        let cli = Cli::try_parse_from(["openssl-reload", "serve"]).unwrap();
        let Command::Serve(serve) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(serve.listen, ["127.0.0.1:8443".parse().unwrap()]);
        assert_eq!(serve.poll_interval, Duration::from_secs(1));
        assert!(serve.identity.cert.is_none());
        assert!(!serve.require_chain_to_ca);
        assert!(serve.tickets.ticket_keys.is_none());
        assert_eq!(serve.tickets.ticket_key_rotation, Duration::from_secs(3600));
        assert_eq!(serve.tickets.ticket_keys_kept, 3);
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
            &["serve", "--ticket-keys", "k", "--ticket-key-rotation", "5m"],
            &["serve", "--ticket-keys", "k", "--ticket-keys-kept", "2"],
            &["serve", "--ticket-keys-kept", "0"],
            &["serve", "--ticket-key-rotation", "0s"],
        ] {
            let argv = std::iter::once("openssl-reload").chain(args.iter().copied());
            assert!(Cli::try_parse_from(argv).is_err(), "{args:?} accepted");
        }
    }
}
