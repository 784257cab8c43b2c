use std::fs;
use std::path::{Path, PathBuf};

use openssl_reload::{Error, Passphrase, ReloadingAcceptor};

use crate::fixture::{
    encrypted_acceptor, fips_ca, fips_leaf, openssl_cli, require_fips, Client, EncryptedKey,
    Serving, PASS,
};
use crate::support::{eventually, serve, write_atomic, Ca, Leaf, Server, INTERVAL};

/// `pass:<PASS>` for the CLI's `-passin`/`-passout`.
fn pass_arg() -> String {
    format!("pass:{PASS}")
}

fn s(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// Writes the leaf's certificate and its unencrypted PKCS#8 key (`<name>.crt`,
/// `<name>.plain.pem`) for the CLI to convert.
fn write_plain(dir: &Path, name: &str, leaf: &Leaf) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let plain = dir.join(format!("{name}.plain.pem"));
    fs::write(&cert, leaf.cert_pem()).unwrap();
    fs::write(&plain, leaf.key_pem()).unwrap();
    (cert, plain)
}

/// The key as encrypted PKCS#8, PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC, made
/// by the command that docs/fips.md gives for converting keys, run under the FIPS
/// configuration (`der`: DER instead of PEM).
fn pkcs8_by_cli(plain: &Path, out: &Path, der: bool) {
    let mut args = vec![
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-v2prf",
        "hmacWithSHA256",
    ];
    if der {
        args.extend(["-outform", "DER"]);
    }
    let pass = pass_arg();
    args.extend(["-in", s(plain), "-out", s(out), "-passout", &pass]);
    openssl_cli(true, args);
}

/// A traditional ("Proc-Type: 4,ENCRYPTED") PEM key, whose key derivation
/// (EVP_BytesToKey) is MD5: made outside FIPS, as `openssl ec -aes128` does.
fn md5_keyed_pem(plain: &Path, out: &Path, cipher: &str) {
    let pass = pass_arg();
    openssl_cli(
        false,
        [
            "ec",
            "-in",
            s(plain),
            cipher,
            "-passout",
            &pass,
            "-out",
            s(out),
        ],
    );
    let text = fs::read_to_string(out).unwrap();
    assert!(
        text.contains("Proc-Type: 4,ENCRYPTED") && text.contains("DEK-Info: "),
        "not a traditional encrypted PEM:\n{text}"
    );
}

/// A PKCS#12 bundle made outside FIPS by `openssl pkcs12 -export <extra>`.
fn pkcs12_by_cli(cert: &Path, plain: &Path, out: &Path, pass: &str, extra: &[&str]) {
    let passout = format!("pass:{pass}");
    let mut args = vec!["pkcs12", "-export"];
    args.extend_from_slice(extra);
    args.extend([
        "-in",
        s(cert),
        "-inkey",
        s(plain),
        "-out",
        s(out),
        "-passout",
        &passout,
    ]);
    openssl_cli(false, args);
}

