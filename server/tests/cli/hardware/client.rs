//! The connector's client key in a SoftHSM2 token: mutual TLS to the binary
//! with `ReloadingConnector::builder().identity_uri(...)`, in this process.

use std::io::{Read, Write};
use std::net::TcpStream;

use openssl_reload::{KeyUri, Passphrase, ReloadingConnector};

use super::{Fixture, Site};
use crate::harness::Server;

#[test]
#[ignore = "needs a SoftHSM2 token: run by ci/hardware-keys.sh"]
fn a_client_key_in_a_token_authenticates_the_connector() {
    let hsm = Fixture::load("env");
    let site = Site::new(hsm.var("HSM_PIN"));
    site.certify(&hsm.public_key("HSM_EC_CERT"), 13_001);
    std::fs::create_dir(site.path("server")).unwrap();
    let (server_cert, server_key) = site.ca.leaf("localhost").write(&site.path("server"));
    crate::fixture::private(&server_key);
    let ca = site.ca_pem.display().to_string();
    let server = Server::start(&[
        "--listen",
        "127.0.0.1:0",
        "--cert",
        server_cert.to_str().unwrap(),
        "--key",
        server_key.to_str().unwrap(),
        "--ca",
        &ca,
        "--client-auth",
        "required",
    ]);
    let client = ReloadingConnector::builder()
        .identity_uri(&site.cert, KeyUri::new(hsm.var("HSM_EC_URI")).unwrap())
        .passphrase(Passphrase::from_file(&site.pin))
        .ca(&site.ca_pem)
        .build()
        .unwrap();
    let status = client.status();
    let key = status.key.as_ref().expect("the key's status");
    assert!(key.available && key.opened == 1, "{key:?}");

    let tcp = TcpStream::connect(server.addr).unwrap();
    let mut tls = client.connector().connect("localhost", tcp).unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    tls.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}
