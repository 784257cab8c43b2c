//! Session tickets: keys shared by two servers through a file, SIGHUP rereading
//! it, and the in-memory rotation flags.

use std::path::Path;

use crate::clients::s_client_resumed;
use crate::fixture::{replace_private, Files};
use crate::harness::{clients_available, command, eventually, Server};
use crate::prometheus::parse_prometheus;

/// Writes `count` fresh ticket keys (80 random bytes each, base64, one per line)
/// to `path` by rename, private like a key.
pub(crate) fn write_ticket_keys(path: &Path, count: usize) {
    let mut text = String::new();
    for _ in 0..count {
        let mut key = [0; 80];
        openssl::rand::rand_bytes(&mut key).unwrap();
        text.push_str(&openssl::base64::encode_block(&key));
        text.push('\n');
    }
    replace_private(path, text.as_bytes());
}

/// The `ticket_keys` object of a server's `/status`.
pub(crate) fn ticket_status(server: &Server, ca: &Path) -> serde_json::Value {
    server.status(ca)["ticket_keys"].clone()
}

/// Whether a session saved in `session` resumes on `server` over `version`.
fn offer(server: &Server, ca: &Path, version: &str, session: &Path) -> bool {
    s_client_resumed(server.addr, ca, version, &[Path::new("-sess_in"), session])
}

/// Makes a new session on `server` over `version` and saves it in `session`.
fn new_session(server: &Server, ca: &Path, version: &str, session: &Path) {
    let resumed = s_client_resumed(server.addr, ca, version, &[Path::new("-sess_out"), session]);
    assert!(!resumed, "{version}: resumed without a session");
}

/// Waits until `server`'s /status shows a failure to load the ticket-key file
/// `keys`, named, its content (`secret`) nowhere; returns the `ticket_keys` object.
fn ticket_key_error_shown(
    server: &Server,
    ca: &Path,
    keys: &str,
    secret: &str,
) -> serde_json::Value {
    let tickets = eventually("/status to show the ticket-key error", || {
        let tickets = ticket_status(server, ca);
        (!tickets["last_error"].is_null()).then_some(tickets)
    });
    let message = tickets["last_error"]["message"].as_str().unwrap();
    assert!(message.contains(keys), "{message}");
    assert!(!message.contains(secret), "{message}");
    assert_eq!(tickets["last_error"]["path"], keys);
    assert!(tickets["failures"].as_u64().unwrap() >= 1, "{tickets}");
    assert!(!server.log_has(secret));
    tickets
}

#[test]
fn two_servers_share_ticket_keys() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let keys = f.path("ticket.keys");
    write_ticket_keys(&keys, 2);
    let keys_arg = keys.display().to_string();
    let args = ["--poll-interval", "20ms", "--ticket-keys", &keys_arg];
    let (a, b) = (f.start(&args), f.start(&args));
    let ca = &f.ca_pem;
    for server in [&a, &b] {
        let tickets = ticket_status(server, ca);
        assert_eq!(tickets["file"], keys_arg.as_str(), "{tickets}");
        assert_eq!(tickets["keys"], 2, "{tickets}");
        assert_eq!(tickets["rotations"], 0, "{tickets}");
        assert!(tickets["rotation_period"].is_null(), "{tickets}");
    }

    // A session from A resumes on B, over TLS 1.2 and TLS 1.3.
    let versions = ["-tls1_2", "-tls1_3"];
    let session = |name: &str, version: &str| f.path(&format!("{name}{version}.session"));
    for version in versions {
        new_session(&a, ca, version, &session("old", version));
        let resumed = offer(&b, ca, version, &session("old", version));
        assert!(resumed, "{version}: A's session did not resume on B");
    }

    // A new key alone: the old sessions no longer resume, but connect in full.
    write_ticket_keys(&keys, 1);
    for server in [&a, &b] {
        eventually("the new ticket key in service", || {
            let tickets = ticket_status(server, ca);
            (tickets["rotations"].as_u64()? >= 1).then_some(())
        });
        assert_eq!(ticket_status(server, ca)["keys"], 1);
    }
    for version in versions {
        let resumed = offer(&b, ca, version, &session("old", version));
        assert!(!resumed, "{version}: a session under a dropped key resumed");
    }

    // Garbage: reported, naming the file and not the content; the keys stay.
    replace_private(&keys, b"no base64 here: SECRET-LOOKING-CONTENT");
    for server in [&a, &b] {
        let tickets = ticket_key_error_shown(server, ca, &keys_arg, "SECRET-LOOKING");
        assert_eq!(tickets["keys"], 1, "{tickets}");
    }
    for version in versions {
        new_session(&a, ca, version, &session("new", version));
        let resumed = offer(&b, ca, version, &session("new", version));
        assert!(resumed, "{version}: the keys in service did not stay");
    }
}

#[test]
fn sighup_rereads_the_ticket_key_file() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let keys = f.path("ticket.keys");
    write_ticket_keys(&keys, 1);
    let keys_arg = keys.display().to_string();
    let server = f.start(&["--poll-interval", "1m", "--ticket-keys", &keys_arg]);
    write_ticket_keys(&keys, 3);
    // No poll can come within the next minute: only the signal reloads.
    server.signal("HUP");
    server.wait_log("SIGHUP: new session ticket keys in service");
    let tickets = ticket_status(&server, &f.ca_pem);
    assert_eq!(tickets["keys"], 3, "{tickets}");
    assert_eq!(tickets["rotations"], 1, "{tickets}");

    replace_private(&keys, b"junk\n");
    server.signal("HUP");
    server.wait_log("SIGHUP: ticket-key file not usable; keeping the ticket keys in service");
    assert_eq!(ticket_status(&server, &f.ca_pem)["keys"], 3);
}

#[test]
fn ticket_key_rotation_flags() {
    if !clients_available() {
        return;
    }
    let f = Files::new();
    let server = f.start(&[
        "--poll-interval",
        "20ms",
        "--ticket-key-rotation",
        "100ms",
        "--ticket-keys-kept",
        "2",
    ]);
    let tickets = eventually("two rotations of the ticket keys", || {
        let tickets = ticket_status(&server, &f.ca_pem);
        (tickets["rotations"].as_u64()? >= 2).then_some(tickets)
    });
    assert!(tickets["file"].is_null(), "{tickets}");
    assert_eq!(tickets["rotation_period"], "100ms", "{tickets}");
    assert_eq!(tickets["rotation_period_seconds"], 0.1, "{tickets}");
    assert_eq!(tickets["keys"], 2, "{tickets}");
    let samples = parse_prometheus(&server.get(&f.ca_pem, "/metrics")).unwrap();
    assert_eq!(samples["openssl_reload_ticket_keys"], 2.0);

    // --ticket-keys replaces rotation: both at once is a usage error.
    let out = command()
        .args(["serve", "--ticket-keys", "k", "--ticket-keys-kept", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
