//! Many sites chosen by SNI: `--cert-dir`, repeated `--cert`/`--key`,
//! `--strict-sni`, `check` on a directory, and `/status` and `/metrics` per site,
//! driven with `openssl s_client -servername` and curl.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use openssl::x509::X509;

use crate::clients::curl;
use crate::fixture::private;
use crate::harness::{clients_available, command, eventually, Server};
use crate::prometheus::parse_prometheus;
use crate::support::{serial_hex, write_atomic, Ca, Leaf, LeafSpec};

/// Writes `NAME.crt`/`NAME.key` for a leaf of `ca` answering for `dns`.
fn site(ca: &Ca, dir: &Path, name: &str, dns: &[&str]) -> Leaf {
    let leaf = ca.leaf_with(LeafSpec::new(dns[0]).dns(dns));
    write_atomic(&dir.join(format!("{name}.key")), &leaf.key_pem());
    write_atomic(&dir.join(format!("{name}.crt")), &leaf.cert_pem());
    private(&dir.join(format!("{name}.key")));
    leaf
}

/// `openssl s_client` with `-servername name` (or none), verifying the chain to
/// `ca`: the serial served, or the whole output of a failed handshake.
pub(crate) fn served(addr: SocketAddr, ca: &Path, name: Option<&str>) -> Result<String, String> {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &addr.to_string(), "-CAfile"])
        .arg(ca)
        .arg("-verify_return_error");
    match name {
        Some(name) => cmd.args(["-servername", name, "-verify_hostname", name]),
        None => cmd.arg("-noservername"),
    };
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{text}\n{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() || !text.contains("Verify return code: 0 (ok)") {
        return Err(all);
    }
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .ok_or(all.clone())?;
    let end = text.find("-----END CERTIFICATE-----").ok_or(all)? + 25;
    Ok(serial_hex(
        &X509::from_pem(&text.as_bytes()[begin..end]).unwrap(),
    ))
}

