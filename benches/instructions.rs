//! Instructions per in-memory TLS 1.3 handshake, for callgrind: a plain
//! `SslAcceptor` against this crate's front acceptor
//! (`ReloadingAcceptor::builder()...build()`, public API only).
//!
//! Not a benchmark that measures anything by itself: `ci/bench-instructions.sh`
//! runs it under `valgrind --tool=callgrind` and reads the inclusive instruction
//! counts of [`server_side`] (everything the server does: `Ssl::new` on the
//! acceptor's context, every handshake step, the client hello callback) and of
//! [`one_handshake`] (server and client), for two handshake counts, and divides
//! the difference by the difference of the counts, so that one-time costs
//! (OpenSSL's lazy initialisation, the first handshake) cancel.
//!
//! Usage: `instructions STRATEGY CHAIN N` with STRATEGY `static` or
//! `reloading`, CHAIN `no-auto-chain` (`SSL_MODE_NO_AUTO_CHAIN`: the
//! certificate file is served as it is) or `auto-chain` (OpenSSL's default: with
//! a leaf-only file, OpenSSL tries to build the chain from the context's store
//! at every handshake), and N handshakes after 5 warm-up ones.
//!
//! Both strategies get the same settings: Mozilla's intermediate profile (the
//! crate's front and reloaded contexts use it; the static acceptor is built
//! with `SslAcceptor::mozilla_intermediate_v5`), the same session id context,
//! the same policy hook, the same ECDSA P-256 self-signed certificate (a
//! leaf-only file; nothing to chain) and the same client.

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use openssl::error::ErrorStack;
use openssl::ssl::{SslAcceptor, SslConnector, SslContextBuilder, SslMode};

use common::memory::{self, ServerStep, Side};
use common::{client, server_policy, static_acceptor_with, KeyKind, Pair};

/// Everything the server does for a connection goes through here: callgrind's
/// inclusive count of this function is the server's cost.
#[inline(never)]
fn server_side(step: ServerStep<'_>) -> Result<Side, String> {
    step.take()
}

/// One whole handshake, client and server, driven alternately on this thread.
#[inline(never)]
fn one_handshake(acceptor: &SslAcceptor, connector: &SslConnector) {
    memory::local_handshake(acceptor, connector, server_side);
}

fn no_auto_chain(builder: &mut SslContextBuilder) -> Result<(), ErrorStack> {
    server_policy(builder)?;
    builder.set_mode(SslMode::NO_AUTO_CHAIN);
    Ok(())
}

fn usage() -> ! {
    eprintln!("usage: instructions static|reloading no-auto-chain|auto-chain N");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`: no arguments of ours means nothing to do.
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if args.is_empty() {
        println!("instructions: run by ci/bench-instructions.sh under callgrind");
        return;
    }
    let [strategy, chain, n] = args[..] else {
        usage()
    };
    let n: usize = n.parse().unwrap_or_else(|_| usage());
    let policy: fn(&mut SslContextBuilder) -> Result<(), ErrorStack> = match chain {
        "no-auto-chain" => no_auto_chain,
        "auto-chain" => server_policy,
        _ => usage(),
    };
    let pair = Pair::generate(KeyKind::EcdsaP256, 1);
    let dir = tempfile::tempdir().unwrap();
    pair.write_to(dir.path()).unwrap();
    // Kept alive for the whole run: the poller stops when the acceptor drops.
    let reloading;
    let acceptor = match strategy {
        "static" => static_acceptor_with(&pair, policy),
        "reloading" => {
            reloading = openssl_reload::ReloadingAcceptor::builder()
                .identity(dir.path().join("cert.pem"), dir.path().join("key.pem"))
                .poll_interval(Duration::from_secs(3600))
                .policy(policy)
                .build()
                .unwrap();
            reloading.acceptor().clone()
        }
        _ => usage(),
    };
    let connector = client();
    for _ in 0..5 + n {
        one_handshake(&acceptor, &connector);
    }
}