/// DER bytes of a PEM document.
fn pem_body(pem: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(pem).unwrap();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    openssl::base64::decode_block(&body).unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `check()` on a key file with the suite's passphrase.
fn check_pair(cert: &Path, key: &Path) -> Result<String, Error> {
    ReloadingAcceptor::builder()
        .identity(cert, key)
        .passphrase(Passphrase::from_bytes(PASS))
        .check()
        .map(|info| info.map(|i| i.serial).unwrap_or_default())
}

/// Asserts that `result` is an [`Error::Unsupported`] about `path` naming
/// `reason` (the algorithm OpenSSL could not fetch), and returns the message.
fn assert_unsupported_error(result: Result<String, Error>, path: &Path, reason: &str) -> String {
    let error = match result {
        Ok(serial) => panic!("{} loaded in FIPS mode (serial {serial})", path.display()),
        Err(error) => error,
    };
    let message = error.to_string();
    assert!(
        matches!(&error, Error::Unsupported { path: p, algorithm: Some(a), .. } if p == path && a == reason),
        "{}: expected Error::Unsupported naming {reason}, got {error:?}",
        path.display()
    );
    assert!(
        message.contains(&path.display().to_string()) && message.contains(reason),
        "{}: the message does not name the file and {reason}: {message}",
        path.display()
    );
    message
}

/// A fresh CA and leaf; the leaf is written for the CLI as `leaf.crt` and
/// `leaf.plain.pem` in `dir` (see [`write_plain`]).
fn minted(dir: &Path) -> (Ca, Leaf, PathBuf, PathBuf) {
    let ca = fips_ca();
    let leaf = fips_leaf(&ca);
    let (cert, plain) = write_plain(dir, "leaf", &leaf);
    (ca, leaf, cert, plain)
}

/// Asserts that the encrypted PKCS#8 DER `der` names PBES2, PBKDF2,
/// HMAC-SHA256 and AES-256-CBC (by their DER-encoded OIDs).
fn assert_pbes2_pbkdf2_sha256_aes256(der: &[u8]) {
    for (what, oid) in [
        (
            "PBES2",
            &[
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d,
            ][..],
        ),
        (
            "PBKDF2",
            &[
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c,
            ],
        ),
        (
            "hmacWithSHA256",
            &[0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09],
        ),
        (
            "aes-256-cbc",
            &[
                0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a,
            ],
        ),
    ] {
        assert!(contains(der, oid), "the in-process key does not use {what}");
    }
}

/// Handshakes keep getting the certificate `serial`, several poll intervals long.
async fn still_served(client: &Client, server: &Server, serial: &str) {
    for _ in 0..5 {
        assert_eq!(client.handshake(server).await.unwrap().serial, serial);
        tokio::time::sleep(INTERVAL).await;
    }
}

/// Waits until handshakes get the certificate `serial`.
async fn until_served(what: &str, client: &Client, server: &Server, serial: &str) {
    eventually(what, || async {
        let seen = client.handshake(server).await.unwrap();
        (seen.serial == serial).then_some(())
    })
    .await;
}

#[tokio::test]
async fn encrypted_pkcs8_with_pbkdf2_sha256_and_aes256_loads() {
    require_fips!("encrypted_pkcs8_with_pbkdf2_sha256_and_aes256_loads");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ca, leaf, cert, plain) = minted(d);

    // Encrypted in this process, in FIPS mode, by the openssl crate. Its defaults
    // are the ones wanted: PBES2, PBKDF2 with HMAC-SHA256, AES-256-CBC.
    let in_process = d.join("in-process.pem");
    let pem = leaf.key_pem_pkcs8_aes256();
    assert_pbes2_pbkdf2_sha256_aes256(&pem_body(&pem));
    fs::write(&in_process, &pem).unwrap();

    // Converted by the CLI command that docs/fips.md recommends, PEM and DER.
    let cli_pem = d.join("cli.pem");
    let cli_der = d.join("cli.der");
    pkcs8_by_cli(&plain, &cli_pem, false);
    pkcs8_by_cli(&plain, &cli_der, true);
    assert!(fs::read_to_string(&cli_pem)
        .unwrap()
        .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));

    for key in [&in_process, &cli_pem, &cli_der] {
        let serial = check_pair(&cert, key)
            .unwrap_or_else(|e| panic!("{} does not load in FIPS mode: {e}", key.display()));
        assert_eq!(serial, leaf.serial);
    }

    // And serves.
    let server = serve(encrypted_acceptor(&cert, &cli_pem)).await;
    let seen = Client::new(&ca).handshake(&server).await.unwrap();
    assert_eq!(seen.serial, leaf.serial);
}

/// Keys whose decryption needs a non-approved algorithm fail with
/// [`Error::Unsupported`], naming the file and the missing algorithm.
#[test]
fn non_approved_key_encryption_fails_cleanly() {
    require_fips!("non_approved_key_encryption_fails_cleanly");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_ca, _leaf, cert, plain) = minted(d);
    traditional_pem_is_unsupported(d, &cert, &plain);
    pbes1_pkcs8_is_unsupported(d, &cert, &plain);
    password_pkcs12_is_unsupported(d, &cert, &plain);
}

