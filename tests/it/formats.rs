//! Every key format and algorithm the crate promises, passphrase sources, DER and
//! PKCS#12, each loaded and served over a real handshake.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use openssl::pkcs12::Pkcs12;
use openssl::symm::Cipher;
use openssl_reload::{
    Error, Passphrase, PassphraseProblem, ReloadingAcceptor, ReloadingAcceptorBuilder,
};

use crate::support::{self, exchange, Alg, Ca, Leaf, LeafSpec, INTERVAL};

const PASS: &str = "correct horse battery staple";

/// Builds, serves one handshake, and checks the leaf's serial was served.
async fn serves(ca: &Ca, leaf: &Leaf, builder: ReloadingAcceptorBuilder) {
    let tls = builder
        .poll_interval(INTERVAL)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let server = support::serve(tls.clone()).await;
    let seen = exchange(&support::client(&ca.pem()), server.addr, None)
        .await
        .unwrap();
    assert_eq!(seen.serial, leaf.serial);
    assert_eq!(tls.status().certificate.unwrap().serial, leaf.serial);
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test]
async fn every_algorithm_in_pkcs8_pem() {
    let ca = Ca::new("alg CA");
    for alg in [Alg::Rsa2048, Alg::P256, Alg::P384, Alg::Ed25519] {
        let dir = tempfile::tempdir().unwrap();
        let leaf = ca.leaf_with(LeafSpec::new(&format!("{alg:?}")).alg(alg));
        let (cert, key) = leaf.write(dir.path());
        serves(&ca, &leaf, ReloadingAcceptor::builder().identity(cert, key)).await;
    }
}

/// One row of [`every_key_encoding`]: a name, the leaf, its key so encoded, and
/// the passphrase that opens it.
type KeyEncoding<'a> = (&'static str, &'a Leaf, Vec<u8>, Passphrase);

#[tokio::test]
async fn every_key_encoding() {
    let ca = Ca::new("encoding CA");
    let rsa = ca.leaf_with(LeafSpec::new("rsa").alg(Alg::Rsa2048));
    let ec = ca.leaf_with(LeafSpec::new("ec").alg(Alg::P384));
    let ed = ca.leaf_with(LeafSpec::new("ed").alg(Alg::Ed25519));
    let mut cases = plain_key_encodings(&rsa, &ec, &ed);
    cases.extend(encrypted_key_encodings(&rsa, &ec, &ed));
    for (name, leaf, key_bytes, pass) in cases {
        let dir = tempfile::tempdir().unwrap();
        let cert = write(dir.path(), "cert.pem", &leaf.cert_pem());
        let key = write(dir.path(), "key", &key_bytes);
        eprintln!("{name}");
        serves(
            &ca,
            leaf,
            ReloadingAcceptor::builder()
                .identity(cert, key)
                .passphrase(pass),
        )
        .await;
    }
}

/// Unencrypted keys: PKCS#1 and SEC1, PEM and DER, and PKCS#8 DER.
fn plain_key_encodings<'a>(rsa: &'a Leaf, ec: &'a Leaf, ed: &'a Leaf) -> Vec<KeyEncoding<'a>> {
    let rsa_key = rsa.key.rsa().unwrap();
    let ec_key = ec.key.ec_key().unwrap();
    [
        ("PKCS#1 PEM", rsa, rsa_key.private_key_to_pem().unwrap()),
        ("PKCS#1 DER", rsa, rsa_key.private_key_to_der().unwrap()),
        ("SEC1 PEM", ec, ec_key.private_key_to_pem().unwrap()),
        ("SEC1 DER", ec, ec_key.private_key_to_der().unwrap()),
        ("PKCS#8 DER", ed, ed.key.private_key_to_pkcs8().unwrap()),
    ]
    .into_iter()
    .map(|(name, leaf, bytes)| (name, leaf, bytes, Passphrase::none()))
    .collect()
}

