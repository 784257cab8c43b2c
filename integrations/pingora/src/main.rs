//! A Pingora HTTPS server whose certificates reload, one site per CERT KEY
//! pair chosen by SNI (the first for unknown names), and with `--ca` client
//! certificates required:
//!
//! ```text
//! openssl-reload-pingora ADDR CERT KEY [CERT KEY]... [--ca CA]
//! ```

use std::process::ExitCode;

use openssl_reload::{ClientAuth, ReloadingAcceptor};
use pingora_core::server::Server;

const USAGE: &str = "usage: openssl-reload-pingora ADDR CERT KEY [CERT KEY]... [--ca CA]";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let ca = match args.iter().position(|a| a == "--ca") {
        Some(i) if i + 1 < args.len() => Some(args.drain(i..=i + 1).nth(1).unwrap_or_default()),
        Some(_) => return usage(),
        None => None,
    };
    let [addr, sites @ ..] = args.as_slice() else {
        return usage();
    };
    if sites.is_empty() || sites.len() % 2 != 0 {
        return usage();
    }
    match run(addr, sites, ca.as_deref()) {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("openssl-reload-pingora: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

/// Builds the reloader and runs Pingora, which returns only by exiting.
fn run(
    addr: &str,
    sites: &[String],
    ca: Option<&str>,
) -> Result<std::convert::Infallible, Box<dyn std::error::Error>> {
    let mut builder = ReloadingAcceptor::builder();
    for pair in sites.chunks(2) {
        builder = builder.site(&pair[0], &pair[1]);
    }
    if let Some(ca) = ca {
        builder = builder.ca(ca).client_auth(ClientAuth::Required);
    }
    let tls = builder.build()?; // names the file it could not load
    let settings = openssl_reload_pingora::tls_settings(&tls)?;
    let mut server = Server::new(None)?;
    server.bootstrap();
    server.add_service(openssl_reload_pingora::service(addr, settings));
    println!("serving HTTPS on {addr}");
    server.run_forever()
}
