//! Property tests: valid PEM, DER and PKCS#12 material, mutated by bit flips,
//! truncation, overwrites and splices from other samples, never makes the loader
//! panic, and every refusal is a typed `openssl_reload::Error` that names a file.
//! Bounded (1,024 cases a property, about a second) so that it runs on every CI build; the
//! unbounded search is the cargo-fuzz target in `fuzz/`.

use std::path::Path;
use std::sync::OnceLock;

use openssl::pkcs12::Pkcs12;
use openssl::symm::Cipher;
use openssl_reload::{Error, Passphrase, ReloadingAcceptor};
use proptest::prelude::*;
use proptest::test_runner::Config;

use crate::support::Ca;

const PASS: &str = "props passphrase";

/// One identity in every encoding the crate reads.
struct Samples {
    /// PEM, DER, and a PEM chain (leaf + CA).
    certs: Vec<Vec<u8>>,
    /// PKCS#8 PEM, PKCS#8 DER, encrypted PKCS#8 PEM and DER, traditional
    /// (SEC1) PEM, traditional encrypted PEM.
    keys: Vec<Vec<u8>>,
    /// Encrypted under [`PASS`], and under the empty password.
    pkcs12: Vec<Vec<u8>>,
}

fn samples() -> &'static Samples {
    static SAMPLES: OnceLock<Samples> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let ca = Ca::new("props CA");
        let leaf = ca.leaf("props");
        let cipher = Cipher::aes_256_cbc();
        let ec = leaf.key.ec_key().unwrap();
        let mut chain = leaf.cert.to_pem().unwrap();
        chain.extend(ca.pem());
        let p12 = |pass: &str| {
            Pkcs12::builder()
                .name("props")
                .pkey(&leaf.key)
                .cert(&leaf.cert)
                .build2(pass)
                .unwrap()
                .to_der()
                .unwrap()
        };
        Samples {
            certs: vec![
                leaf.cert.to_pem().unwrap(),
                leaf.cert.to_der().unwrap(),
                chain,
            ],
            keys: vec![
                leaf.key.private_key_to_pem_pkcs8().unwrap(),
                leaf.key.private_key_to_pkcs8().unwrap(),
                leaf.key
                    .private_key_to_pem_pkcs8_passphrase(cipher, PASS.as_bytes())
                    .unwrap(),
                leaf.key
                    .private_key_to_pkcs8_passphrase(cipher, PASS.as_bytes())
                    .unwrap(),
                ec.private_key_to_pem().unwrap(),
                ec.private_key_to_pem_passphrase(cipher, PASS.as_bytes())
                    .unwrap(),
            ],
            pkcs12: vec![p12(PASS), p12("")],
        }
    })
}

/// Every sample, for splicing.
fn pool() -> Vec<&'static [u8]> {
    let s = samples();
    s.certs
        .iter()
        .chain(&s.keys)
        .chain(&s.pkcs12)
        .map(Vec::as_slice)
        .collect()
}

#[derive(Clone, Debug)]
enum Mutation {
    /// Flips one bit (`at` is taken modulo the length).
    Flip { at: usize, bit: u8 },
    /// Keeps the first `keep` bytes (modulo length + 1).
    Truncate { keep: usize },
    /// Overwrites bytes from `at`.
    Overwrite { at: usize, bytes: Vec<u8> },
    /// Inserts at `at` a piece of another sample: PEM headers, DER structures
    /// and base64 in the wrong place.
    Splice {
        at: usize,
        from: usize,
        start: usize,
        len: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        2 => any::<usize>().prop_map(|keep| Mutation::Truncate { keep }),
        2 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Overwrite { at, bytes }),
        2 => (any::<usize>(), any::<usize>(), any::<usize>(), 1usize..512)
            .prop_map(|(at, from, start, len)| Mutation::Splice { at, from, start, len }),
    ]
}

fn mutate(sample: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let pool = pool();
    let mut bytes = sample.to_vec();
    for m in mutations {
        let n = bytes.len();
        match m {
            Mutation::Flip { at, bit } if n > 0 => bytes[at % n] ^= 1 << bit,
            Mutation::Flip { .. } => {}
            Mutation::Truncate { keep } => bytes.truncate(keep % (n + 1)),
            Mutation::Overwrite { at, bytes: new } => {
                let at = at % (n + 1);
                for (i, b) in new.iter().enumerate() {
                    match bytes.get_mut(at + i) {
                        Some(slot) => *slot = *b,
                        None => bytes.push(*b),
                    }
                }
            }
            Mutation::Splice {
                at,
                from,
                start,
                len,
            } => {
                let donor = pool[from % pool.len()];
                let start = start % donor.len();
                let piece = &donor[start..(start + len).min(donor.len())];
                let at = at % (n + 1);
                bytes.splice(at..at, piece.iter().copied());
            }
        }
    }
    bytes
}

fn passphrase() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        Just(Some(PASS.as_bytes().to_vec())),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(Some),
    ]
}

fn source(pass: &Option<Vec<u8>>) -> Passphrase {
    pass.as_ref()
        .map_or_else(Passphrase::none, |p| Passphrase::from_bytes(p.clone()))
}

/// A refusal must be a typed error about one of `files` that says which.
fn assert_names_a_file<T>(result: Result<T, Error>, files: &[&Path]) {
    let Err(error) = result else { return };
    let message = error.to_string();
    let _ = format!("{error:?}");
    let named = error.path().is_some_and(|p| files.contains(&p))
        || files
            .iter()
            .any(|f| message.contains(&f.display().to_string()));
    assert!(
        named,
        "the error names none of {files:?}: {message} ({error:?})"
    );
}

fn config() -> Config {
    Config {
        cases: 1024,
        // Failures print the minimal input; no regression files in the tree.
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_pair_is_loaded_or_refused_with_a_typed_error(
        cert in 0usize..3,
        key in 0usize..6,
        cert_mutations in prop::collection::vec(mutation(), 0..4),
        key_mutations in prop::collection::vec(mutation(), 0..4),
        pass in passphrase(),
    ) {
        let s = samples();
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = (dir.path().join("cert"), dir.path().join("key"));
        std::fs::write(&cert_path, mutate(&s.certs[cert], &cert_mutations)).unwrap();
        std::fs::write(&key_path, mutate(&s.keys[key], &key_mutations)).unwrap();
        let result = ReloadingAcceptor::builder().identity(&cert_path, &key_path)
            .passphrase(source(&pass))
            .check();
        assert_names_a_file(result, &[&cert_path, &key_path]);
    }

    #[test]
    fn mutated_pkcs12_is_loaded_or_refused_with_a_typed_error(
        bundle in 0usize..2,
        mutations in prop::collection::vec(mutation(), 0..4),
        pass in passphrase(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bundle.p12");
        std::fs::write(&path, mutate(&samples().pkcs12[bundle], &mutations)).unwrap();
        let result = ReloadingAcceptor::builder().identity_pkcs12(&path)
            .passphrase(source(&pass))
            .check();
        assert_names_a_file(result, &[&path]);
    }
}
