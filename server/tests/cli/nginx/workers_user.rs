//! Workers that are not root (`user nobody nogroup;`): they reload the
//! files themselves, after nginx dropped privileges, so a key they can read
//! rotates, and a new key only root can read is a failed reload, logged
//! naming the file, with the old certificate kept in every worker until the
//! key is given to them.

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::Path;

use super::run::{is_root, Nginx};
use super::{block, every_worker_serves};
use crate::fixture::Files;
use crate::support::{write_atomic, Leaf};

/// The uid and gid of `nobody` (/etc/passwd).
fn nobody() -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    let entry = passwd
        .lines()
        .find(|l| l.starts_with("nobody:"))
        .expect("a user nobody");
    let fields: Vec<_> = entry.split(':').collect();
    (fields[2].parse().unwrap(), fields[3].parse().unwrap())
}

/// Renames `leaf` over `cert` and `key` (the key first, mode 0600, owned by
/// `owner`, or root when `None`).
fn rotate_owned(cert: &Path, key: &Path, leaf: &Leaf, owner: Option<(u32, u32)>) {
    let tmp = key.with_extension("new");
    fs::write(&tmp, leaf.key_pem()).unwrap();
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).unwrap();
    if let Some((uid, gid)) = owner {
        chown(&tmp, Some(uid), Some(gid)).unwrap();
    }
    fs::rename(&tmp, key).unwrap();
    write_atomic(cert, &leaf.cert_pem());
}

/// The real uid of a process (/proc/PID/status, "Uid:").
fn uid_of(pid: i32) -> u32 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
#[ignore = "needs the nginx module: run by ci/nginx.sh"]
fn workers_as_nobody_rotate_a_key_they_can_read_and_keep_the_old_pair_for_one_they_cannot() {
    if !is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the nginx tests as root: workers as nobody need a root master"
        );
        eprintln!("skipping: only root can start nginx with workers as nobody");
        return;
    }
    let f = Files::new();
    let owner = nobody();
    // The workers look into the directory and read the key.
    fs::set_permissions(f.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    chown(&f.key, Some(owner.0), Some(owner.1)).unwrap();
    let nginx = Nginx::start_as(
        f.dir.path(),
        "user nobody nogroup;",
        &block("localhost", &f.cert, &f.key, ""),
    );
    let workers = nginx.workers();
    for w in &workers {
        assert_eq!(uid_of(*w), owner.0, "worker {w} is not nobody");
    }

    let next = f.ca.leaf("localhost");
    rotate_owned(&f.cert, &f.key, &next, Some(owner));
    every_worker_serves(&nginx, &f.ca_pem, "localhost", &workers, &next.serial);

    // A key only root can read, as a root-run renewal might leave it.
    let unreadable = f.ca.leaf("localhost");
    rotate_owned(&f.cert, &f.key, &unreadable, None);
    let key = f.key.display().to_string();
    let line = nginx.wait_error_naming(&key);
    assert!(line.contains("ermission denied"), "{line}");
    println!("nginx as nobody, logged: {line}");
    every_worker_serves(&nginx, &f.ca_pem, "localhost", &workers, &next.serial);

    // Given to the workers' user, the same key is served.
    chown(&f.key, Some(owner.0), Some(owner.1)).unwrap();
    every_worker_serves(&nginx, &f.ca_pem, "localhost", &workers, &unreadable.serial);
    assert_eq!(nginx.workers(), workers, "a worker was replaced");
}
