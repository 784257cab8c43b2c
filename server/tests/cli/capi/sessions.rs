//! Session resumption through the C interface, with real `openssl s_client
//! -sess_out` / `-sess_in` against C servers under valgrind: a session resumes
//! only where a full handshake with the same client certificate and name, on
//! the same application context, would succeed.
//!
//! - `tests/c/sessions.c contexts`: two contexts of the application attached
//!   to one reloader and sharing ticket keys, a public one and one that
//!   demands client certificates;
//! - `tests/c/sessions.c switch`: the application's servername callback
//!   switches a name to a context attached to a second reloader that requires
//!   client certificates;
//! - `tests/c/server.c servername`: `openssl_reload_server_install` after a CA
//!   was dropped from the client CA bundle.
//!
//! Each refusal is checked next to a control that does resume (or is served),
//! so that a library that never resumes, or refuses everyone, fails too.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{c_server, strs, CProgram};
use crate::clients::output_within_deadline;
use crate::fixture::{private, Files};
use crate::support::{write_atomic, Ca, LeafSpec};

const VERSIONS: [&str; 2] = ["-tls1_3", "-tls1_2"];

/// What one `openssl s_client` connection saw.
struct Outcome {
    /// Whether the server resumed the offered session (`Reused, TLSv1.x`).
    reused: bool,
    /// The rest of the C server's `hello` line (`context=NAME` from
    /// sessions.c, `alpn=PROTO` from server.c): its `SSL_accept` succeeded.
    hello: Option<String>,
    /// Standard output and error, for the assertions' messages.
    text: String,
}

impl Outcome {
    /// Served, the C server's line being `hello HELLO`, with the server's
    /// certificate verified for the name asked for.
    fn assert_served(&self, hello: &str, what: &str) {
        assert_eq!(
            self.hello.as_deref(),
            Some(hello),
            "{what}: not served by {hello}:\n{}",
            self.text
        );
        assert!(
            self.text.contains("Verify return code: 0 (ok)"),
            "{what}:\n{}",
            self.text
        );
    }

    /// Not resumed, not served, and refused with `alert`.
    fn assert_refused(&self, alert: &str, what: &str) {
        assert!(
            !self.reused,
            "{what}: the session was reused:\n{}",
            self.text
        );
        assert!(
            self.hello.is_none(),
            "{what}: the connection was served:\n{}",
            self.text
        );
        assert!(
            self.text.contains(alert),
            "{what}: no {alert:?} alert:\n{}",
            self.text
        );
    }
}

/// Where `openssl s_client` connects: the address, the name it sends and
/// verifies, and the CA it verifies the server against.
struct Target<'a> {
    addr: SocketAddr,
    name: &'a str,
    ca: &'a Path,
}

impl Target<'_> {
    /// Connects over `version` with `extra` arguments; `-ign_eof` reads until
    /// the server closes, so its line (and a TLS 1.3 ticket, sent after the
    /// handshake) arrives.
    fn connect(&self, version: &str, extra: &[&str]) -> Outcome {
        let mut cmd = Command::new("openssl");
        cmd.args(["s_client", "-connect", &self.addr.to_string()])
            .args(["-servername", self.name, "-verify_hostname", self.name])
            .args(["-ign_eof", version, "-CAfile"])
            .arg(self.ca)
            .args(extra);
        let out = output_within_deadline(&mut cmd, b"");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // s_client prints what it reads as it comes, so the line may land in
        // the middle of one of its own.
        let hello = ["hello context=", "hello alpn="].iter().find_map(|marker| {
            let start = text.find(marker)? + "hello ".len();
            Some(text[start..].lines().next()?.to_owned())
        });
        Outcome {
            reused: text.contains("Reused, TLSv1."),
            hello,
            text,
        }
    }

    /// A new session, saved in `session`, served by `hello`.
    fn save(&self, version: &str, session: &Path, cert: &[&str], hello: &str) {
        let made = self.connect(version, &[cert, &["-sess_out", s(session)]].concat());
        made.assert_served(hello, &format!("{version}: a new session"));
        assert!(!made.reused, "{version}: reused without a session");
        assert!(
            session.exists(),
            "{version}: no session saved:\n{}",
            made.text
        );
    }

    /// Offers the session saved in `session`, with `cert` if not empty.
    fn offer(&self, version: &str, session: &Path, cert: &[&str]) -> Outcome {
        self.connect(version, &[cert, &["-sess_in", s(session)]].concat())
    }
}