/// Traditional PEM encryption: the key is derived from the passphrase with MD5,
/// whatever the cipher.
fn traditional_pem_is_unsupported(d: &Path, cert: &Path, plain: &Path) {
    for cipher in ["-aes128", "-aes256", "-des3"] {
        let key = d.join(format!("traditional{cipher}.pem"));
        md5_keyed_pem(plain, &key, cipher);
        let message = assert_unsupported_error(check_pair(cert, &key), &key, "MD5");
        eprintln!("traditional PEM ({cipher}): {message}");
    }
}

/// PKCS#8 encrypted with a PKCS#12 PBE scheme (PBES1 with SHA-1 and 3DES): the
/// key comes from PKCS12KDF, which the FIPS provider does not offer.
fn pbes1_pkcs8_is_unsupported(d: &Path, cert: &Path, plain: &Path) {
    let pbes1 = d.join("pbes1-sha1-3des.pem");
    let pass = pass_arg();
    openssl_cli(
        false,
        [
            "pkcs8",
            "-topk8",
            "-v1",
            "PBE-SHA1-3DES",
            "-in",
            s(plain),
            "-out",
            s(&pbes1),
            "-passout",
            &pass,
        ],
    );
    let message = assert_unsupported_error(check_pair(cert, &pbes1), &pbes1, "PKCS12KDF");
    eprintln!("PKCS#8 with PBE-SHA1-3DES: {message}");
}

/// PKCS#12: legacy RC2-40 certificates with a 3DES key (`-legacy`), and 3DES
/// throughout without the legacy provider. Both have a SHA-1 MAC keyed by
/// PKCS12KDF. OpenSSL 3's own default (AES-256-CBC, PBKDF2, SHA-256 MAC) fails as
/// well: the MAC key still comes from PKCS12KDF. OpenSSL 3.0's FIPS mode reads no
/// password-protected PKCS#12 at all (docs/fips.md).
fn password_pkcs12_is_unsupported(d: &Path, cert: &Path, plain: &Path) {
    let legacy = d.join("legacy-rc2.p12");
    pkcs12_by_cli(cert, plain, &legacy, PASS, &["-legacy"]);
    let des3 = d.join("sha1-3des.p12");
    let des3_args = [
        "-certpbe",
        "PBE-SHA1-3DES",
        "-keypbe",
        "PBE-SHA1-3DES",
        "-macalg",
        "sha1",
    ];
    pkcs12_by_cli(cert, plain, &des3, PASS, &des3_args);
    let modern = d.join("aes256.p12");
    pkcs12_by_cli(cert, plain, &modern, PASS, &[]);
    for p12 in [&legacy, &des3, &modern] {
        let result = ReloadingAcceptor::builder()
            .identity_pkcs12(p12)
            .passphrase(Passphrase::from_bytes(PASS))
            .check()
            .map(|info| info.map(|i| i.serial).unwrap_or_default());
        let message = assert_unsupported_error(result, p12, "PKCS12KDF");
        eprintln!("PKCS#12 {}: {message}", p12.display());
    }
}

/// A key file swapped for an MD5-keyed PEM is refused and the server keeps serving
/// the old certificate; a FIPS-encrypted key then goes into service.
#[tokio::test]
async fn md5_keyed_pem_swapped_in_keeps_the_old_certificate() {
    require_fips!("md5_keyed_pem_swapped_in_keeps_the_old_certificate");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let Serving {
        cert,
        key,
        ca,
        first,
        tls,
        server,
        client,
    } = Serving::start(d).await;

    // The renewal arrives with its key in traditional (MD5-keyed) PEM encryption.
    let second = fips_leaf(&ca);
    let (_, plain) = write_plain(d, "second", &second);
    let md5_key = d.join("second.md5.pem");
    md5_keyed_pem(&plain, &md5_key, "-aes128");
    write_atomic(&key, &fs::read(&md5_key).unwrap());
    write_atomic(&cert, &second.cert_pem());

    let status = eventually("the poller to refuse the MD5-keyed key", || async {
        let status = tls.status();
        let refused = status
            .last_error
            .as_ref()
            .is_some_and(|e| e.message.contains("cannot load") && e.message.contains("MD5"));
        refused.then_some(status)
    })
    .await;
    let error = status.last_error.as_ref().unwrap();
    assert_eq!(error.path.as_deref(), Some(key.as_path()), "{error:?}");
    assert!(status.consecutive_failures >= 1, "{status:?}");
    assert_eq!(status.generation, 1, "{status:?}");
    assert_eq!(
        status.certificate.as_ref().map(|c| c.serial.as_str()),
        Some(first.serial.as_str())
    );
    // The explicit reload (SIGHUP) says the same, as an Error::Unsupported.
    let result = tls.reload_now().map(|_| String::new());
    assert_unsupported_error(result, &key, "MD5");
    // Handshakes still get the first certificate, several poll intervals later.
    still_served(&client, &server, &first.serial).await;

    // The key re-encrypted with PBKDF2 and AES-256 goes into service.
    write_atomic(&key, &second.key_pem_pkcs8_aes256());
    let what = "the FIPS-encrypted renewal to be served";
    until_served(what, &client, &server, &second.serial).await;
    assert_eq!(tls.status().consecutive_failures, 0);
}

