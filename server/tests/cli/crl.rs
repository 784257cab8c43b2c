//! `--crl`: revoked clients refused by curl's handshakes after the CRL file is
//! replaced, the CRL in `/status` and `/metrics`, and `check --crl`.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::clients::curl;
use crate::fixture::Files;
use crate::harness::{clients_available, command, eventually, Server};
use crate::prometheus::parse_prometheus;
use crate::support::{openssl_time_ago, write_atomic, Ca, CliCa, Leaf};

/// An `openssl ca` directory over the fixture's CA, to revoke and issue CRLs.
fn cli_ca(f: &Files) -> CliCa {
    CliCa::new(Ca {
        cert: f.ca.cert.clone(),
        key: f.ca.key.clone(),
    })
}

/// A client's certificate and key files, for curl's `--cert`/`--key`.
fn client_files(f: &Files, leaf: &Leaf, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        f.path(&format!("{name}.pem")),
        f.path(&format!("{name}.key")),
    );
    fs::write(&cert, leaf.cert_pem()).unwrap();
    fs::write(&key, leaf.key_pem()).unwrap();
    (cert, key)
}

/// Whether curl presenting `client` gets `/`.
fn served(server: &Server, f: &Files, client: &(PathBuf, PathBuf)) -> bool {
    let mut args = server.curl_args(&f.ca_pem);
    args.extend([
        "--cert".to_owned(),
        client.0.display().to_string(),
        "--key".to_owned(),
        client.1.display().to_string(),
    ]);
    curl(&args, &[&server.url("/")]).status.success()
}

#[test]
fn a_revoked_client_is_refused_and_the_crl_is_reported() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let ca = cli_ca(&f);
    let alice_leaf = f.ca.leaf("alice");
    let alice = client_files(&f, &alice_leaf, "alice");
    let bob_leaf = f.ca.leaf("bob");
    let bob = client_files(&f, &bob_leaf, "bob");
    let crl = f.path("ca.crl");
    write_atomic(&crl, &ca.crl(&[]));
    let (ca_arg, crl_arg) = (f.ca_pem.display().to_string(), crl.display().to_string());
    let server = f.start(&[
        "--ca",
        &ca_arg,
        "--crl",
        &crl_arg,
        "--crl-check",
        "leaf",
        "--poll-interval",
        "20ms",
    ]);
    assert!(served(&server, &f, &alice));
    assert!(served(&server, &f, &bob));

    ca.revoke(&alice_leaf.cert);
    write_atomic(&crl, &ca.crl(&[]));
    eventually("Alice to be refused", || {
        (!served(&server, &f, &alice)).then_some(())
    });
    assert!(served(&server, &f, &bob));

    let mut args = server.curl_args(&f.ca_pem);
    args.extend([
        "--cert".to_owned(),
        bob.0.display().to_string(),
        "--key".to_owned(),
        bob.1.display().to_string(),
    ]);
    let out = curl(&args, &[&server.url("/status")]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed = &status["crls"][0];
    assert_eq!(listed["issuer"], "CN=cli test CA", "{status:#}");
    assert_eq!(listed["number"], "2", "{status:#}");
    assert_eq!(listed["revoked"], 1, "{status:#}");
    assert_eq!(listed["path"], crl_arg.as_str());
    let next_update = listed["next_update"].as_str().unwrap().to_owned();
    assert!(next_update.ends_with('Z'), "{next_update}");

    let out = curl(&args, &[&server.url("/metrics")]);
    let text = String::from_utf8(out.stdout).unwrap();
    let samples = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let next =
        samples[r#"openssl_reload_crl_next_update_timestamp_seconds{issuer="CN=cli test CA"}"#];
    let parsed = openssl::x509::X509Crl::from_pem(&fs::read(&crl).unwrap()).unwrap();
    assert_eq!(
        next,
        crate::clients::unix_time(parsed.next_update().unwrap()) as f64
    );
    assert_eq!(
        samples[r#"openssl_reload_crl_revoked_certificates{issuer="CN=cli test CA"}"#],
        1.0
    );
    let site = f.cert.display();
    let expiry =
        format!(r#"openssl_reload_certificate_expiration_timestamp_seconds{{site="{site}"}}"#);
    let alias = format!(r#"openssl_reload_certificate_not_after_seconds{{site="{site}"}}"#);
    assert_eq!(samples[&expiry], samples[&alias]);
    assert_eq!(
        samples[&expiry],
        crate::clients::unix_time(f.leaf.cert.not_after()) as f64
    );
}

/// `check` of the files' certificate, key and CA bundle with `crl`.
fn check_crl(f: &Files, crl: &Path) -> std::process::Output {
    command()
        .arg("check")
        .args([OsStr::new("--cert"), f.cert.as_os_str()])
        .args([OsStr::new("--key"), f.key.as_os_str()])
        .args([OsStr::new("--ca"), f.ca_pem.as_os_str()])
        .args([OsStr::new("--crl"), crl.as_os_str()])
        .output()
        .unwrap()
}

#[test]
fn check_validates_a_crl() {
    let f = Files::new();
    let ca = cli_ca(&f);
    let good = f.path("good.crl");
    write_atomic(&good, &ca.crl(&[]));
    let stranger = f.path("stranger.crl");
    write_atomic(&stranger, &CliCa::new(Ca::new("stranger")).crl(&[]));
    let check = |crl: &PathBuf| check_crl(&f, crl);
    let out = check(&good);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("CRL:        CN=cli test CA | number 1 | 0 revoked"),
        "{stdout}"
    );
    assert!(stdout.contains("CRLs signed by the CA bundle"), "{stdout}");

    let out = check(&stranger);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&stranger.display().to_string()), "{stderr}");
    assert!(stderr.contains("signed by no CA in the bundle"), "{stderr}");
}

#[test]
fn a_crl_file_holding_a_delta_crl_is_refused_by_serve_and_check() {
    let f = Files::new();
    let ca = cli_ca(&f);
    let alice = f.ca.leaf("alice");
    ca.revoke(&alice.cert);
    let base = ca.crl(&["-crl_lastupdate", &openssl_time_ago(3600)]);
    let crl = f.path("ca.crl");
    write_atomic(&crl, &[base, ca.delta_crl()].concat());
    let (ca_arg, crl_arg) = (f.ca_pem.display().to_string(), crl.display().to_string());

    // At start-up: a configuration error, one line naming the file. A server
    // that starts anyway is stopped rather than waited for.
    let mut child = command()
        .arg("serve")
        .args(f.serve_args())
        .args(["--ca", &ca_arg, "--crl", &crl_arg])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "serve started with a delta CRL: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&crl_arg), "{stderr}");
    assert!(stderr.contains("is a delta CRL"), "{stderr}");

    // `check --crl` reports it too.
    let out = check_crl(&f, &crl);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&crl_arg), "{stderr}");
    assert!(stderr.contains("is a delta CRL"), "{stderr}");
}