/// Keys encrypted with [`PASS`] (AES-256-CBC): PKCS#8 PEM and DER, and
/// traditional PEM.
fn encrypted_key_encodings<'a>(rsa: &'a Leaf, ec: &'a Leaf, ed: &'a Leaf) -> Vec<KeyEncoding<'a>> {
    let (aes, pass) = (Cipher::aes_256_cbc(), PASS.as_bytes());
    let rsa_key = rsa.key.rsa().unwrap();
    [
        (
            "encrypted PKCS#8 PEM (PBES2, AES-256-CBC)",
            rsa,
            rsa.key.private_key_to_pem_pkcs8_passphrase(aes, pass),
        ),
        (
            "traditional encrypted PEM (Proc-Type 4,ENCRYPTED)",
            rsa,
            rsa_key.private_key_to_pem_passphrase(aes, pass),
        ),
        (
            "encrypted PKCS#8 DER",
            ec,
            ec.key.private_key_to_pkcs8_passphrase(aes, pass),
        ),
        (
            "encrypted Ed25519 PKCS#8 PEM",
            ed,
            ed.key.private_key_to_pem_pkcs8_passphrase(aes, pass),
        ),
    ]
    .into_iter()
    .map(|(name, leaf, bytes)| (name, leaf, bytes.unwrap(), Passphrase::from_bytes(PASS)))
    .collect()
}

#[tokio::test]
async fn der_certificate_and_chain_with_intermediate() {
    let root = Ca::new("root CA");
    let inter = root.intermediate("intermediate CA");
    let mut leaf = inter.leaf("chained");
    leaf.chain = vec![inter.cert.clone()];
    let dir = tempfile::tempdir().unwrap();
    // PEM chain: leaf then intermediate; the client trusts only the root.
    let (cert, key) = leaf.write(dir.path());
    serves(
        &root,
        &leaf,
        ReloadingAcceptor::builder().identity(&cert, &key),
    )
    .await;
    // A lone DER certificate (no chain) loads as well.
    let der = write(dir.path(), "cert.der", &leaf.cert.to_der().unwrap());
    let tls = ReloadingAcceptor::builder()
        .identity(der, &key)
        .build()
        .unwrap();
    assert_eq!(tls.status().certificate.unwrap().serial, leaf.serial);
}

#[tokio::test]
async fn pkcs12_bundle_with_chain_and_password() {
    let root = Ca::new("p12 root");
    let inter = root.intermediate("p12 intermediate");
    let leaf = inter.leaf("p12 leaf");
    let mut chain = openssl::stack::Stack::new().unwrap();
    chain.push(inter.cert.clone()).unwrap();
    let p12 = Pkcs12::builder()
        .name("server")
        .pkey(&leaf.key)
        .cert(&leaf.cert)
        .ca(chain)
        .build2(PASS)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "server.p12", &p12.to_der().unwrap());
    serves(
        &root,
        &leaf,
        ReloadingAcceptor::builder()
            .identity_pkcs12(&path)
            .passphrase(Passphrase::from_bytes(PASS)),
    )
    .await;
    let err = ReloadingAcceptor::builder()
        .identity_pkcs12(&path)
        .passphrase(Passphrase::from_bytes("wrong"))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Decrypt { .. }), "{err}");
    assert!(err.to_string().contains("server.p12"), "{err}");
}

/// Writes `leaf` as `cert.pem` and `key.pem` in `dir`, the key PKCS#8 encrypted
/// with [`PASS`] (AES-256-CBC).
fn write_encrypted(dir: &Path, leaf: &Leaf) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = write(dir, "cert.pem", &leaf.cert_pem());
    let key = leaf
        .key
        .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), PASS.as_bytes())
        .unwrap();
    (cert, write(dir, "key.pem", &key))
}

