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
    /// Watched and reloaded with the bundle. Each CRL must be a complete CRL (a
    /// delta CRL is refused), be signed by a CA of the bundle and not be past its
    /// nextUpdate, or the CRLs in service stay (at start-up: exit 78). A changed CRL ends the resumption of sessions verified
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

    /// Worker threads that accept and serve connections (default: one per core)
    ///
    /// Each worker runs its own event loop, as nginx's worker processes do: the
    /// first free worker accepts a new connection, which then stays on it. With
    /// 1, everything runs on the main thread. Without the flag,
    /// TOKIO_WORKER_THREADS is honoured too.
    #[arg(
        long,
        help_heading = "Server",
        env = "OPENSSL_RELOAD_WORKERS",
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    pub(crate) workers: Option<u16>,

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
    pub(crate) limits: LimitArgs,

    #[command(flatten)]
    pub(crate) admin: AdminArgs,

    #[command(flatten)]
    pub(crate) tickets: TicketArgs,
}

/// Resource bounds, for `serve`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Limits")]
pub(crate) struct LimitArgs {
    /// Most client connections open at once, on all --listen addresses together
    ///
    /// At the limit the server stops accepting: new connections wait in the
    /// kernel's listen backlog and are served as open ones close, rather than
    /// failing. The default is the open-file limit (RLIMIT_NOFILE, see `ulimit
    /// -n`) less a reserve of 64 descriptors for the certificate files, the
    /// listeners and the admin port (at least 1). If accepting fails for lack of
    /// file descriptors (EMFILE, ENFILE) the server backs off and logs it at most
    /// once a second, with a count.
    #[arg(
        long,
        env = "OPENSSL_RELOAD_MAX_CONNECTIONS",
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub(crate) max_connections: Option<u32>,

    /// Close a connection that has had no request in flight for this long
    ///
    /// For HTTP/1.1 and HTTP/2 alike: counted from the end of the handshake or of
    /// the last response, whatever the client sends meanwhile (an HTTP/2 client
    /// that only sends SETTINGS or PINGs is idle). HTTP/2 connections get a
    /// GOAWAY first. It also bounds the time an HTTP/1.1 client may take to send
    /// a request's headers. HTTP/2 connections are pinged after 30 s without
    /// traffic (or --idle-timeout, if shorter), and closed when a ping is not
    /// answered within 20 s (or --idle-timeout, if shorter), also while a request
    /// is in flight.
    #[arg(
        long,
        env = "OPENSSL_RELOAD_IDLE_TIMEOUT",
        value_name = "DURATION",
        default_value = "60s",
        value_parser = parse_positive_duration
    )]
    pub(crate) idle_timeout: Duration,

    /// Largest request header block accepted, in bytes (request line and headers; at least 8192)
    ///
    /// Larger requests get 431 over HTTP/1.1; over HTTP/2 it is announced as
    /// SETTINGS_MAX_HEADER_LIST_SIZE and larger requests are refused.
    #[arg(
        long,
        env = "OPENSSL_RELOAD_MAX_HEADER_SIZE",
        value_name = "BYTES",
        default_value_t = 16384,
        value_parser = clap::value_parser!(u32).range(8192..=1_048_576)
    )]
    pub(crate) max_header_size: u32,

    /// Most requests in flight at once on one HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS)
    #[arg(
        long,
        env = "OPENSSL_RELOAD_MAX_CONCURRENT_STREAMS",
        value_name = "N",
        default_value_t = 100,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub(crate) max_concurrent_streams: u32,
}

/// The admin endpoints and diagnostics, for `serve`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Admin")]
pub(crate) struct AdminArgs {
    /// Serve /status and /metrics on this address only, not on the --listen ones
    ///
    /// On a loopback address (127.0.0.0/8, ::1) they are served over plain HTTP
    /// (HTTP/1.1, or HTTP/2 with prior knowledge); on any other address over
    /// HTTPS with the serving certificate. The public addresses then answer 404
    /// for them. At most 64 admin connections are open at once, apart from
    /// --max-connections. Without this flag /status and /metrics are served on
    /// every --listen address.
    #[arg(long, env = "OPENSSL_RELOAD_ADMIN_LISTEN", value_name = "ADDR")]
    pub(crate) admin_listen: Option<SocketAddr>,

    /// Enable the diagnostic endpoint /slow?ms=N (off by default)
    #[arg(
        long,
        env = "OPENSSL_RELOAD_DIAGNOSTICS",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub(crate) diagnostics: bool,
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
        assert_eq!(serve.limits.max_connections, None);
        assert_eq!(serve.limits.idle_timeout, Duration::from_secs(60));
        assert_eq!(serve.limits.max_header_size, 16384);
        assert_eq!(serve.limits.max_concurrent_streams, 100);
        assert!(serve.admin.admin_listen.is_none());
        assert!(!serve.admin.diagnostics);
    }
}
