//! Fuzzes the material loader: certificate chains, private keys (PEM and DER,
//! plain and encrypted), PKCS#12 bundles and CA bundles, with or without a
//! passphrase. The loader is crate-private, so the bytes go through the public
//! API the way a user's files do: written to disk and loaded by `check()`, which
//! reads, parses, validates and builds a context exactly as `build()` would.
//! Any outcome is fine except a panic (or a sanitizer report).
//!
//! Input layout (see `ci/fuzz.sh`, which writes seeds in this form):
//!
//! ```text
//! byte 0      mode: bits 0-1 pick the shape, bit 2 the validity policy
//!               0 cert file + key file
//!               1 one file holding both (cert = key path)
//!               2 PKCS#12 bundle (the whole payload)
//!               3 cert file + key file + CA bundle (the cert payload again),
//!                 so chain verification runs too
//! byte 1      passphrase length; 0xFF means no passphrase
//! ...         the passphrase
//! 2 bytes     big-endian length of the certificate part
//! ...         the certificate part, then the key part (the rest)
//! ```

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use openssl_reload::{ClientAuth, Passphrase, ReloadingAcceptor, ValidityPolicy};

struct Files {
    cert: PathBuf,
    key: PathBuf,
    both: PathBuf,
    ca: PathBuf,
}

/// One scratch directory per fuzzing process (libFuzzer's `-fork`/`-jobs` run
/// several), overwritten by every input.
fn files() -> &'static Files {
    static FILES: OnceLock<Files> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("openssl-reload-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Files {
            cert: dir.join("cert"),
            key: dir.join("key"),
            both: dir.join("both"),
            ca: dir.join("ca"),
        }
    })
}

fn split_at_most(bytes: &[u8], n: usize) -> (&[u8], &[u8]) {
    bytes.split_at(n.min(bytes.len()))
}

fuzz_target!(|data: &[u8]| {
    let [mode, pass_len, rest @ ..] = data else {
        return;
    };
    let (passphrase, rest) = if *pass_len == 0xFF {
        (None, rest)
    } else {
        let (pass, rest) = split_at_most(rest, usize::from(*pass_len));
        (Some(pass), rest)
    };
    let (cert_len, rest) = split_at_most(rest, 2);
    let cert_len = match cert_len {
        [hi, lo] => usize::from(u16::from_be_bytes([*hi, *lo])),
        _ => 0,
    };
    let (cert, key) = split_at_most(rest, cert_len);

    let files = files();
    let write = |path: &PathBuf, bytes: &[u8]| std::fs::write(path, bytes).expect("scratch file");
    let builder = match mode & 3 {
        0 => {
            write(&files.cert, cert);
            write(&files.key, key);
            ReloadingAcceptor::builder().identity(&files.cert, &files.key)
        }
        1 => {
            write(&files.both, rest);
            ReloadingAcceptor::builder().identity(&files.both, &files.both)
        }
        2 => {
            write(&files.both, rest);
            ReloadingAcceptor::builder().identity_pkcs12(&files.both)
        }
        _ => {
            write(&files.cert, cert);
            write(&files.key, key);
            write(&files.ca, cert);
            ReloadingAcceptor::builder().identity(&files.cert, &files.key)
                .ca(&files.ca).client_auth(ClientAuth::Optional)
        }
    };
    let validity = if mode & 4 == 0 {
        ValidityPolicy::Enforce
    } else {
        ValidityPolicy::Warn
    };
    let builder = builder.validity(validity).passphrase(match passphrase {
        Some(pass) => Passphrase::from_bytes(pass),
        None => Passphrase::none(),
    });
    if let Err(error) = builder.check() {
        // Formatting is part of the contract too: every error must print.
        let _ = (error.to_string(), format!("{error:?}"), error.path());
    }
});
