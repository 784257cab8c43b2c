//! Certificates minted at run time: CAs, leaves, the key algorithms the crate
//! supports, and serials that never repeat within a run.
//!
//! Everything defaults to ECDSA P-256 with SHA-256, which the FIPS provider
//! offers too, so the FIPS suite mints with the same code.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use openssl::asn1::{Asn1Integer, Asn1Object, Asn1OctetString, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{HasPublic, PKey, PKeyRef, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509Builder, X509Extension, X509Name, X509NameRef, X509Ref, X509};

use super::files::write_atomic;

static SERIAL: AtomicU32 = AtomicU32::new(1000);

/// Key algorithms the crate must support.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Rsa2048,
    P256,
    P384,
    Ed25519,
}

/// A fresh private key of `alg`.
pub fn key(alg: Alg) -> PKey<Private> {
    let ec = |nid| {
        let group = EcGroup::from_curve_name(nid).unwrap();
        PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
    };
    match alg {
        Alg::Rsa2048 => PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap(),
        Alg::P256 => ec(Nid::X9_62_PRIME256V1),
        Alg::P384 => ec(Nid::SECP384R1),
        Alg::Ed25519 => PKey::generate_ed25519().unwrap(),
    }
}

/// A certificate authority that signs leaves.
pub struct Ca {
    pub cert: X509,
    pub key: PKey<Private>,
}

impl Ca {
    /// A self-signed root CA.
    pub fn new(name: &str) -> Self {
        Self::signed_by(name, None)
    }

    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, name: &str) -> Self {
        Self::signed_by(name, Some(self))
    }

    fn signed_by(name: &str, issuer: Option<&Self>) -> Self {
        let key = key(Alg::P256);
        let subject = cn_name(name);
        let issuer_name = issuer.map_or(&*subject, |i| i.cert.subject_name());
        let mut b = builder(&subject, issuer_name, &key, &serial());
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
            .unwrap();
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        let usage = KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()
            .unwrap();
        b.append_extension(usage).unwrap();
        b.sign(issuer.map_or(&key, |i| &i.key), MessageDigest::sha256())
            .unwrap();
        Self {
            cert: b.build(),
            key,
        }
    }

    pub fn pem(&self) -> Vec<u8> {
        self.cert.to_pem().unwrap()
    }

    /// A server (and client) leaf for `localhost`, 127.0.0.1 and ::1.
    pub fn leaf(&self, cn: &str) -> Leaf {
        self.leaf_with(LeafSpec::new(cn))
    }

    pub fn leaf_with(&self, spec: LeafSpec) -> Leaf {
        Leaf::mint(spec, Some(self))
    }

    /// A leaf certificate for a public key whose private half is held
    /// elsewhere (in an HSM or a TPM): the certificate alone.
    pub fn certify<T: HasPublic>(&self, spec: LeafSpec, key: &PKeyRef<T>) -> X509 {
        issue(&spec, key, (&self.key, Some(self)))
    }
}

/// What a leaf looks like; offsets are seconds from now.
pub struct LeafSpec {
    pub cn: String,
    pub alg: Alg,
    pub dns: Vec<String>,
    pub ips: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
    /// A fixed serial; `None` takes the next one of the run.
    pub serial: Option<u32>,
    /// The TLS feature extension with `status_request` (RFC 7633, "must-staple").
    pub must_staple: bool,
}

impl LeafSpec {
    pub fn new(cn: &str) -> Self {
        Self {
            cn: cn.to_owned(),
            alg: Alg::P256,
            dns: vec!["localhost".to_owned()],
            ips: vec!["127.0.0.1".to_owned(), "::1".to_owned()],
            not_before: -3600,
            not_after: 30 * 86_400,
            serial: None,
            must_staple: false,
        }
    }
    /// With the must-staple extension.
    pub fn must_staple(mut self) -> Self {
        self.must_staple = true;
        self
    }
    pub fn alg(mut self, alg: Alg) -> Self {
        self.alg = alg;
        self
    }
    pub fn validity(mut self, not_before: i64, not_after: i64) -> Self {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }
    pub fn dns(mut self, names: &[&str]) -> Self {
        self.dns = names.iter().map(|s| s.to_string()).collect();
        self.ips.clear();
        self
    }
    /// A fixed serial number, for callers that tell certificates apart by it.
    pub fn serial(mut self, serial: u32) -> Self {
        self.serial = Some(serial);
        self
    }
}

/// A leaf certificate and its key.
pub struct Leaf {
    pub cert: X509,
    pub key: PKey<Private>,
    pub chain: Vec<X509>,
    /// Upper-case hex, as `CertificateInfo::serial` prints it.
    pub serial: String,
}

impl Leaf {
    /// A self-signed leaf (its own trust anchor), for peers that do not verify or
    /// that trust exactly this certificate.
    pub fn self_signed(spec: LeafSpec) -> Self {
        Self::mint(spec, None)
    }

    fn mint(spec: LeafSpec, issuer: Option<&Ca>) -> Self {
        let key = key(spec.alg);
        let cert = issue(
            &spec,
            &key,
            issuer.map_or((&key, None), |ca| (&ca.key, Some(ca))),
        );
        Self {
            serial: serial_hex(&cert),
            cert,
            key,
            chain: vec![],
        }
    }

