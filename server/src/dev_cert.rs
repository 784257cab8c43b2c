//! The development certificate: a self-signed CA and a leaf for localhost,
//! 127.0.0.1 and ::1, created on first use and reused while they are good.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use openssl::asn1::{Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509Extension, X509Name, X509};
use openssl_reload::{ClientAuth, Passphrase, ReloadingAcceptor};

use crate::timefmt::now_unix;
use crate::Failure;

/// The subject of the development certificate, and the names it is valid for.
const LEAF_CN: &str = "localhost";
const DNS_NAMES: &[&str] = &["localhost"];
const IP_ADDRESSES: &[&str] = &["127.0.0.1", "::1"];

const DAY: i64 = 86_400;
/// Validity of the development CA.
const CA_DAYS: u32 = 10 * 365;
/// Validity of the leaf: within the 825 days some platforms accept from a private CA.
const LEAF_DAYS: u32 = 365;
/// A leaf with less than this left is issued again.
const LEAF_RENEW_DAYS: i64 = 30;

/// The files of the development identity.
#[derive(Debug, Clone)]
pub(crate) struct DevFiles {
    pub(crate) dir: PathBuf,
    pub(crate) ca_cert: PathBuf,
    pub(crate) ca_key: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

impl DevFiles {
    pub(crate) fn in_dir(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }
}

/// What [`ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// CA and certificate from an earlier run are still good.
    Reused,
    /// The CA was good; the certificate was issued again.
    Reissued,
    /// A new CA and certificate were created.
    Created,
}

/// The default development directory: `$XDG_DATA_HOME/openssl-reload/dev`, else
/// `$HOME/.local/share/openssl-reload/dev`, else `./.openssl-reload-dev`.
pub(crate) fn default_dir() -> PathBuf {
    let non_empty = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    // The XDG base directory specification says to ignore relative paths.
    if let Some(data) = non_empty("XDG_DATA_HOME").filter(|p| p.is_absolute()) {
        return data.join("openssl-reload").join("dev");
    }
    if let Some(home) = non_empty("HOME") {
        return home.join(".local/share/openssl-reload/dev");
    }
    PathBuf::from(".openssl-reload-dev")
}

/// Makes sure `dir` holds a usable development CA and certificate, creating or
/// renewing what is missing, invalid or about to expire.
pub(crate) fn ensure(dir: &Path) -> Result<(DevFiles, Outcome), Failure> {
    let files = DevFiles::in_dir(dir);
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Failure::runtime(format!("cannot create {}: {e}", dir.display())))?;

    let (ca, mut outcome) = match load_ca(&files) {
        Some(ca) => (ca, Outcome::Reused),
        None => {
            let ca = ca_name()
                .and_then(|cn| mint(&cn, CA_DAYS, None))
                .map_err(|e| openssl_failure("create the development CA", &e))?;
            write_pair(&ca, &files.ca_cert, &files.ca_key)?;
            tracing::info!(path = %files.ca_cert.display(), "created a development CA");
            (ca, Outcome::Created)
        }
    };
    if outcome == Outcome::Created || !leaf_is_good(&files) {
        let leaf = mint(LEAF_CN, LEAF_DAYS, Some(&ca))
            .map_err(|e| openssl_failure("issue the development certificate", &e))?;
        write_pair(&leaf, &files.cert, &files.key)?;
        tracing::info!(path = %files.cert.display(), "issued a development certificate for localhost, 127.0.0.1 and ::1");
        if outcome == Outcome::Reused {
            outcome = Outcome::Reissued;
        }
    } else {
        tracing::debug!(dir = %dir.display(), "reusing the development certificate");
    }
    Ok((files, outcome))
}

fn openssl_failure(what: &str, error: &ErrorStack) -> Failure {
    Failure::runtime(format!("cannot {what}: {error}"))
}

/// A certificate and its private key: the development CA, or the leaf it issued.
struct Pair {
    cert: X509,
    key: PKey<Private>,
}

/// Writes the key (mode 0600) and then the certificate (0644) of `pair`.
fn write_pair(pair: &Pair, cert: &Path, key: &Path) -> Result<(), Failure> {
    let key_pem = pair
        .key
        .private_key_to_pem_pkcs8()
        .map_err(|e| openssl_failure("encode a key", &e))?;
    write_file(key, &key_pem, 0o600)?;
    let cert_pem = pair
        .cert
        .to_pem()
        .map_err(|e| openssl_failure("encode a certificate", &e))?;
    write_file(cert, &cert_pem, 0o644)
}