/// `GET path` with `name` resolving to the server.
fn get(server: &Server, ca: &Path, name: &str, path: &str) -> String {
    let port = server.port();
    let resolve = format!("{name}:{port}:127.0.0.1");
    let out = curl(
        &[
            "--cacert".to_owned(),
            ca.display().to_string(),
            "--resolve".to_owned(),
            resolve,
        ],
        &[&format!("https://{name}:{port}{path}")],
    );
    assert!(
        out.status.success(),
        "curl {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn cert_dir_serves_each_name_and_follows_the_directory() {
    if !clients_available() {
        return;
    }
    let ca = Ca::new("sites CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_pem = dir.path().join("ca.pem");
    fs::write(&ca_pem, ca.pem()).unwrap();
    let sites = dir.path().join("sites");
    fs::create_dir(&sites).unwrap();
    let api = site(&ca, &sites, "api", &["api.test"]);
    let www = site(&ca, &sites, "www", &["www.test", "web.test"]);
    let apps = site(&ca, &sites, "apps", &["*.apps.test"]);
    let server = Server::start(&[
        "--cert-dir",
        sites.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--poll-interval",
        "20ms",
    ]);
    let at = |name| served(server.addr, &ca_pem, name);
    assert_eq!(at(Some("api.test")).unwrap(), api.serial);
    assert_eq!(
        at(Some("WEB.test")).unwrap(),
        www.serial,
        "SNI is case-insensitive"
    );
    assert_eq!(at(Some("x.apps.test")).unwrap(), apps.serial);
    // No SNI: the first site by name, "api"; s_client then verifies api.test's
    // certificate, which it does not check against a name.
    assert_eq!(at(None).unwrap(), api.serial);

    let status: serde_json::Value =
        serde_json::from_str(&get(&server, &ca_pem, "www.test", "/status")).unwrap();
    let listed: Vec<(&str, bool)> = status["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["default"].as_bool().unwrap()))
        .collect();
    assert_eq!(listed, [("api", true), ("apps", false), ("www", false)]);
    assert_eq!(
        status["sites"][2]["names"],
        serde_json::json!(["web.test", "www.test"])
    );
    assert_eq!(status["sites"][2]["key_type"], "ECDSA prime256v1");
    let metrics = parse_prometheus(&get(&server, &ca_pem, "api.test", "/metrics")).unwrap();
    assert_eq!(metrics["openssl_reload_sites"], 3.0);
    assert!(metrics.contains_key(r#"openssl_reload_certificate_not_after_seconds{site="apps"}"#));

    // A pair added at runtime is served; a garbage one is left out with its file named.
    let new = site(&ca, &sites, "new", &["new.test"]);
    eventually("the new site served", || {
        at(Some("new.test")).ok().filter(|s| *s == new.serial)
    });
    fs::write(sites.join("bad.crt"), b"garbage").unwrap();
    fs::write(sites.join("bad.key"), b"garbage").unwrap();
    eventually("the bad site reported", || {
        let status: serde_json::Value =
            serde_json::from_str(&get(&server, &ca_pem, "api.test", "/status")).ok()?;
        let bad = status["sites"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == "bad")?
            .clone();
        (bad["serving"] == false && bad["last_error"]["message"].as_str()?.contains("bad.crt"))
            .then_some(())
    });
    assert_eq!(
        at(Some("api.test")).unwrap(),
        api.serial,
        "the others still served"
    );
}

#[test]
fn strict_sni_refuses_unknown_names_and_repeated_pairs_keep_their_order() {
    if !clients_available() {
        return;
    }
    let ca = Ca::new("strict CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_pem = dir.path().join("ca.pem");
    fs::write(&ca_pem, ca.pem()).unwrap();
    let b = site(&ca, dir.path(), "b", &["b.test"]);
    let a = site(&ca, dir.path(), "a", &["a.test"]);
    let path = |name: &str| dir.path().join(name).display().to_string();
    let args = [
        "--cert",
        &path("b.crt"),
        "--key",
        &path("b.key"),
        "--cert",
        &path("a.crt"),
        "--key",
        &path("a.key"),
        "--listen",
        "127.0.0.1:0",
    ];
    let server = Server::start(&args);
    // The first pair is the default, whatever the names' order.
    assert_eq!(served(server.addr, &ca_pem, None).unwrap(), b.serial);
    assert_eq!(
        served(server.addr, &ca_pem, Some("a.test")).unwrap(),
        a.serial
    );
    // The default answers an unknown name, and so fails the client's hostname check.
    let unknown = served(server.addr, &ca_pem, Some("other.test")).unwrap_err();
    assert!(unknown.contains("Verify return code: 62"), "{unknown}");
    drop(server);

    let strict = Server::start(&[&args[..], &["--strict-sni"]].concat());
    for name in [Some("other.test"), None] {
        let error = served(strict.addr, &ca_pem, name).unwrap_err();
        assert!(error.contains("unrecognized name"), "{name:?}: {error}");
    }
    assert_eq!(
        served(strict.addr, &ca_pem, Some("b.test")).unwrap(),
        b.serial
    );

    let out = command()
        .args([
            "serve",
            "--cert",
            &path("b.crt"),
            "--cert",
            &path("a.crt"),
            "--key",
            &path("b.key"),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("one --key per --cert"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_lists_a_directory_and_fails_on_a_bad_site() {
    let ca = Ca::new("check sites CA");
    let dir = tempfile::tempdir().unwrap();
    site(&ca, dir.path(), "one", &["one.test"]);
    site(&ca, dir.path(), "two", &["two.test", "*.two.test"]);
    let check = || {
        command()
            .args(["check", "--cert-dir"])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let out = check();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("one: one.test | ECDSA prime256v1"), "{text}");
    assert!(text.contains("| default"), "{text}");
    assert!(text.contains("two: *.two.test, two.test"), "{text}");
    assert!(
        text.contains("2 sites would be served, 0 left out"),
        "{text}"
    );

    fs::write(
        dir.path().join("broken.pem"),
        b"-----BEGIN CERTIFICATE-----\nno\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let out = check();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("broken: NOT SERVED:"), "{text}");
    assert!(text.contains("broken.pem"), "{text}");
    assert!(
        text.contains("2 sites would be served, 1 left out"),
        "{text}"
    );
}
