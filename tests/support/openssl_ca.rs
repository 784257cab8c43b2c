//! A CA driven by the `openssl ca` command: revocations and CRLs as operators
//! make them (`-revoke`, `-gencrl`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

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
        write_ca(&ca, d, "ca");
        fs::write(d.join("index.txt"), b"").unwrap();
        fs::write(d.join("crlnumber"), b"01\n").unwrap();
        fs::write(
            d.join("ca.cnf"),
            format!(
                "[ca]\ndefault_ca = local\n[local]\ndir = {0}\ndatabase = $dir/index.txt\n\
                 crlnumber = $dir/crlnumber\ncertificate = $dir/ca.pem\nprivate_key = $dir/ca.key\n\
                 default_md = sha256\ndefault_crl_days = 1\n\
                 [delta_ca]\ndir = {0}\ndatabase = $dir/delta-index.txt\n\
                 crlnumber = $dir/crlnumber\ncertificate = $dir/ca.pem\n\
                 private_key = $dir/ca.key\ndefault_md = sha256\ndefault_crl_days = 1\n",
                d.display()
            ),
        )
        .unwrap();
        Self { ca, dir }
    }

    pub fn openssl(&self, args: &[&str]) -> Vec<u8> {
        let cnf = self.dir.path().join("ca.cnf");
        run(
            Command::new("openssl")
                .arg("ca")
                .arg("-config")
                .arg(&cnf)
                .args(args),
            &format!("openssl ca {args:?}"),
        )
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

    /// A delta CRL over the last CRL issued, listing no revocation made since,
    /// as PEM: `openssl ca -gencrl` over an empty database, with the critical
    /// Delta CRL Indicator extension (2.5.29.27, which `openssl ca` knows by no
    /// name) holding the last CRL's number. It takes the next CRL number.
    pub fn delta_crl(&self) -> Vec<u8> {
        let d = self.dir.path();
        let next = fs::read_to_string(d.join("crlnumber")).unwrap();
        let base = u64::from_str_radix(next.trim(), 16).unwrap() - 1;
        assert!(base > 0, "a delta CRL needs a complete CRL issued first");
        let cnf = d.join("ca.cnf");
        let mut text = fs::read_to_string(&cnf).unwrap();
        let section = format!("delta_{base}");
        if !text.contains(&format!("[{section}]")) {
            text.push_str(&format!(
                "[{section}]\n2.5.29.27 = critical,ASN1:INTEGER:{base}\n"
            ));
            fs::write(&cnf, text).unwrap();
        }
        fs::write(d.join("delta-index.txt"), b"").unwrap();
        let delta = self.openssl(&["-name", "delta_ca", "-gencrl", "-crlexts", &section]);
        let path = d.join("delta.pem");
        fs::write(&path, &delta).unwrap();
        let text = run(
            Command::new("openssl")
                .args(["crl", "-noout", "-text", "-in"])
                .arg(&path),
            "openssl crl -text",
        );
        let text = String::from_utf8_lossy(&text);
        assert!(
            text.contains("Delta CRL Indicator") && text.contains("No Revoked Certificates"),
            "not an empty delta CRL: {text}"
        );
        delta
    }

    /// A DER OCSP response for `cert` from `openssl ocsp -index ... -respout`,
    /// signed by this CA (or by `signer`), good unless `revoked`, valid for a
    /// day unless `extra` says otherwise (`-ndays N`).
    pub fn ocsp(&self, cert: &X509, signer: Option<&Ca>, revoked: bool, extra: &[&str]) -> Vec<u8> {
        let mut args = extra.to_vec();
        if !args.contains(&"-ndays") {
            args.extend(["-ndays", "1"]);
        }
        self.ocsp_at(None, cert, signer, revoked, &args)
    }

    /// A response made two days ago, valid for one: expired. `openssl ocsp`
    /// cannot backdate, so it runs under `faketime` (Debian's faketime); `None`
    /// when that is missing outside CI (under CI the test fails instead).
    pub fn ocsp_expired(&self, cert: &X509) -> Option<Vec<u8>> {
        faketime_or_skip("the expired staple")?;
        Some(self.ocsp_at(Some("-2d"), cert, None, false, &["-ndays", "1"]))
    }

    /// A good response for `cert` without nextUpdate (`openssl ocsp` without
    /// `-ndays` or `-nmin`), made `days_ago` days ago: under `faketime` unless
    /// 0, and `None` when that is missing outside CI, as for
    /// [`ocsp_expired`](Self::ocsp_expired).
    pub fn ocsp_without_next_update(&self, cert: &X509, days_ago: u32) -> Option<Vec<u8>> {
        if days_ago == 0 {
            return Some(self.ocsp_at(None, cert, None, false, &[]));
        }
        faketime_or_skip("an old staple")?;
        let offset = format!("-{days_ago}d");
        Some(self.ocsp_at(Some(&offset), cert, None, false, &[]))
    }

    fn ocsp_at(
        &self,
        offset: Option<&str>,
        cert: &X509,
        signer: Option<&Ca>,
        revoked: bool,
        extra: &[&str],
    ) -> Vec<u8> {
        let d = self.dir.path();
        let serial = super::certs::serial_hex(cert);
        let subject = "/CN=ocsp test";
        let row = if revoked {
            format!("R\t491231000000Z\t260101000000Z\t{serial}\tunknown\t{subject}\n")
        } else {
            format!("V\t491231000000Z\t\t{serial}\tunknown\t{subject}\n")
        };
        fs::write(d.join("ocsp-index.txt"), row).unwrap();
        fs::write(d.join("ocsp-cert.pem"), cert.to_pem().unwrap()).unwrap();
        let (rsigner, rkey) = match signer {
            Some(other) => write_ca(other, d, "signer"),
            None => (d.join("ca.pem"), d.join("ca.key")),
        };
        let out = d.join("response.der");
        let _ = fs::remove_file(&out);
        let mut cmd = match offset {
            Some(offset) => {
                let mut cmd = Command::new("faketime");
                cmd.args(["-f", offset, "openssl"]);
                cmd
            }
            None => Command::new("openssl"),
        };
        cmd.arg("ocsp")
            .arg("-index")
            .arg(d.join("ocsp-index.txt"))
            .arg("-CA")
            .arg(d.join("ca.pem"))
            .arg("-issuer")
            .arg(d.join("ca.pem"))
            .arg("-cert")
            .arg(d.join("ocsp-cert.pem"))
            .arg("-rsigner")
            .arg(rsigner)
            .arg("-rkey")
            .arg(rkey)
            .arg("-respout")
            .arg(&out)
            .args(extra);
        run(&mut cmd, "openssl ocsp");
        fs::read(&out).unwrap()
    }
}

/// `Some` when `faketime` is installed; `None` (skip `what`, saying why) when it
/// is missing outside CI; under CI a missing tool fails the test.
fn faketime_or_skip(what: &str) -> Option<()> {
    if Command::new("faketime").arg("--version").output().is_ok() {
        return Some(());
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "faketime is not installed; CI must provide it (ci/test.sh installs it)"
    );
    eprintln!("skipping {what}: faketime is not installed (apt-get install faketime)");
    None
}

/// `secs` seconds before now, in the form `openssl ca -crl_lastupdate` takes
/// (`YYYYMMDDHHMMSSZ`).
pub fn openssl_time_ago(secs: u64) -> String {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - secs;
    let (days, rest) = ((unix / 86_400) as i64, unix % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Writes `ca`'s certificate and key as `NAME.pem` and `NAME.key` in `dir`.
fn write_ca(ca: &Ca, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    fs::write(&cert, ca.pem()).unwrap();
    fs::write(&key, ca.key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    (cert, key)
}

/// Runs `cmd` and returns its standard output; panics with its standard error
/// if it fails.
fn run(cmd: &mut Command, what: &str) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
