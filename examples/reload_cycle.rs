//! A reload workload for memory checkers (`ci/valgrind.sh` runs it under memcheck).
//!
//! Serves mutual TLS from a [`ReloadingAcceptor`] on a plain blocking socket and
//! reloads it CYCLES times (default 200), alternating two certificates: each cycle
//! renames new files into place and calls `reload_now`, while the poller (20 ms)
//! races it for the same files. Every tenth cycle the client CA bundle changes
//! (one CA more or less), every fortieth the CRL file (two CRLs of the CA,
//! one revoking a serial nobody presents, so `X509_STORE_add_crl` and the CRL
//! check run), and the session ticket keys rotate every 100 ms. Each
//! certificate comes with its OCSP staple (`cert.pem.ocsp`, made by the
//! `openssl ocsp` command), so the staple checks run at every reload. Every
//! fifth cycle a client handshakes, offering its last session and asking for a
//! staple, and checks that the certificate and staple it receives are the ones
//! just written; so the ticket key callback, the session-to-trust binding,
//! declined sessions and the status callback all run. A second handshake, with
//! a session of its own, goes to an application context the acceptor is
//! attached to (its own session id context, read back at attach, and its own
//! verify callback, which the stale-CRL rule chains to, as it does to the
//! policy's on the acceptor), so the attach path's session calls run too.
//! Everything is dropped before `main` returns, so a leak checker sees only what
//! the crate fails to free.
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
use openssl_reload::openssl::ssl::{
    SslAcceptor, SslConnector, SslMethod, SslSession, SslVerifyMode, StatusType,
};
use openssl_reload::openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, CrlNumber, SubjectAlternativeName,
};
use openssl_reload::openssl::x509::{X509CrlBuilder, X509Name, X509RevokedBuilder, X509};
use openssl_reload::{ClientAuth, ReloadingAcceptor};

const HANDSHAKE_EVERY: usize = 5;

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

fn main() -> Result<()> {
    let cycles: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200);
    let dir = tempfile::tempdir()?;
    let material = Material::mint(dir.path())?;
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ca_file = dir.path().join("ca.pem");
    write_pair(dir.path(), &material, 0)?;
    write_file(&ca_file, &material.bundles[0])?;
    let crl_file = dir.path().join("ca.crl");
    write_file(&crl_file, &material.crls[0])?;

    let required = SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT;
    let tls = ReloadingAcceptor::builder()
        .identity(&cert, &key)
        .ca(&ca_file)
        .crl(&crl_file)
        .client_auth(ClientAuth::Required)
        .ticket_key_rotation(Duration::from_millis(100), 10)
        .poll_interval(Duration::from_millis(20))
        .policy(move |ctx| {
            ctx.set_verify_callback(required, |ok, _| ok);
            Ok(())
        })
        .build()?;
    let mut app = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    app.set_session_id_context(b"reload_cycle")?;
    app.set_verify_callback(required, |ok, _| ok);
    tls.attach(&mut app)?;
    let app = app.build();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let handshakes = 2 * cycles.div_ceil(HANDSHAKE_EVERY);
    let server = serve(tls.clone(), app, listener, handshakes);
    let connector = material.client()?;

    // One session for each way of serving: a session binds to the context.
    let (mut sessions, mut resumed): ([Option<SslSession>; 2], usize) = ([None, None], 0);
    for i in 0..cycles {
        let pair = &material.pairs[(i + 1) % 2];
        write_pair(dir.path(), &material, (i + 1) % 2)?;
        if i % 10 == 0 {
            write_file(&ca_file, &material.bundles[(i / 10) % 2])?;
        }
        if i % 40 == 25 {
            write_file(&crl_file, &material.crls[(i / 40 + 1) % 2])?;
        }
        // `Unchanged` when the poller published these files first.
        tls.reload_now()?;
        if i % HANDSHAKE_EVERY == 0 {
            let staple = &material.staples[(i + 1) % 2];
            for session in &mut sessions {
                let (next, reused) = handshake(&connector, addr, session.as_ref(), &pair.0, staple)
                    .map_err(|e| format!("cycle {i}: {e}"))?;
                *session = next;
                resumed += usize::from(reused);
            }
        }
    }
    server.join().map_err(|_| "server thread panicked")??;
    let status = tls.status();
    println!(
        "{cycles} cycles, {handshakes} handshakes ({resumed} resumed), generation {}, {} reloads, {} failures, {} ticket key rotations",
        status.generation,
        status.reloads,
        status.failures,
        tls.ticket_keys().rotations
    );
    Ok(())
}

