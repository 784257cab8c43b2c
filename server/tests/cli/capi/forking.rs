//! A pre-forking C server (`tests/c/forking.c`): the parent builds the
//! reloader with deferred polling and attaches it, then forks; each child
//! starts polling and serves. After a rotation by rename every child serves
//! the new certificate (each reply names the child's pid). A reloader that
//! polled before the fork is refused in the children, not restarted, and
//! freeing it there does not wait for the parent's thread.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Instant;

use super::{connect, rotate, CProgram, MEMCHECK, SLOW};
use crate::fixture::Files;

/// The forking server over `f`'s files with `extra` flags, under valgrind
/// with `valgrind`'s flags, and its address.
fn start(f: &Files, valgrind: &[&str], extra: &[&str]) -> (CProgram, SocketAddr) {
    let (cert, key) = (f.cert.display().to_string(), f.key.display().to_string());
    let mut args = extra.to_vec();
    args.extend(["--poll-ms", "20", &cert, &key]);
    let mut server = CProgram::under(valgrind, "forking", &args);
    let line = server.wait_line("the listening line", |l| l.starts_with("listening "));
    let port: u16 = line["listening ".len()..].parse().unwrap();
    (server, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// The pid in a `PREFIX PID ...` or `PREFIX pid=PID ...` line.
fn pid_after<'a>(line: &'a str, prefix: &str) -> &'a str {
    line[prefix.len()..].split_whitespace().next().unwrap()
}

/// Quits the parent and requires every child to have exited 0.
fn quit(mut server: CProgram, children: &BTreeSet<String>) {
    server.send("quit");
    for pid in children {
        let wanted = format!("exited {pid} ");
        let line = server.wait_line("a child's exit", |l| l.starts_with(&wanted));
        assert_eq!(
            line,
            format!("exited {pid} 0"),
            "the child failed (99: valgrind)"
        );
    }
    server.finish();
}

#[test]
#[ignore = "needs the C programs: run by ci/capi.sh"]
fn forked_children_each_start_polling_and_serve_the_rotated_certificate() {
    let f = Files::new();
    let (mut server, addr) = start(&f, MEMCHECK, &["--children", "3"]);
    let children: BTreeSet<String> = (0..3)
        .map(|_| {
            let line = server.wait_line("a polling child", |l| l.starts_with("polling pid="));
            pid_after(&line, "polling pid=").to_owned()
        })
        .collect();
    let seen = connect(addr, &f.ca_pem, &["-alpn", "h2"]);
    assert!(seen.served, "{}", seen.text);
    assert_eq!(seen.serial.as_deref(), Some(&*f.leaf.serial));
    assert_eq!(seen.alpn.as_deref(), Some("h2"), "{}", seen.text);

    let next = f.ca.leaf("localhost");
    rotate(&f, &next, false);
    // Connect until every child has answered with the new certificate; a
    // child that has served it never goes back to the old one.
    let mut renewed = BTreeSet::new();
    let start = Instant::now();
    while renewed != children {
        let seen = connect(addr, &f.ca_pem, &["-alpn", "h2"]);
        assert!(seen.served, "{}", seen.text);
        let line = seen.text.lines().find(|l| l.starts_with("hello ")).unwrap();
        let pid = line.rsplit("pid=").next().unwrap().to_owned();
        assert!(children.contains(&pid), "served by {pid}, not a child");
        let serial = seen.serial.as_deref().unwrap();
        if serial == next.serial {
            renewed.insert(pid);
        } else {
            assert_eq!(serial, f.leaf.serial, "an unknown certificate");
            assert!(
                !renewed.contains(&pid),
                "child {pid} went back to the old one"
            );
        }
        assert!(
            start.elapsed() < SLOW,
            "children {:?} never served {}",
            children.difference(&renewed).collect::<Vec<_>>(),
            next.serial
        );
    }
    quit(server, &children);
}

#[test]
#[ignore = "needs the C programs: run by ci/capi.sh"]
fn a_reloader_polling_before_the_fork_is_refused_in_the_children_not_restarted() {
    let f = Files::new();
    // Memory errors fail the test, leaks do not: a child holds what the
    // parent's poller thread owned (its closure, the reloader's state behind
    // it), which nothing in the child can reach to free, by the nature of
    // fork(2). That is one reason docs/c-api.md says to defer polling.
    let valgrind = ["--quiet", "--error-exitcode=99", "--leak-check=no"];
    let (mut server, _) = start(&f, &valgrind, &["--children", "2", "--no-defer"]);
    let forked = 13; // OPENSSL_RELOAD_FORKED
    let children: BTreeSet<String> = (0..2)
        .map(|_| {
            let line = server.wait_line("a child's refusal", |l| l.starts_with("refused pid="));
            assert!(
                line.ends_with(&format!(" start={forked} reload={forked}")),
                "{line}"
            );
            pid_after(&line, "refused pid=").to_owned()
        })
        .collect();
    quit(server, &children);
}
