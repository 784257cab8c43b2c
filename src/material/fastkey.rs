//! Unencrypted PEM keys decoded by a decoder told the key type.
//!
//! OpenSSL 3.0's `PEM_read_bio_PrivateKey` builds a decoder chain from every
//! decoder of every provider for each key it reads: about 0.5 ms a key here, most
//! of a site's load time at 10,000 sites. Given the key type, the chain is built
//! from that type's decoders only: about 0.12 ms (measured with callgrind and a C
//! loop over one P-256 key). So unencrypted EC and RSA keys in PEM, the forms
//! cert-manager and `openssl genpkey` write, take this path; anything else, or
//! anything it cannot decode, takes the general one in `parse.rs`.

use std::ffi::CStr;

use openssl::pkey::{PKey, Private};

use crate::ffi;

/// PEM labels of unencrypted keys and the key type each holds; `None` for
/// PKCS#8, whose type is read from its algorithm identifier.
const LABELS: [(&str, Option<&CStr>); 3] = [
    ("EC PRIVATE KEY", Some(c"EC")),
    ("RSA PRIVATE KEY", Some(c"RSA")),
    ("PRIVATE KEY", None),
];

/// DER of the OIDs id-ecPublicKey (1.2.840.10045.2.1) and rsaEncryption
/// (1.2.840.113549.1.1.1), as they appear in a PKCS#8 AlgorithmIdentifier.
const EC_OID: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const RSA_OID: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];

/// The key in `bytes` if it is an unencrypted EC or RSA key in PEM that the
/// narrowed decoder reads; `None` sends the caller down the general path.
pub(super) fn decode(bytes: &[u8]) -> Option<PKey<Private>> {
    let text = std::str::from_utf8(bytes).ok()?;
    for (label, keytype) in LABELS {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        let Some(start) = text.find(&begin) else {
            continue;
        };
        let stop = start + text[start..].find(&end)? + end.len();
        let block = &text[start..stop];
        // Traditional encrypted PEM carries its cipher in headers.
        if block.contains("Proc-Type:") {
            return None;
        }
        let keytype = match keytype {
            Some(keytype) => keytype,
            None => pkcs8_type(&block[begin.len()..])?,
        };
        return ffi::decoder::pem_private_key(block.as_bytes(), keytype).ok();
    }
    None
}

/// EC or RSA from the start of a PKCS#8 body: its first base64 line holds the
/// AlgorithmIdentifier.
fn pkcs8_type(body: &str) -> Option<&'static CStr> {
    let first: String = body.split_whitespace().next()?.chars().take(64).collect();
    let usable = first.len() - first.len() % 4;
    let der = openssl::base64::decode_block(&first[..usable]).ok()?;
    let head = &der[..der.len().min(32)];
    if head.windows(EC_OID.len()).any(|w| w == EC_OID) {
        Some(c"EC")
    } else if head.windows(RSA_OID.len()).any(|w| w == RSA_OID) {
        Some(c"RSA")
    } else {
        None
    }
}
