//! The flags of `openssl-reload serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::duration::{parse_duration, parse_positive_duration};
use super::{ClientAuthArg, CrlCheckArg, IdentityArgs, StaleCrlArg};

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

    /// CRL file of the --ca bundle's CAs (PEM, one or more CRLs, or DER): revoked clients are refused
    ///
    /// Watched and reloaded with the bundle. Each CRL must be signed by a CA of the
    /// bundle and not be past its nextUpdate, or the CRLs in service stay (at
    /// start-up: exit 1). A changed CRL ends the resumption of sessions verified
    /// before it. With --crl-check leaf (the default) the file needs a CRL of each
    /// CA that issues clients, or their handshakes fail.
    #[arg(long, env = "OPENSSL_RELOAD_CRL", value_name = "FILE", requires = "ca")]
    pub(crate) crl: Option<PathBuf>,

    /// Which certificates of a client's chain the --crl is checked for (default: leaf)
    #[arg(
        long,
        env = "OPENSSL_RELOAD_CRL_CHECK",
        value_enum,
        requires = "crl",
        value_name = "WHICH"
    )]
    pub(crate) crl_check: Option<CrlCheckArg>,

    /// What a CRL in service does once past its nextUpdate (default: enforce)
    ///
    /// enforce: revoked clients stay refused, others are accepted, and a warning is
    /// logged once, until a fresh CRL is published. refuse: every client the stale
    /// CRL covers is refused until then.
    #[arg(
        long,
        env = "OPENSSL_RELOAD_STALE_CRL",
        value_enum,
        requires = "crl",
        value_name = "POLICY"
    )]
    pub(crate) stale_crl: Option<StaleCrlArg>,

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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn serve_defaults() {
        let cli = Cli::try_parse_from(["openssl-reload", "serve"]).unwrap();
        let Command::Serve(serve) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(serve.listen, ["127.0.0.1:8443".parse().unwrap()]);
        assert_eq!(serve.poll_interval, Duration::from_secs(1));
        assert!(serve.identity.cert.is_empty());
        assert!(!serve.require_chain_to_ca);
        assert!(serve.tickets.ticket_keys.is_none());
        assert_eq!(serve.tickets.ticket_key_rotation, Duration::from_secs(3600));
        assert_eq!(serve.tickets.ticket_keys_kept, 3);
    }
}
