//! `openssl-reload serve`: listeners, TLS handshakes with a timeout, HTTP/1.1 and
//! HTTP/2 through hyper, SIGHUP reloads, and graceful shutdown on SIGTERM/SIGINT.
//!
//! `run` starts the server and sees it through to its end; `tls` holds the TLS
//! policy and the flags' settings on the acceptor, `listeners` binds the
//! addresses and spawns an accept loop on each, `workers` runs the worker
//! threads, `accept` accepts within the connection limit (`accept4` makes the
//! call itself), `anchor` spares each connection a wake-up, `connections`
//! handshakes and serves HTTP with the idle timeout, `signals` installs the
//! signal handlers, `sighup` reloads on SIGHUP, `shutdown` stops gracefully,
//! `banner` prints where the development certificate is.

mod accept;
mod accept4;
mod anchor;
mod banner;
mod connections;
mod listeners;
mod run;
mod shutdown;
mod sighup;
mod signals;
mod tls;
mod workers;

pub(crate) use run::run;