    pub fn cert_pem(&self) -> Vec<u8> {
        let mut pem = self.cert.to_pem().unwrap();
        for c in &self.chain {
            pem.extend(c.to_pem().unwrap());
        }
        pem
    }
    /// The certificate, then `issuer`'s: a file with the chain that OCSP and
    /// chain checks need.
    pub fn pem_with_issuer(&self, issuer: &Ca) -> Vec<u8> {
        let mut pem = self.cert.to_pem().unwrap();
        pem.extend(issuer.pem());
        pem
    }
    /// PKCS#8 PEM (`BEGIN PRIVATE KEY`).
    pub fn key_pem(&self) -> Vec<u8> {
        self.key.private_key_to_pem_pkcs8().unwrap()
    }
    /// Writes `cert.pem` and `key.pem` in `dir` (atomically) and returns their paths.
    pub fn write(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        write_atomic(&cert, &self.cert_pem());
        write_atomic(&key, &self.key_pem());
        (cert, key)
    }
}

/// The certificate `spec` describes for `key` (only its public half is
/// used), signed by `signer`: the CA's key and the CA, or the leaf's own key.
fn issue<T: HasPublic>(
    spec: &LeafSpec,
    key: &PKeyRef<T>,
    (signing_key, issuer): (&PKey<Private>, Option<&Ca>),
) -> X509 {
    let subject = cn_name(&spec.cn);
    let issuer_name = issuer.map_or(&*subject, |ca| ca.cert.subject_name());
    let serial = match spec.serial {
        Some(n) => BigNum::from_u32(n).unwrap().to_asn1_integer().unwrap(),
        None => serial(),
    };
    let mut b = builder(&subject, issuer_name, key, &serial);
    let now = time_now();
    b.set_not_before(&Asn1Time::from_unix(now + spec.not_before).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(now + spec.not_after).unwrap())
        .unwrap();
    append_leaf_extensions(&mut b, spec, issuer.map(|ca| &*ca.cert));
    b.sign(signing_key, MessageDigest::sha256()).unwrap();
    b.build()
}

/// An X.509 v3 builder with names, key and serial set.
fn builder<T: HasPublic>(
    subject: &X509NameRef,
    issuer: &X509NameRef,
    key: &PKeyRef<T>,
    serial: &Asn1Integer,
) -> X509Builder {
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(subject).unwrap();
    b.set_issuer_name(issuer).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_serial_number(serial).unwrap();
    b
}

/// The subject alternative names of `spec` and the server + client EKU.
fn append_leaf_extensions(b: &mut X509Builder, spec: &LeafSpec, issuer: Option<&X509Ref>) {
    let mut san = SubjectAlternativeName::new();
    for dns in &spec.dns {
        san.dns(dns);
    }
    for ip in &spec.ips {
        san.ip(ip);
    }
    let san = san.build(&b.x509v3_context(issuer, None)).unwrap();
    b.append_extension(san).unwrap();
    let eku = ExtendedKeyUsage::new()
        .server_auth()
        .client_auth()
        .build()
        .unwrap();
    b.append_extension(eku).unwrap();
    if spec.must_staple {
        // id-pe-tlsfeature: SEQUENCE { INTEGER 5 (status_request) }.
        let oid = Asn1Object::from_str("1.3.6.1.5.5.7.1.24").unwrap();
        let value = Asn1OctetString::new_from_bytes(&[0x30, 0x03, 0x02, 0x01, 0x05]).unwrap();
        b.append_extension(X509Extension::new_from_der(&oid, false, &value).unwrap())
            .unwrap();
    }
}

fn cn_name(cn: &str) -> X509Name {
    let mut n = X509Name::builder().unwrap();
    n.append_entry_by_text("CN", cn).unwrap();
    n.build()
}

fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn serial() -> Asn1Integer {
    // Distinct across the run and large enough that a serial never looks like a
    // neighbour's, whatever order tests run in.
    let n = SERIAL.fetch_add(1, Ordering::SeqCst) as u64 * 7919
        + (time_now() as u64 % 1_000_000) * 1_000_000;
    BigNum::from_dec_str(&n.to_string())
        .unwrap()
        .to_asn1_integer()
        .unwrap()
}

/// A certificate's serial in upper-case hex, as `CertificateInfo::serial` prints it.
pub fn serial_hex(cert: &X509Ref) -> String {
    cert.serial_number()
        .to_bn()
        .unwrap()
        .to_hex_str()
        .unwrap()
        .to_string()
}

/// A certificate's SHA-256 fingerprint in lower-case hex.
pub fn fingerprint(cert: &X509Ref) -> String {
    let digest = cert.digest(MessageDigest::sha256()).unwrap();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 fingerprint of the first certificate in the PEM file at `path`.
pub fn file_fingerprint(path: &Path) -> String {
    let pem = std::fs::read(path).unwrap();
    fingerprint(&X509::from_pem(&pem).unwrap())
}
