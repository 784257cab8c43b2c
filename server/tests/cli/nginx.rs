//! The nginx module (`nginx/`) in Debian's nginx 1.22: a master and two
//! workers over real sockets, files rotated by rename, no `nginx -s reload`
//! unless a test says so. ci/nginx.sh builds the module and runs these with
//! `--ignored`, naming it in `OPENSSL_RELOAD_NGINX_MODULE`.

/// 500 rotations at 50 ms under curl and h2load traffic.
mod churn;
/// An RSA and an ECDSA pair in one server block.
mod keytypes;
/// The harness: nginx in a prefix of its own, one request over s_client.
pub(crate) mod run;
/// `ssl_session_ticket_key` files with mutual TLS.
mod ticket_keys;
/// `ssl_crl` and `ssl_password_file`.
mod trust;
/// nginx as one process under valgrind's memcheck.
mod valgrind;
/// Workers as `nobody`: readable and unreadable keys.
mod workers_user;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use self::run::{assert_serves, get, test_config, Nginx};
use crate::fixture::{private, replace_private, Files};
use crate::support::{write_atomic, write_in_place, Ca, CliCa, Leaf, LeafSpec};

/// How long a rotation may take to reach every worker (20 ms interval).
const DEADLINE: Duration = Duration::from_secs(20);

/// A server block for `name` over a certificate pair, reloaded every 20 ms;
/// `extra` adds directives.
fn block(name: &str, cert: &Path, key: &Path, extra: &str) -> String {
    format!(
        "server {{\n  listen 127.0.0.1:PORT ssl http2;\n  server_name {name};\n\
         ssl_certificate {};\n  ssl_certificate_key {};\n  {extra}\n\
         openssl_reload on;\n  openssl_reload_interval 20ms;\n\
         location / {{ add_header X-Pid $pid always; return 200 \"ok\\n\"; }}\n}}\n",
        cert.display(),
        key.display(),
    )
}

/// Writes `leaf` over `cert` and `key` by rename, the key first.
fn rotate(cert: &Path, key: &Path, leaf: &Leaf) {
    replace_private(key, &leaf.key_pem());
    write_atomic(cert, &leaf.cert_pem());
}

/// Requests `name` until every one of `workers` has answered with `serial`;
/// a worker that has served it never goes back.
fn every_worker_serves(nginx: &Nginx, ca: &Path, name: &str, workers: &[i32], serial: &str) {
    every_worker_serves_with(nginx, ca, name, &[], workers, serial);
}

/// `every_worker_serves` for a client with `flags` (`-sigalgs`, `-cipher`).
pub(crate) fn every_worker_serves_with(
    nginx: &Nginx,
    ca: &Path,
    name: &str,
    flags: &[&str],
    workers: &[i32],
    serial: &str,
) {
    let mut seen = BTreeMap::new();
    let start = Instant::now();
    while workers.iter().any(|w| seen.get(w) != Some(&true)) {
        let got = get(nginx.addr, ca, name, flags);
        assert_eq!(got.status, Some(200), "{}", got.text);
        let pid = got.pid.expect("X-Pid");
        assert!(workers.contains(&pid), "answered by {pid}, not {workers:?}");
        let new = got.serial.as_deref() == Some(serial);
        assert!(
            new || seen.get(&pid) != Some(&true),
            "worker {pid} went back"
        );
        seen.insert(pid, new);
        assert!(
            start.elapsed() < DEADLINE,
            "not every worker serves {serial}: {seen:?}"
        );
    }
}