/// The certificates of the run: a CA, the two server pairs the cycles alternate,
/// a client pair, and the two client CA bundles (the CA alone, and with another).
struct Material {
    ca_cert: X509,
    pairs: [(X509, PKey<Private>); 2],
    client_pair: (X509, PKey<Private>),
    bundles: [Vec<u8>; 2],
    /// PEM files of the CA's CRLs: one empty, one revoking serial 99 too.
    crls: [Vec<u8>; 2],
    /// The pairs' OCSP staples (DER), made by `openssl ocsp`.
    staples: [Vec<u8>; 2],
}

impl Material {
    fn mint(dir: &Path) -> Result<Self> {
        let (ca_cert, ca_key) = certificate("reload-cycle CA", 1, None)?;
        let pairs = [
            certificate("a.localhost", 2, Some((&ca_cert, &ca_key)))?,
            certificate("b.localhost", 3, Some((&ca_cert, &ca_key)))?,
        ];
        let client_pair = certificate("client.localhost", 4, Some((&ca_cert, &ca_key)))?;
        let (other_ca, _) = certificate("reload-cycle other CA", 5, None)?;
        let bundles = [
            ca_cert.to_pem()?,
            [ca_cert.to_pem()?, other_ca.to_pem()?].concat(),
        ];
        let crls = [
            crl(&ca_cert, &ca_key, &[], 1)?,
            [
                crl(&ca_cert, &ca_key, &[99], 2)?,
                crl(&ca_cert, &ca_key, &[98], 3)?,
            ]
            .concat(),
        ];
        let staples = [
            staple(dir, &ca_cert, &ca_key, &pairs[0].0)?,
            staple(dir, &ca_cert, &ca_key, &pairs[1].0)?,
        ];
        Ok(Self {
            ca_cert,
            pairs,
            client_pair,
            bundles,
            crls,
            staples,
        })
    }

    /// A client that trusts the CA and presents the client pair.
    fn client(&self) -> Result<SslConnector> {
        let mut builder = SslConnector::builder(SslMethod::tls_client())?;
        builder.cert_store_mut().add_cert(self.ca_cert.clone())?;
        builder.set_certificate(&self.client_pair.0)?;
        builder.set_private_key(&self.client_pair.1)?;
        Ok(builder.build())
    }
}

/// A server thread that accepts `handshakes` connections on `listener`, the
/// even ones through the acceptor and the odd ones through the attached
/// application context, echoes four bytes on each and closes it.
fn serve(
    tls: ReloadingAcceptor,
    app: SslAcceptor,
    listener: TcpListener,
    handshakes: usize,
) -> std::thread::JoinHandle<Result<()>> {
    std::thread::spawn(move || -> Result<()> {
        for n in 0..handshakes {
            let (tcp, _) = listener.accept()?;
            let acceptor = if n % 2 == 0 { tls.acceptor() } else { &app };
            let mut stream = acceptor.accept(tcp)?;
            let mut buf = [0; 4];
            stream.read_exact(&mut buf)?;
            stream.write_all(&buf)?;
            stream.shutdown()?;
        }
        Ok(())
    })
}

/// One client exchange offering `session`; checks that `expected` was served
/// (a resumed session keeps the certificate of its full handshake, so only a
/// full handshake is checked) and returns the new session and whether it resumed.
fn handshake(
    connector: &SslConnector,
    addr: std::net::SocketAddr,
    session: Option<&SslSession>,
    expected: &X509,
    staple: &[u8],
) -> Result<(Option<SslSession>, bool)> {
    let mut ssl = connector.configure()?.into_ssl("localhost")?;
    ssl.set_status_type(StatusType::OCSP)?;
    if let Some(session) = session {
        // SAFETY: the session comes from a connection of this same connector.
        #[allow(unsafe_code)]
        unsafe {
            ssl.set_session(session)?;
        }
    }
    let mut stream = ssl
        .connect(TcpStream::connect(addr)?)
        .map_err(|e| e.to_string())?;
    stream.write_all(b"ping")?;
    let mut buf = [0; 4];
    stream.read_exact(&mut buf)?;
    let reused = stream.ssl().session_reused();
    let served = stream.ssl().peer_certificate().ok_or("no certificate")?;
    if !reused && served.serial_number().to_bn()? != expected.serial_number().to_bn()? {
        return Err("the previous certificate was served".into());
    }
    if !reused && stream.ssl().ocsp_status() != Some(staple) {
        return Err("the certificate's staple was not sent".into());
    }
    let _ = stream.shutdown();
    Ok((stream.ssl().session().map(ToOwned::to_owned), reused))
}

