//! `openssl-reload-axum-server CERT KEY [ADDR]`: axum-server over TLS whose
//! certificate follows CERT and KEY (checked every second).

use std::net::SocketAddr;
use std::process::ExitCode;

use openssl_reload::ReloadingAcceptor;

const USAGE: &str = "usage: openssl-reload-axum-server CERT KEY [ADDR]   (ADDR: 127.0.0.1:8443)";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cert, key, addr) = match args.as_slice() {
        [cert, key] => (cert, key, "127.0.0.1:8443"),
        [cert, key, addr] => (cert, key, addr.as_str()),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        eprintln!("not an address: {addr}\n{USAGE}");
        return ExitCode::from(2);
    };
    // A bad file is an error that names it; nothing is served then.
    let tls = ReloadingAcceptor::builder()
        .identity(cert, key)
        .policy(openssl_reload_axum_server::alpn_h2_http1) // h2 for clients that offer it
        .build();
    let tls = match tls {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("openssl-reload-axum-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("serving https://{addr}/ from {cert} and {key}");
    let handle = axum_server::Handle::new();
    match openssl_reload_axum_server::serve(&tls, addr, handle).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openssl-reload-axum-server: {e}");
            ExitCode::FAILURE
        }
    }
}