#[test]
#[ignore = "needs the nginx module: run by ci/nginx.sh"]
fn every_worker_serves_a_rotated_certificate_without_a_reload_and_h2_still_negotiates() {
    let f = Files::new();
    let nginx = Nginx::start(f.dir.path(), &block("localhost", &f.cert, &f.key, ""));
    let workers = nginx.workers();
    assert_serves(nginx.addr, &f.ca_pem, "localhost", &f.leaf.serial);

    let next = f.ca.leaf("localhost");
    rotate(&f.cert, &f.key, &next);
    every_worker_serves(&nginx, &f.ca_pem, "localhost", &workers, &next.serial);
    assert_eq!(nginx.workers(), workers, "new worker processes");
    let h2 = get(
        nginx.addr,
        &f.ca_pem,
        "localhost",
        &["-alpn", "h2,http/1.1"],
    );
    assert_eq!(h2.alpn.as_deref(), Some("h2"), "{}", h2.text);
    assert_eq!(h2.serial.as_deref(), Some(&*next.serial));

    // Rewritten in place (an editor, `cp` over the files): the same.
    let third = f.ca.leaf("localhost");
    write_in_place(&f.key, &third.key_pem());
    write_in_place(&f.cert, &third.cert_pem());
    every_worker_serves(&nginx, &f.ca_pem, "localhost", &workers, &third.serial);
    assert_eq!(nginx.workers(), workers, "new worker processes");
    let http1 = get(nginx.addr, &f.ca_pem, "localhost", &["-alpn", "http/1.1"]);
    assert_eq!(http1.alpn.as_deref(), Some("http/1.1"), "{}", http1.text);
}

#[test]
#[ignore = "needs the nginx module: run by ci/nginx.sh"]
fn nginx_t_refuses_certificate_paths_with_variables() {
    let f = Files::new();
    // nginx loads such a pair per connection; the module reloads files.
    let dir = f.dir.path().display().to_string();
    let cert = Path::new(&dir).join("$ssl_server_name.pem");
    let key = Path::new(&dir).join("$ssl_server_name.key");
    let out = test_config(f.dir.path(), &block("localhost", &cert, &key, ""));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "nginx -t passed: {text}");
    assert!(
        text.contains("openssl_reload: an ssl_certificate or ssl_certificate_key with variables"),
        "{text}"
    );
}

#[test]
#[ignore = "needs the nginx module: run by ci/nginx.sh"]
fn nginx_t_names_a_bad_file_and_a_bad_file_at_run_time_is_logged_once_and_kept_out() {
    let f = Files::new();
    // An expired certificate, which nginx itself would serve: the module's
    // check refuses it at configuration time, naming the file.
    let expired =
        f.ca.leaf_with(LeafSpec::new("localhost").validity(-7200, -3600));
    let (old_cert, old_key) = (f.path("expired.pem"), f.path("expired-key.pem"));
    fs::write(&old_cert, expired.cert_pem()).unwrap();
    fs::write(&old_key, expired.key_pem()).unwrap();
    private(&old_key);
    let out = test_config(f.dir.path(), &block("localhost", &old_cert, &old_key, ""));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "nginx -t passed: {text}");
    assert!(
        text.contains("openssl_reload") && text.contains(&*old_cert.to_string_lossy()),
        "{text}"
    );

    let nginx = Nginx::start(f.dir.path(), &block("localhost", &f.cert, &f.key, ""));
    let workers = nginx.workers();
    write_atomic(&f.cert, b"-----BEGIN CERTIFICATE-----\ngarbage\n");
    let cert = f.cert.display().to_string();
    nginx.wait_error_naming(&cert);
    // Both workers keep the certificate in service, over many more intervals.
    every_worker_serves(&nginx, &f.ca_pem, "localhost", &workers, &f.leaf.serial);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(nginx.errors_naming(&cert), 1, "{}", nginx.error_log());
}

#[test]
#[ignore = "needs the nginx module: run by ci/nginx.sh"]
fn two_server_blocks_chosen_by_sni_rotate_independently() {
    let f = Files::new();
    let other = |ca: &Ca| ca.leaf_with(LeafSpec::new("other.example").dns(&["other.example"]));
    let b = other(&f.ca);
    let (b_cert, b_key) = (f.path("b.pem"), f.path("b-key.pem"));
    rotate(&b_cert, &b_key, &b);
    let servers =
        block("localhost", &f.cert, &f.key, "") + &block("other.example", &b_cert, &b_key, "");
    let nginx = Nginx::start(f.dir.path(), &servers);
    let workers = nginx.workers();
    let serial = |name: &str| get(nginx.addr, &f.ca_pem, name, &[]).serial.unwrap();
    assert_eq!(serial("other.example"), b.serial);
    assert_eq!(serial("localhost"), f.leaf.serial);

    let b2 = other(&f.ca);
    rotate(&b_cert, &b_key, &b2);
    every_worker_serves(&nginx, &f.ca_pem, "other.example", &workers, &b2.serial);
    every_worker_serves(&nginx, &f.ca_pem, "localhost", &workers, &f.leaf.serial);
    let a2 = f.ca.leaf("localhost");
    rotate(&f.cert, &f.key, &a2);
    every_worker_serves(&nginx, &f.ca_pem, "localhost", &workers, &a2.serial);
    assert_eq!(serial("other.example"), b2.serial);
}

