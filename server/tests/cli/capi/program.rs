//! A C program of ci/capi.sh's build, under valgrind, fed commands on its
//! standard input, its output lines collected.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::Lines;

/// How long a C program under valgrind gets to start, answer or exit: valgrind
/// makes it tens of times slower than native.
pub(super) const SLOW: Duration = Duration::from_secs(60);

/// The directory ci/capi.sh compiled the C programs into.
fn programs() -> PathBuf {
    let dir = std::env::var_os("OPENSSL_RELOAD_C_PROGRAMS")
        .expect("OPENSSL_RELOAD_C_PROGRAMS names the C programs' directory: run ci/capi.sh");
    PathBuf::from(dir)
}

/// A C program under valgrind, fed commands on its standard input.
pub(crate) struct CProgram {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines,
    /// How many lines of output earlier waits consumed.
    seen: usize,
}

/// valgrind's flags: any memcheck error or a byte definitely lost fails.
pub(super) const MEMCHECK: &[&str] = &[
    "--quiet",
    "--error-exitcode=99",
    "--leak-check=full",
    "--show-possibly-lost=no",
    "--errors-for-leak-kinds=definite",
];

impl CProgram {
    pub(super) fn start(name: &str, args: &[&str]) -> Self {
        Self::under(MEMCHECK, name, args)
    }

    /// Under valgrind with `flags`.
    pub(super) fn under(flags: &[&str], name: &str, args: &[&str]) -> Self {
        let mut cmd = Command::new("valgrind");
        cmd.args(flags).arg(programs().join(name)).args(args);
        Self::spawn(cmd)
    }

    /// Without valgrind: for programs whose libraries (a PKCS#11 module)
    /// valgrind would report on, not ours.
    pub(crate) fn native(name: &str, args: &[&str]) -> Self {
        let mut cmd = Command::new(programs().join(name));
        cmd.args(args);
        Self::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the C program (under valgrind: apt-get install valgrind)");
        let stdout = crate::harness::collect(child.stdout.take().unwrap(), "c out");
        crate::harness::collect(child.stderr.take().unwrap(), "c err");
        Self {
            stdin: child.stdin.take(),
            child,
            stdout,
            seen: 0,
        }
    }

    pub(crate) fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next line of output after those seen that satisfies `wanted`.
    pub(crate) fn wait_line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            {
                let lines = self.stdout.lock().unwrap();
                if let Some(i) = lines[self.seen..].iter().position(|l| wanted(l)) {
                    self.seen += i + 1;
                    return lines[self.seen - 1].clone();
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the C program exited ({status}) while waiting for {what}");
            }
            assert!(start.elapsed() < SLOW, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Lines of output from the start that satisfy `wanted`.
    pub(crate) fn count(&self, wanted: impl Fn(&str) -> bool) -> usize {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .filter(|l| wanted(l))
            .count()
    }

    /// Ends the input and requires a clean exit (valgrind's status included).
    pub(crate) fn finish(mut self) {
        drop(self.stdin.take());
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(start.elapsed() < SLOW, "the C program did not exit");
            thread::sleep(Duration::from_millis(10));
        };
        assert!(
            status.success(),
            "the C program exited with {status} (99: valgrind found errors or a definite leak)"
        );
    }
}

impl Drop for CProgram {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