/// A DER OCSP response for `cert`, good for a day, signed by the CA: what
/// `openssl ocsp -index ... -respout` makes.
fn staple(dir: &Path, ca: &X509, key: &PKey<Private>, cert: &X509) -> Result<Vec<u8>> {
    let serial = cert.serial_number().to_bn()?.to_hex_str()?.to_string();
    let files = [
        ("ocsp-ca.pem", ca.to_pem()?),
        ("ocsp-ca.key", key.private_key_to_pem_pkcs8()?),
        ("ocsp-cert.pem", cert.to_pem()?),
        (
            "ocsp-index.txt",
            format!("V\t491231000000Z\t\t{serial}\tunknown\t/CN=x\n").into_bytes(),
        ),
    ];
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes)?;
    }
    let out = dir.join("ocsp.der");
    let status = std::process::Command::new("openssl")
        .arg("ocsp")
        .args([
            "-index",
            "ocsp-index.txt",
            "-CA",
            "ocsp-ca.pem",
            "-issuer",
            "ocsp-ca.pem",
        ])
        .args([
            "-rsigner",
            "ocsp-ca.pem",
            "-rkey",
            "ocsp-ca.key",
            "-cert",
            "ocsp-cert.pem",
        ])
        .args(["-ndays", "1", "-respout", "ocsp.der"])
        .current_dir(dir)
        .output()?;
    if !status.status.success() {
        return Err(format!("openssl ocsp: {}", String::from_utf8_lossy(&status.stderr)).into());
    }
    Ok(std::fs::read(out)?)
}

/// A PEM CRL of `ca` revoking `serials`, valid for a day.
fn crl(ca: &X509, key: &PKey<Private>, serials: &[u32], number: u32) -> Result<Vec<u8>> {
    let mut builder = X509CrlBuilder::new()?;
    builder.set_issuer_name(ca.subject_name())?;
    builder.set_last_update(&*Asn1Time::days_from_now(0)?)?;
    builder.set_next_update(&*Asn1Time::days_from_now(1)?)?;
    builder.append_extension(CrlNumber::new(BigNum::from_u32(number)?)?.build()?)?;
    // The openssl crate's builder wants one; the issuer's name and serial do.
    let context = X509::builder()?;
    let aki = AuthorityKeyIdentifier::new()
        .issuer(true)
        .build(&context.x509v3_context(Some(ca), None))?;
    builder.append_extension(aki)?;
    for serial in serials {
        let mut revoked = X509RevokedBuilder::new()?;
        revoked.set_serial_number(&*BigNum::from_u32(*serial)?.to_asn1_integer()?)?;
        revoked.set_revocation_date(&*Asn1Time::days_from_now(0)?)?;
        builder.add_revoked(revoked.build())?;
    }
    builder.sign(key, MessageDigest::sha256())?;
    Ok(builder.build()?.to_pem()?)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
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

/// Writes `cert.pem` (the leaf, then its issuer, which the staple check
/// needs), `key.pem` and `cert.pem.ocsp` in `dir`, each by rename.
fn write_pair(dir: &Path, material: &Material, i: usize) -> Result<()> {
    let (cert, key) = &material.pairs[i];
    for (name, bytes) in [
        (
            "cert.pem",
            [cert.to_pem()?, material.ca_cert.to_pem()?].concat(),
        ),
        ("key.pem", key.private_key_to_pem_pkcs8()?),
        ("cert.pem.ocsp", material.staples[i].clone()),
    ] {
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, dir.join(name))?;
    }
    Ok(())
}
