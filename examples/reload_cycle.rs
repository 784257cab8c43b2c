//! A reload workload for memory checkers (`ci/valgrind.sh` runs it under memcheck).
//!
//! Serves TLS from a [`ReloadingAcceptor`] on a plain blocking socket and reloads
//! it CYCLES times (default 200), alternating two certificates: each cycle renames
//! new files into place and calls `reload_now`, while the poller (20 ms) races it
//! for the same files. Every fifth cycle a client handshakes and checks that the
//! certificate it receives is the one just written. Everything is dropped before
//! `main` returns, so a leak checker sees only what the crate fails to free.
//!
//! ```text
//! cargo run --example reload_cycle -- [CYCLES]
//! ```

use std::error::Error;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use openssl_reload::openssl::asn1::Asn1Time;
use openssl_reload::openssl::bn::BigNum;
use openssl_reload::openssl::ec::{EcGroup, EcKey};
use openssl_reload::openssl::hash::MessageDigest;
use openssl_reload::openssl::nid::Nid;
use openssl_reload::openssl::pkey::{PKey, Private};
use openssl_reload::openssl::ssl::{SslConnector, SslMethod};
use openssl_reload::openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
use openssl_reload::openssl::x509::{X509Name, X509};
use openssl_reload::ReloadingAcceptor;

const HANDSHAKE_EVERY: usize = 5;

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

fn main() -> Result<()> {
    let cycles: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200);
    let dir = tempfile::tempdir()?;
    let (ca_cert, ca_key) = certificate("reload-cycle CA", 1, None)?;
    let pairs = [
        certificate("a.localhost", 2, Some((&ca_cert, &ca_key)))?,
        certificate("b.localhost", 3, Some((&ca_cert, &ca_key)))?,
    ];
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    write_pair(dir.path(), &pairs[0])?;

    let tls = ReloadingAcceptor::builder(&cert, &key)
        .poll_interval(Duration::from_millis(20))
        .build()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let handshakes = cycles.div_ceil(HANDSHAKE_EVERY);
    let server = {
        let tls = tls.clone();
        std::thread::spawn(move || -> Result<()> {
            for _ in 0..handshakes {
                let (tcp, _) = listener.accept()?;
                let mut stream = tls.acceptor().accept(tcp)?;
                let mut buf = [0; 4];
                stream.read_exact(&mut buf)?;
                stream.write_all(&buf)?;
                stream.shutdown()?;
            }
            Ok(())
        })
    };
    let connector = {
        let mut builder = SslConnector::builder(SslMethod::tls_client())?;
        builder.cert_store_mut().add_cert(ca_cert)?;
        builder.build()
    };

    for i in 0..cycles {
        let pair = &pairs[(i + 1) % 2];
        write_pair(dir.path(), pair)?;
        // `Unchanged` when the poller published these files first.
        tls.reload_now()?;
        if i % HANDSHAKE_EVERY == 0 {
            let mut stream = connector.connect("localhost", TcpStream::connect(addr)?)?;
            stream.write_all(b"ping")?;
            let mut buf = [0; 4];
            stream.read_exact(&mut buf)?;
            let served = stream.ssl().peer_certificate().ok_or("no certificate")?;
            if served.serial_number().to_bn()? != pair.0.serial_number().to_bn()? {
                return Err(format!("cycle {i}: the previous certificate was served").into());
            }
        }
    }
    server.join().map_err(|_| "server thread panicked")??;
    let status = tls.status();
    println!(
        "{cycles} cycles, {handshakes} handshakes, generation {}, {} reloads, {} failures",
        status.generation, status.reloads, status.failures
    );
    Ok(())
}

/// A P-256 certificate for `cn` (and `localhost`), signed by `issuer` or self-signed as a CA.
fn certificate(
    cn: &str,
    serial: u32,
    issuer: Option<(&X509, &PKey<Private>)>,
) -> Result<(X509, PKey<Private>)> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let mut name = X509Name::builder()?;
    name.append_entry_by_text("CN", cn)?;
    let name = name.build();
    let mut builder = X509::builder()?;
    builder.set_version(2)?;
    let serial = BigNum::from_u32(serial)?.to_asn1_integer()?;
    let (not_before, not_after) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(30)?);
    builder.set_serial_number(&serial)?;
    builder.set_subject_name(&name)?;
    builder.set_pubkey(&key)?;
    builder.set_not_before(&not_before)?;
    builder.set_not_after(&not_after)?;
    let cert = match issuer {
        Some((ca_cert, ca_key)) => {
            builder.set_issuer_name(ca_cert.subject_name())?;
            let san = SubjectAlternativeName::new()
                .dns("localhost")
                .build(&builder.x509v3_context(Some(ca_cert), None))?;
            builder.append_extension(san)?;
            builder.sign(ca_key, MessageDigest::sha256())?;
            builder.build()
        }
        None => {
            builder.set_issuer_name(&name)?;
            builder.append_extension(BasicConstraints::new().critical().ca().build()?)?;
            builder.sign(&key, MessageDigest::sha256())?;
            builder.build()
        }
    };
    Ok((cert, key))
}

/// Writes `cert.pem` and `key.pem` in `dir`, each by rename.
fn write_pair(dir: &Path, (cert, key): &(X509, PKey<Private>)) -> Result<()> {
    for (name, bytes) in [
        ("cert.pem", cert.to_pem()?),
        ("key.pem", key.private_key_to_pem_pkcs8()?),
    ] {
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, dir.join(name))?;
    }
    Ok(())
}