#[test]
fn a_crl_past_its_next_update_is_warned_about_once_and_enforced_or_refuses_all() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let ca = cli_ca(&f);
    let alice_leaf = f.ca.leaf("alice");
    let alice = client_files(&f, &alice_leaf, "alice");
    let bob = client_files(&f, &f.ca.leaf("bob"), "bob");
    ca.revoke(&alice_leaf.cert);
    let crl = f.path("ca.crl");
    write_atomic(&crl, &ca.crl(&["-crlsec", "2"]));
    let (ca_arg, crl_arg) = (f.ca_pem.display().to_string(), crl.display().to_string());
    let args = [
        "--ca",
        &ca_arg,
        "--crl",
        &crl_arg,
        "--poll-interval",
        "20ms",
    ];
    let enforcing = f.start(&args);
    let refusing = f.start(&[&args[..], &["--stale-crl", "refuse"]].concat());
    assert!(served(&refusing, &f, &bob));

    let parsed = openssl::x509::X509Crl::from_pem(&fs::read(&crl).unwrap()).unwrap();
    let next_update = crate::clients::unix_time(parsed.next_update().unwrap());
    eventually("the CRL's nextUpdate to pass", || {
        (unix_now() > next_update).then_some(())
    });
    let warning = "CRL in service is past its nextUpdate";
    enforcing.wait_log(warning);
    refusing.wait_log(warning);
    // Revocation is still checked; only the refusing server turns Bob away.
    assert!(!served(&enforcing, &f, &alice));
    assert!(served(&enforcing, &f, &bob));
    assert!(!served(&refusing, &f, &alice));
    assert!(!served(&refusing, &f, &bob));
    // Many polls later, still one warning.
    assert_eq!(enforcing.log_count(warning), 1);
    assert!(enforcing.log_count("still enforcing it") == 1);
    assert!(refusing.log_count("every certificate it covers is refused") == 1);
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