/// The one kind of PKCS#12 that OpenSSL 3.0 reads in FIPS mode: no MAC and no
/// encryption (password empty).
const CLEAR_PKCS12: [&str; 5] = ["-nomac", "-keypbe", "NONE", "-certpbe", "NONE"];

/// A PKCS#12 bundle swapped for a legacy one is refused and the old certificate stays
/// in service. The server starts from the one kind of PKCS#12 that OpenSSL 3.0 reads
/// in FIPS mode: no MAC and no encryption (password empty).
#[tokio::test]
async fn legacy_pkcs12_swapped_in_keeps_the_old_certificate() {
    require_fips!("legacy_pkcs12_swapped_in_keeps_the_old_certificate");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bundle = d.join("server.p12");
    let ca = fips_ca();
    let first = fips_leaf(&ca);
    let (cert1, plain1) = write_plain(d, "first", &first);
    pkcs12_by_cli(&cert1, &plain1, &bundle, "", &CLEAR_PKCS12);
    let tls = ReloadingAcceptor::builder()
        .identity_pkcs12(&bundle)
        .passphrase(Passphrase::from_bytes(""))
        .poll_interval(INTERVAL)
        .build()
        .unwrap();
    let server = serve(tls.clone()).await;
    let client = Client::new(&ca);
    assert_eq!(
        client.handshake(&server).await.unwrap().serial,
        first.serial
    );

    // The renewal arrives as a legacy bundle (RC2-40 / 3DES, SHA-1 MAC).
    let second = fips_leaf(&ca);
    let (cert2, plain2) = write_plain(d, "second", &second);
    let legacy = d.join("second.legacy.p12");
    pkcs12_by_cli(&cert2, &plain2, &legacy, "", &["-legacy"]);
    write_atomic(&bundle, &fs::read(&legacy).unwrap());
    assert_legacy_refused(&tls, &bundle).await;
    still_served(&client, &server, &first.serial).await;

    // A bundle OpenSSL can read in FIPS mode goes into service.
    let fixed = d.join("second.clear.p12");
    pkcs12_by_cli(&cert2, &plain2, &fixed, "", &CLEAR_PKCS12);
    write_atomic(&bundle, &fs::read(&fixed).unwrap());
    let what = "the readable renewal to be served";
    until_served(what, &client, &server, &second.serial).await;
}

/// The poller refuses the legacy PKCS#12 now in `bundle`, naming PKCS12KDF and the
/// file, without publishing; an explicit reload says the same.
async fn assert_legacy_refused(tls: &ReloadingAcceptor, bundle: &Path) {
    let status = eventually("the poller to refuse the legacy PKCS#12", || async {
        let status = tls.status();
        status
            .last_error
            .as_ref()
            .is_some_and(|e| e.message.contains("cannot load"))
            .then_some(status)
    })
    .await;
    let error = status.last_error.as_ref().unwrap();
    assert!(error.message.contains("PKCS12KDF"), "{error:?}");
    assert_eq!(error.path.as_deref(), Some(bundle), "{error:?}");
    assert_eq!(status.generation, 1, "{status:?}");
    let result = tls.reload_now().map(|_| String::new());
    assert_unsupported_error(result, bundle, "PKCS12KDF");
}