/// The alert a server that demands a client certificate sends a client
/// without one: TLS 1.3 has its own.
fn no_certificate_alert(version: &str) -> &'static str {
    match version {
        "-tls1_3" => "certificate required",
        _ => "handshake failure",
    }
}

/// A client certificate and key from `ca`, written next to the test's files.
fn client(f: &Files, ca: &Ca, name: &str) -> [String; 4] {
    let leaf = ca.leaf(name);
    let cert = f.path(&format!("{name}.pem"));
    let key = f.path(&format!("{name}-key.pem"));
    fs::write(&cert, leaf.cert_pem()).unwrap();
    fs::write(&key, leaf.key_pem()).unwrap();
    private(&key);
    [
        "-cert".to_owned(),
        cert.display().to_string(),
        "-key".to_owned(),
        key.display().to_string(),
    ]
}

fn session(f: &Files, name: &str, version: &str) -> PathBuf {
    f.path(&format!("{name}{version}.session"))
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
#[ignore = "needs the C programs: run by ci/capi.sh"]
fn c_contexts_attached_to_one_reloader_keep_their_sessions_apart() {
    let f = Files::new();
    let client_ca = Ca::new("internal client CA");
    let client_ca_pem = f.path("client-ca.pem");
    fs::write(&client_ca_pem, client_ca.pem()).unwrap();
    let cert_args = client(&f, &client_ca, "internal-client");
    let cert = &strs(&cert_args);

    let args = ["contexts", s(&client_ca_pem), s(&f.cert), s(&f.key)];
    let mut server = CProgram::start("sessions", &args);
    let line = server.wait_line("the listening line", |l| l.starts_with("listening "));
    let target = |key: &str| -> Target<'_> {
        let port = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {line:?}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port.parse().unwrap()));
        Target {
            addr,
            name: "localhost",
            ca: &f.ca_pem,
        }
    };
    let (public, internal) = (target("public="), target("internal="));

    for version in VERSIONS {
        let public_session = &session(&f, "public", version);
        public.save(version, public_session, &[], "context=public");

        // The control: back on PUBLIC, the session resumes.
        let back = public.offer(version, public_session, &[]);
        back.assert_served("context=public", "PUBLIC's session on PUBLIC");
        assert!(
            back.reused,
            "{version}: not resumed on PUBLIC:\n{}",
            back.text
        );

        // On INTERNAL, whose ticket keys decrypt it: a full handshake, which
        // fails for want of a client certificate.
        internal.offer(version, public_session, &[]).assert_refused(
            no_certificate_alert(version),
            &format!("{version}: PUBLIC's session offered to INTERNAL without a certificate"),
        );

        // With a certificate, INTERNAL serves the client in full; a session
        // made there resumes there, and not on PUBLIC.
        let full = internal.offer(version, public_session, cert);
        full.assert_served("context=internal", "INTERNAL with a certificate");
        assert!(
            !full.reused,
            "{version}: PUBLIC's session resumed:\n{}",
            full.text
        );
        let internal_session = &session(&f, "internal", version);
        internal.save(version, internal_session, cert, "context=internal");
        let again = internal.offer(version, internal_session, &[]);
        again.assert_served("context=internal", "INTERNAL's session on INTERNAL");
        assert!(
            again.reused,
            "{version}: not resumed on INTERNAL:\n{}",
            again.text
        );
        let out = public.offer(version, internal_session, &[]);
        out.assert_served("context=public", "INTERNAL's session on PUBLIC");
        assert!(
            !out.reused,
            "{version}: INTERNAL's session resumed:\n{}",
            out.text
        );
    }
    server.finish();
}