/// The CA from an earlier run, if it is complete, consistent, and valid for
/// longer than any leaf it would issue.
fn load_ca(files: &DevFiles) -> Option<Pair> {
    let cert = X509::from_pem(&fs::read(&files.ca_cert).ok()?).ok()?;
    // An empty passphrase callback: a key that asks for one is not ours.
    let key =
        PKey::private_key_from_pem_callback(&fs::read(&files.ca_key).ok()?, |_| Ok(0)).ok()?;
    if !cert.public_key().ok()?.public_eq(&key) {
        return None;
    }
    let now = now_unix();
    let renew_at = Asn1Time::from_unix(now + i64::from(LEAF_DAYS) * DAY).ok()?;
    let now = Asn1Time::from_unix(now).ok()?;
    let current = has_name_constraints(&cert);
    (current && cert.not_after() > renew_at && cert.not_before() <= now)
        .then_some(Pair { cert, key })
}

/// Whether the leaf from an earlier run is what the server would accept, names
/// localhost and the loopback addresses, chains to the CA, and is not about to expire.
fn leaf_is_good(files: &DevFiles) -> bool {
    let checked = ReloadingAcceptor::builder()
        .identity(&files.cert, &files.key)
        .passphrase(Passphrase::none())
        .ca(&files.ca_cert)
        .client_auth(ClientAuth::Optional)
        .check_chain_against_ca(true)
        .check();
    match checked {
        Ok(None) => false,
        Ok(Some(info)) => {
            let names_ok = DNS_NAMES
                .iter()
                .chain(IP_ADDRESSES)
                .all(|name| info.subject_alt_names.iter().any(|san| san == name));
            names_ok && info.not_after_unix - now_unix() > LEAF_RENEW_DAYS * DAY
        }
        Err(error) => {
            tracing::debug!(error = %error.report(), "the development certificate is not usable; issuing a new one");
            false
        }
    }
}

/// The common name of a new development CA, with a random tag so that two
/// machines' CAs are told apart in a trust store.
fn ca_name() -> Result<String, ErrorStack> {
    let mut tag = [0u8; 4];
    openssl::rand::rand_bytes(&mut tag)?;
    let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("openssl-reload development CA {tag}"))
}

/// Mints a certificate named `cn`, valid for `days`, with a new P-256 key:
/// the self-signed development CA without an `issuer`, else a server leaf for
/// [`DNS_NAMES`] and [`IP_ADDRESSES`] signed by `issuer`.
fn mint(cn: &str, days: u32, issuer: Option<&Pair>) -> Result<Pair, ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let mut name = X509Name::builder()?;
    name.append_entry_by_text("O", "openssl-reload (development only)")?;
    name.append_entry_by_text("CN", cn)?;
    let name = name.build();
    let mut serial = BigNum::new()?;
    // 127 random bits with the top bit set: positive, 16 bytes, never zero.
    serial.rand(127, MsbOption::ONE, false)?;
    let now = now_unix();

    let mut b = X509::builder()?;
    b.set_version(2)?;
    b.set_serial_number(serial.to_asn1_integer()?.as_ref())?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(issuer.map_or(&*name, |ca| ca.cert.subject_name()))?;
    b.set_pubkey(&key)?;
    // Back-dated an hour so that a slightly slow clock elsewhere still accepts it.
    b.set_not_before(Asn1Time::from_unix(now - 3600)?.as_ref())?;
    b.set_not_after(Asn1Time::from_unix(now + i64::from(days) * DAY)?.as_ref())?;
    match issuer {
        None => ca_extensions(&mut b)?,
        Some(ca) => leaf_extensions(&mut b, &ca.cert)?,
    }
    b.sign(issuer.map_or(&key, |ca| &ca.key), MessageDigest::sha256())?;
    Ok(Pair {
        cert: b.build(),
        key,
    })
}

/// A CA that signs leaves only (path length 0), and only for the development
/// names: a leaked CA key cannot mint a certificate for any other name that a
/// developer's browser or curl, trusting the CA, would accept.
fn ca_extensions(b: &mut X509Builder) -> Result<(), ErrorStack> {
    b.append_extension(BasicConstraints::new().critical().ca().pathlen(0).build()?)?;
    b.append_extension(name_constraints()?)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()?,
    )?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
    b.append_extension(ski)
}

/// The object identifier of the name constraints extension (RFC 5280, 4.2.1.10).
const NAME_CONSTRAINTS_OID: &str = "2.5.29.30";

