//! A CA driven by the `openssl ca` command: revocations and CRLs as operators
//! make them (`-revoke`, `-gencrl`).

use std::fs;
use std::process::Command;

use openssl::x509::X509;
use tempfile::TempDir;

use super::certs::Ca;

/// A CA that the `openssl ca` command runs: its certificate and key (minted in
/// process), an index of revocations and a CRL number.
pub struct CliCa {
    pub ca: Ca,
    dir: TempDir,
}

impl CliCa {
    pub fn new(ca: Ca) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("ca.pem"), ca.pem()).unwrap();
        fs::write(d.join("ca.key"), ca.key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        fs::write(d.join("index.txt"), b"").unwrap();
        fs::write(d.join("crlnumber"), b"01\n").unwrap();
        fs::write(
            d.join("ca.cnf"),
            format!(
                "[ca]\ndefault_ca = local\n[local]\ndir = {}\ndatabase = $dir/index.txt\n\
                 crlnumber = $dir/crlnumber\ncertificate = $dir/ca.pem\nprivate_key = $dir/ca.key\n\
                 default_md = sha256\ndefault_crl_days = 1\n",
                d.display()
            ),
        )
        .unwrap();
        Self { ca, dir }
    }

    pub fn openssl(&self, args: &[&str]) -> Vec<u8> {
        let cnf = self.dir.path().join("ca.cnf");
        let out = Command::new("openssl")
            .arg("ca")
            .arg("-config")
            .arg(&cnf)
            .args(args)
            .output()
            .expect("run openssl ca");
        assert!(
            out.status.success(),
            "openssl ca {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// `openssl ca -revoke`.
    pub fn revoke(&self, cert: &X509) {
        let path = self.dir.path().join("revoke.pem");
        fs::write(&path, cert.to_pem().unwrap()).unwrap();
        self.openssl(&["-revoke", path.to_str().unwrap()]);
    }

    /// `openssl ca -gencrl` with `extra` options, as PEM.
    pub fn crl(&self, extra: &[&str]) -> Vec<u8> {
        let mut args = vec!["-gencrl"];
        args.extend_from_slice(extra);
        self.openssl(&args)
    }
}