#[test]
#[ignore = "needs the nginx module: run by ci/nginx.sh"]
fn each_block_is_polled_at_its_own_interval() {
    let f = Files::new();
    let b =
        f.ca.leaf_with(LeafSpec::new("other.example").dns(&["other.example"]));
    let (b_cert, b_key) = (f.path("b.pem"), f.path("b-key.pem"));
    rotate(&b_cert, &b_key, &b);
    let hourly = block("other.example", &b_cert, &b_key, "").replace(
        "openssl_reload_interval 20ms;",
        "openssl_reload_interval 1h;",
    );
    let nginx = Nginx::start(
        f.dir.path(),
        &(block("localhost", &f.cert, &f.key, "") + &hourly),
    );
    let workers = nginx.workers();
    let b2 =
        f.ca.leaf_with(LeafSpec::new("other.example").dns(&["other.example"]));
    rotate(&b_cert, &b_key, &b2);
    let a2 = f.ca.leaf("localhost");
    rotate(&f.cert, &f.key, &a2);
    // The 20 ms block's rotation reaches every worker; the hourly block,
    // rotated before it, is not polled meanwhile.
    every_worker_serves(&nginx, &f.ca_pem, "localhost", &workers, &a2.serial);
    every_worker_serves(&nginx, &f.ca_pem, "other.example", &workers, &b.serial);
}

/// Threads and open descriptors of a process.
fn counts(pid: i32) -> (usize, usize) {
    let n = |what: &str| fs::read_dir(format!("/proc/{pid}/{what}")).unwrap().count();
    (n("task"), n("fd"))
}

/// What each open descriptor of a process points at, for a failure message.
fn fd_targets(pid: i32) -> Vec<String> {
    let dir = fs::read_dir(format!("/proc/{pid}/fd")).unwrap();
    let link = |e: fs::DirEntry| fs::read_link(e.path()).map(|t| t.display().to_string());
    dir.flatten().filter_map(|e| link(e).ok()).collect()
}

#[test]
#[ignore = "needs the nginx module: run by ci/nginx.sh"]
fn twenty_reloads_leave_threads_and_descriptors_flat_and_rotation_working() {
    let f = Files::new();
    let nginx = Nginx::start(f.dir.path(), &block("localhost", &f.cert, &f.key, ""));
    let snapshot = |workers: &[i32]| {
        let mut all: Vec<_> = workers.iter().map(|w| counts(*w)).collect();
        all.push(counts(nginx.master));
        all
    };
    // A new worker holds the channel of each old worker until the master has
    // reaped it and told the worker to close it; a leak stays. So wait, with a
    // deadline, until the master's only children are the new workers and the
    // counts hold still, and after the reloads for the counts after one.
    let children = format!("/proc/{0}/task/{0}/children", nginx.master);
    let settled = |workers: &[i32], want: Option<&Vec<(usize, usize)>>| {
        let start = Instant::now();
        let mut last = snapshot(workers);
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let now = snapshot(workers);
            let mut kids: Vec<i32> = fs::read_to_string(&children)
                .unwrap()
                .split_whitespace()
                .map(|p| p.parse().unwrap())
                .collect();
            kids.sort_unstable();
            let done = kids == workers
                && match want {
                    Some(want) => now == *want,
                    None => now == last,
                };
            if done || start.elapsed() > Duration::from_secs(5) {
                return now;
            }
            last = now;
        }
    };
    let after_one = settled(&nginx.reload(), None);
    assert_eq!(counts(nginx.master).0, 1, "the master runs no thread");
    let mut workers = Vec::new();
    for _ in 1..20 {
        workers = nginx.reload();
    }
    let after_twenty = settled(&workers, Some(&after_one));
    let open: Vec<_> = workers.iter().map(|w| fd_targets(*w)).collect();
    assert_eq!(
        after_twenty, after_one,
        "threads and fds after 20 reloads vs 1; the workers' descriptors: {open:?}"
    );
    let next = f.ca.leaf("localhost");
    rotate(&f.cert, &f.key, &next);
    every_worker_serves(&nginx, &f.ca_pem, "localhost", &workers, &next.serial);
}