/// A critical name constraints extension permitting only DNS `localhost` (and
/// names under it), IP 127.0.0.0/8 and IP ::1: the DER is written here, the
/// openssl crate having no builder for it.
fn name_constraints() -> Result<X509Extension, ErrorStack> {
    let mut v6 = [0u8; 32];
    v6[15] = 1; // ::1
    v6[16..].fill(0xff); // /128
    let subtrees = [
        der(0x82, b"localhost"),                  // dNSName
        der(0x87, &[127, 0, 0, 0, 255, 0, 0, 0]), // iPAddress 127.0.0.0/8
        der(0x87, &v6),                           // iPAddress ::1/128
    ];
    let permitted: Vec<u8> = subtrees.iter().flat_map(|name| der(0x30, name)).collect();
    let value = der(0x30, &der(0xa0, &permitted)); // NameConstraints { permittedSubtrees }
    let oid = Asn1Object::from_str(NAME_CONSTRAINTS_OID)?;
    let value = Asn1OctetString::new_from_bytes(&value)?;
    X509Extension::new_from_der(&oid, true, &value)
}

/// One DER element, tag and content (shorter than 128 bytes here).
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    debug_assert!(content.len() < 128);
    let mut out = vec![tag, content.len() as u8];
    out.extend_from_slice(content);
    out
}

/// Whether `cert` carries the name constraints [`name_constraints`] writes:
/// a CA from before they were added is replaced.
fn has_name_constraints(cert: &X509) -> bool {
    cert.to_text().is_ok_and(|text| {
        let text = String::from_utf8_lossy(&text);
        text.contains("X509v3 Name Constraints: critical") && text.contains("DNS:localhost")
    })
}

/// A TLS server certificate for the development names, issued by `ca`.
fn leaf_extensions(b: &mut X509Builder, ca: &X509) -> Result<(), ErrorStack> {
    b.append_extension(BasicConstraints::new().critical().build()?)?;
    b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
    b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
    let mut san = SubjectAlternativeName::new();
    for dns in DNS_NAMES {
        san.dns(dns);
    }
    for ip in IP_ADDRESSES {
        san.ip(ip);
    }
    let san = san.build(&b.x509v3_context(Some(ca), None))?;
    b.append_extension(san)?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(ca), None))?;
    b.append_extension(ski)?;
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&b.x509v3_context(Some(ca), None))?;
    b.append_extension(aki)
}

/// Writes `bytes` to a temporary file in the same directory, created with `mode`,
/// and renames it over `path`, so that neither a concurrent reader (a running
/// server polls these files) nor a crash ever sees half a file, and a key is never
/// readable by others, not even for a moment.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Failure> {
    let fail =
        |e: std::io::Error| Failure::runtime(format!("cannot write {}: {e}", path.display()));
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let _ = fs::remove_file(&tmp);
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(fail)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_then_reuses_then_reissues() {
        let dir = tempfile::tempdir().unwrap();
        let dev = dir.path().join("a/b/dev");
        let (files, outcome) = ensure(&dev).unwrap();
        assert_eq!(outcome, Outcome::Created);
        assert_eq!(mode(&files.key), 0o600);
        assert_eq!(mode(&files.ca_key), 0o600);
        assert_eq!(mode(&dev), 0o700);
        let ca_before = fs::read(&files.ca_cert).unwrap();
        assert!(has_name_constraints(&X509::from_pem(&ca_before).unwrap()));
        let leaf_before = fs::read(&files.cert).unwrap();

        let (_, outcome) = ensure(&dev).unwrap();
        assert_eq!(outcome, Outcome::Reused);
        assert_eq!(fs::read(&files.cert).unwrap(), leaf_before);

        // A broken leaf is issued again by the same CA.
        fs::write(&files.cert, b"garbage").unwrap();
        let (_, outcome) = ensure(&dev).unwrap();
        assert_eq!(outcome, Outcome::Reissued);
        assert_eq!(fs::read(&files.ca_cert).unwrap(), ca_before);
        let info = ReloadingAcceptor::builder()
            .identity(&files.cert, &files.key)
            .ca(&files.ca_cert)
            .client_auth(ClientAuth::Required)
            .check_chain_against_ca(true)
            .check()
            .unwrap()
            .unwrap();
        assert!(info.subject_alt_names.iter().any(|n| n == "::1"));

        // A missing CA key starts over.
        fs::remove_file(&files.ca_key).unwrap();
        let (_, outcome) = ensure(&dev).unwrap();
        assert_eq!(outcome, Outcome::Created);
        assert_ne!(fs::read(&files.ca_cert).unwrap(), ca_before);
    }
}
