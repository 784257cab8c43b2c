//! The `openssl-reload` binary, spawned for real and driven with curl and
//! `openssl s_client` from PATH.
//!
//! Every server listens on `127.0.0.1:0`; the test reads the bound address from the
//! server's "listening" log line, so there is no port race. Waits are deadline
//! loops; a server is killed when its guard drops, also when a test fails.
//! Without curl or openssl the tests are skipped with a note, except under CI
//! (`CI` set), where they fail.

/// The test helpers every suite shares: certificates, file writes, deadlines.
#[path = "../../../tests/support/mod.rs"]
mod support;

// Helpers of this suite.

/// curl and `openssl s_client`.
mod clients;
/// A CA, a leaf and its key in a temp dir.
mod fixture;
/// The command, a running server killed on drop, deadline loops.
mod harness;
/// A strict Prometheus text-format parser, for `/metrics`.
mod prometheus;

// The tests.

/// `--admin-listen`: /status and /metrics there, 404 on the public port; /slow.
mod admin;
/// The C library from C programs under valgrind (run by ci/capi.sh).
mod capi;
/// `openssl-reload check` and its exit statuses.
mod check;
/// `--crl`: revoked clients, the CRL in `/status` and `/metrics`, `check --crl`.
mod crl;
/// Keys in hardware: SoftHSM2 and a software TPM (run by ci/hardware-keys.sh).
mod hardware;
/// HTTP/2 and HTTP/1.1, `/metrics`, `/status`, mutual TLS, the chain to the CA.
mod http;
/// Idle timeouts, the connection limit, running out of file descriptors.
mod limits;
/// The nginx module in Debian's nginx (run by ci/nginx.sh).
mod nginx;
/// OCSP staples: `s_client -status`, rotation, bad files, `/status`, `check`.
mod ocsp;
/// Rotation within the poll interval, SIGHUP, bad replacements.
mod reload;
/// Graceful shutdown on SIGTERM.
mod shutdown;
/// Many sites by SNI: --cert-dir, repeated --cert/--key, --strict-sni, check on a directory.
mod sites;
/// The development certificate, the environment, start-up errors, `--help`.
mod startup;
/// Session ticket keys: shared by a fleet, reread on SIGHUP, rotated in memory.
mod tickets;