#[tokio::test]
async fn passphrase_from_file_env_and_callback() {
    let ca = Ca::new("pass CA");
    let leaf = ca.leaf("pass");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_encrypted(dir.path(), &leaf);
    // A file as `echo` writes it, with a trailing newline.
    let pass_file = write(dir.path(), "pass", format!("{PASS}\n").as_bytes());
    serves(
        &ca,
        &leaf,
        ReloadingAcceptor::builder()
            .identity(&cert, &key)
            .passphrase(Passphrase::from_file(&pass_file)),
    )
    .await;

    // The variable name is unique to this test; nothing else reads it.
    std::env::set_var("OPENSSL_RELOAD_TEST_FORMATS_PASS", PASS);
    serves(
        &ca,
        &leaf,
        ReloadingAcceptor::builder()
            .identity(&cert, &key)
            .passphrase(Passphrase::from_env("OPENSSL_RELOAD_TEST_FORMATS_PASS")),
    )
    .await;
    let err = ReloadingAcceptor::builder()
        .identity(&cert, &key)
        .passphrase(Passphrase::from_env("OPENSSL_RELOAD_TEST_UNSET_VARIABLE"))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Passphrase { .. }), "{err}");
    assert!(
        matches!(&err, Error::Passphrase { reason: PassphraseProblem::EnvUnset { var } }
            if var == "OPENSSL_RELOAD_TEST_UNSET_VARIABLE"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("OPENSSL_RELOAD_TEST_UNSET_VARIABLE"),
        "{err}"
    );

    serves(
        &ca,
        &leaf,
        ReloadingAcceptor::builder()
            .identity(&cert, &key)
            .passphrase(Passphrase::from_callback(|| Ok(PASS.as_bytes().to_vec()))),
    )
    .await;
}

#[test]
fn wrong_passphrase_is_a_clear_error() {
    let ca = Ca::new("wrong CA");
    let leaf = ca.leaf("wrong");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_encrypted(dir.path(), &leaf);
    let err = ReloadingAcceptor::builder()
        .identity(&cert, &key)
        .passphrase(Passphrase::from_bytes("not it"))
        .check()
        .unwrap_err();
    assert!(matches!(err, Error::Decrypt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("key.pem") && msg.contains("wrong passphrase"),
        "{msg}"
    );
}

/// Runs in a child process on a pseudo-terminal (see below); ignored otherwise.
#[test]
#[ignore = "run by encrypted_key_without_passphrase_never_prompts in a child process"]
fn child_load_encrypted_key_without_passphrase() {
    let Some(dir) = std::env::var_os("OPENSSL_RELOAD_TEST_CHILD_DIR") else {
        return;
    };
    let dir = Path::new(&dir);
    let err = ReloadingAcceptor::builder()
        .identity(dir.join("cert.pem"), dir.join("key.pem"))
        .check()
        .unwrap_err();
    assert!(matches!(err, Error::PassphraseRequired { .. }), "{err:?}");
    println!("CHILD-RESULT: {err}");
}

/// OpenSSL's plain PEM reader prompts on the controlling terminal for an encrypted
/// key. The child process gets a real pseudo-terminal (`script`) and a closed stdin:
/// a prompt would show in its output and it would wait for input until killed.
#[test]
fn encrypted_key_without_passphrase_never_prompts() {
    let ca = Ca::new("prompt CA");
    let leaf = ca.leaf("prompt");
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "cert.pem", &leaf.cert_pem());
    let key = leaf
        .key
        .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), PASS.as_bytes())
        .unwrap();
    write(dir.path(), "key.pem", &key);
    let exe = std::env::current_exe().unwrap();
    let cmd = format!(
        "{} --exact formats::child_load_encrypted_key_without_passphrase --ignored --nocapture",
        exe.display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("OPENSSL_RELOAD_TEST_CHILD_DIR", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`script` (util-linux) runs the child on a pseudo-terminal");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the child hung: OpenSSL is waiting at a passphrase prompt");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.success(),
        "child failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !stdout.to_lowercase().contains("pass phrase"),
        "prompted: {stdout}"
    );
    assert!(
        stdout.contains("CHILD-RESULT: private key")
            && stdout.contains("no passphrase is configured"),
        "{stdout}"
    );
}
