//! A gRPC node over mutual TLS whose certificates and CA bundle reload:
//!
//! ```text
//! openssl-reload-tonic serve CERT KEY CA [ADDR]      (ADDR: 127.0.0.1:50051)
//! openssl-reload-tonic call CERT KEY CA URL [NAME]   (NAME: localhost)
//! ```
//!
//! `serve` answers `reload.Peer/WhoAmI` for clients whose certificate chains to
//! CA; `call` calls it with its own certificate, every second, and prints the
//! serial the server saw.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use openssl_reload::{ClientAuth, ReloadingAcceptor, ReloadingConnector};
use openssl_reload_tonic::{PeerClient, WhoAmIRequest};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};

const USAGE: &str = "usage: openssl-reload-tonic serve CERT KEY CA [ADDR]\n       \
                     openssl-reload-tonic call CERT KEY CA URL [NAME]";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let outcome = match args.as_slice() {
        ["serve", cert, key, ca, rest @ ..] if rest.len() <= 1 => {
            serve(cert, key, ca, rest.first().unwrap_or(&"127.0.0.1:50051")).await
        }
        ["call", cert, key, ca, url, rest @ ..] if rest.len() <= 1 => {
            call(cert, key, ca, url, rest.first().unwrap_or(&"localhost")).await
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openssl-reload-tonic: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

async fn serve(cert: &str, key: &str, ca: &str, addr: &str) -> Result<()> {
    let addr: SocketAddr = addr.parse().map_err(|e| format!("address {addr}: {e}"))?;
    let tls = ReloadingAcceptor::builder()
        .identity(cert, key)
        .ca(ca)
        .client_auth(ClientAuth::Required)
        .build()?; // names the file it could not load
    let incoming = TcpIncoming::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    println!("serving gRPC on {addr}");
    // New connections every 10 minutes at most: each is verified against the CA bundle in service.
    let server = Server::builder().max_connection_age(Duration::from_secs(600));
    openssl_reload_tonic::serve(server, incoming, &tls, std::future::pending()).await?;
    Ok(())
}

async fn call(cert: &str, key: &str, ca: &str, url: &str, name: &str) -> Result<()> {
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| format!("{url}: {e}"))?;
    let client = ReloadingConnector::builder()
        .identity(cert, key)
        .ca(ca)
        .build()?;
    let channel = openssl_reload_tonic::connect(endpoint, &client, name).await?;
    let mut peer = PeerClient::new(channel);
    loop {
        let reply = peer.who_am_i(WhoAmIRequest {}).await?.into_inner();
        println!("the server saw client certificate {}", reply.client_serial);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