#[test]
#[ignore = "needs the C programs: run by ci/capi.sh"]
fn c_servername_switch_to_a_second_reloader_does_not_resume_the_first_ones_sessions() {
    let f = Files::new();
    let site = |name: &str| -> [String; 2] {
        let leaf = f.ca.leaf_with(LeafSpec::new(name).dns(&[name]));
        let cert = f.path(&format!("{name}.pem"));
        let key = f.path(&format!("{name}-key.pem"));
        fs::write(&cert, leaf.cert_pem()).unwrap();
        fs::write(&key, leaf.key_pem()).unwrap();
        private(&key);
        [cert.display().to_string(), key.display().to_string()]
    };
    let [cert_a, key_a] = site("a.example");
    let [cert_b, key_b] = site("b.example");
    let client_ca = Ca::new("b client CA");
    let client_ca_pem = f.path("client-ca.pem");
    fs::write(&client_ca_pem, client_ca.pem()).unwrap();
    let cert_args = client(&f, &client_ca, "b-client");
    let cert = &strs(&cert_args);

    let args = [
        "switch",
        s(&client_ca_pem),
        &cert_a,
        &key_a,
        &cert_b,
        &key_b,
    ];
    let mut server = CProgram::start("sessions", &args);
    let line = server.wait_line("the listening line", |l| l.starts_with("listening "));
    let addr = SocketAddr::from(([127, 0, 0, 1], line["listening ".len()..].parse().unwrap()));
    let (a, b) = (
        Target {
            addr,
            name: "a.example",
            ca: &f.ca_pem,
        },
        Target {
            addr,
            name: "b.example",
            ca: &f.ca_pem,
        },
    );

    for version in VERSIONS {
        let a_session = &session(&f, "a", version);
        a.save(version, a_session, &[], "context=a");

        // The control: for a.example again, the session resumes.
        let back = a.offer(version, a_session, &[]);
        back.assert_served("context=a", "a.example's session for a.example");
        assert!(back.reused, "{version}: not resumed:\n{}", back.text);

        // For b.example, which the application switches to B: a full
        // handshake, which B's reloader refuses without a client certificate.
        b.offer(version, a_session, &[]).assert_refused(
            no_certificate_alert(version),
            &format!("{version}: a.example's session offered for b.example without a certificate"),
        );

        // A client with a certificate from B's CA is served on B, in full.
        let full = b.offer(version, a_session, cert);
        full.assert_served("context=b", "b.example with a client certificate");
        assert!(
            !full.reused,
            "{version}: a.example's session resumed:\n{}",
            full.text
        );
    }
    server.finish();
}

#[test]
#[ignore = "needs the C programs: run by ci/capi.sh"]
fn c_server_install_refuses_a_session_whose_client_ca_was_dropped() {
    let f = Files::new();
    let (ca1, ca2) = (Ca::new("client CA 1"), Ca::new("client CA 2"));
    let bundle = f.path("client-cas.pem");
    write_atomic(&bundle, &[ca1.pem(), ca2.pem()].concat());
    let dropped_args = client(&f, &ca1, "ca1-client");
    let kept_args = client(&f, &ca2, "ca2-client");
    let (dropped, kept) = (&strs(&dropped_args), &strs(&kept_args));

    // The application's servername callback switches to its second context
    // and calls openssl_reload_server_install. No poll comes during the test:
    // the `reload` command reloads.
    let (mut server, addr) = c_server(&[
        "servername",
        "--ca",
        s(&bundle),
        "--poll-ms",
        "3600000",
        s(&f.cert),
        s(&f.key),
    ]);
    let target = Target {
        addr,
        name: "localhost",
        ca: &f.ca_pem,
    };
    for version in VERSIONS {
        let ca1_session = &session(&f, "ca1", version);
        target.save(version, ca1_session, dropped, "alpn=none");
        // The control: before the drop, CA1's client is served with its
        // session (in full: install binds sessions to the context it switched
        // to, which connections do not start on).
        let before = target.offer(version, ca1_session, dropped);
        before.assert_served("alpn=none", "CA1's client before the drop");
    }

    write_atomic(&bundle, &ca2.pem());
    server.send("reload");
    let answer = server.wait_line("reload_now's answer", |l| l.starts_with("reloaded "));
    assert_eq!(answer, "reloaded changed=1");

    for version in VERSIONS {
        target
            .offer(version, &session(&f, "ca1", version), dropped)
            .assert_refused(
                "unknown ca",
                &format!("{version}: CA1's session after CA1 was dropped"),
            );
        let fresh = target.connect(version, kept);
        fresh.assert_served("alpn=none", "CA2's client after the drop");
    }
    server.finish();
}