#[test]
#[ignore = "needs the nginx module: run by ci/nginx.sh"]
fn a_client_whose_ca_was_dropped_is_refused_also_with_a_saved_session() {
    let f = Files::new();
    let client = f.ca.leaf_with(LeafSpec::new("client"));
    let (c_cert, c_key) = (f.path("client.pem"), f.path("client-key.pem"));
    rotate(&c_cert, &c_key, &client);
    let client_ca = f.path("client-ca.pem");
    write_atomic(&client_ca, &f.ca.pem());
    let mtls = format!(
        "ssl_client_certificate {};\n  ssl_verify_client on;\n  \
         ssl_session_cache shared:SSL:1m;\n  ssl_session_tickets on;",
        client_ca.display()
    );
    let nginx = Nginx::start(f.dir.path(), &block("localhost", &f.cert, &f.key, &mtls));
    let session = f.path("session.pem").display().to_string();
    let (cert, key) = (c_cert.display().to_string(), c_key.display().to_string());
    let with = |flags: &[&str]| {
        let mut all = vec!["-cert", &*cert, "-key", &*key];
        all.extend(flags);
        get(nginx.addr, &f.ca_pem, "localhost", &all)
    };
    assert_eq!(with(&["-sess_out", &session]).status, Some(200));
    let resumed = with(&["-sess_in", &session]);
    assert!(
        resumed.reused && resumed.status == Some(200),
        "{}",
        resumed.text
    );

    write_atomic(&client_ca, &Ca::new("another client CA").pem());
    let start = Instant::now();
    while with(&[]).status == Some(200) {
        assert!(
            start.elapsed() < DEADLINE,
            "the dropped CA's client still gets in"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every worker: a session may land on either.
    for _ in 0..6 {
        let again = with(&["-sess_in", &session]);
        assert!(!again.reused, "resumed after the CA drop: {}", again.text);
        assert_ne!(again.status, Some(200), "{}", again.text);
    }
}

#[test]
#[ignore = "needs the nginx module: run by ci/nginx.sh"]
fn ssl_stapling_staples_nginx_response_until_the_certificate_is_rotated() {
    let f = Files::new();
    let cli = CliCa::new(Ca {
        cert: f.ca.cert.clone(),
        key: f.ca.key.clone(),
    });
    // Not `<certificate>.ocsp`, which the library would staple itself.
    let staple = f.path("nginx-staple.der");
    fs::write(&staple, cli.ocsp(&f.leaf.cert, None, false, &[])).unwrap();
    let stapling = format!(
        "ssl_stapling on;\n  ssl_stapling_file {};",
        staple.display()
    );
    let nginx = Nginx::start(
        f.dir.path(),
        &block("localhost", &f.cert, &f.key, &stapling),
    );
    let workers = nginx.workers();
    // Every worker staples nginx's response for the certificate nginx loaded.
    for _ in 0..6 {
        let got = get(nginx.addr, &f.ca_pem, "localhost", &["-status"]);
        assert_eq!(got.serial.as_deref(), Some(&*f.leaf.serial));
        assert!(
            got.text.contains("OCSP Response Status: successful")
                && got.text.contains("Cert Status: good"),
            "{}",
            got.text
        );
    }

    // nginx's response is for the old certificate: the new one gets none.
    let next = f.ca.leaf("localhost");
    rotate(&f.cert, &f.key, &next);
    every_worker_serves(&nginx, &f.ca_pem, "localhost", &workers, &next.serial);
    for _ in 0..6 {
        let got = get(nginx.addr, &f.ca_pem, "localhost", &["-status"]);
        assert_eq!(got.serial.as_deref(), Some(&*next.serial));
        assert!(
            got.text.contains("OCSP response: no response sent"),
            "{}",
            got.text
        );
    }
}
